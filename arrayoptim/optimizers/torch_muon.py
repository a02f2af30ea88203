r"""Muon exactly as torch.optim.Muon implements it (``torchmuon``; timm's own Muon, which falls back to AdamW for
non-2-D params, is ``muon``)."""
from __future__ import annotations

import dataclasses

from .._hyper import NONNEG, SHOULD_BE, Hyperparams, OneOf, Range, hyperfield
from .._lowp import round_to_bfloat16
from .._registry import OptimInfo, register
from .._xp import lerp, lerp_, zeros_like
from .muon import zeropower_via_newtonschulz

__all__ = ["TorchMuonHyperparams", "ADJUST_LR_FNS", "newton_schulz", "adjusted_lr", "round_to_bfloat16"]

ADJUST_LR_FNS = ("original", "match_rms_adamw", "spectral_unclamped")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TorchMuonHyperparams(Hyperparams):
    r"""torch.optim.Muon: momentum, then Newton-Schulz orthogonalization of the update (2-D params only).

    With :math:`\mu` = ``momentum``, :math:`\gamma` = ``lr``, :math:`\lambda` = ``weight_decay``,
    :math:`(a, b, c)` = ``ns_coefficients``, :math:`k` = ``ns_steps``, :math:`\epsilon` = ``eps`` and a param of
    shape :math:`(A, B)`:

    .. math::

        \mathrm{buf} &\leftarrow \mathrm{lerp}(\mathrm{buf}, g, 1-\mu) = \mu\,\mathrm{buf} + (1-\mu)\,g \\
        U &= \mathrm{lerp}(g, \mathrm{buf}, \mu) \text{ (nesterov)} \quad\text{or}\quad U = \mathrm{buf} \\
        X &\leftarrow U^{(\top \text{ if } A > B)} / \max(\lVert U\rVert_F, \epsilon), \quad
            k \times:\ S = X X^\top,\ X \leftarrow a X + (b S + c S^2) X \\
        p &\leftarrow p\,(1 - \gamma\lambda) - \gamma'\,X^{(\top \text{ if } A > B)}, \qquad
            \gamma' = \gamma \cdot \begin{cases} \sqrt{\max(1, A/B)} & \text{original (None)} \\
                0.2\sqrt{\max(A, B)} & \text{match\_rms\_adamw} \\
                \sqrt{A/B} & \text{spectral\_unclamped} \end{cases}

    State: ``momentum_buffer``.

    ``ns_dtype`` (arrayoptim only) picks the precision of the Newton-Schulz iteration: ``None`` (default) runs it in
    the param dtype; ``'bfloat16'`` emulates torch's bfloat16 iteration (every intermediate rounded to bfloat16,
    round-to-nearest-even, with float32 arithmetic in between), for libraries without a bfloat16 dtype.

    Warnings
    --------
    * torch runs Newton-Schulz in **bfloat16** whatever the param dtype (the update is bfloat16, ~3 significant
      digits); the default here runs it in the param dtype, so it differs from torch by bfloat16 rounding (about
      1e-2 relative in the update, 1e-5 in the params per step at lr=1e-3). ``ns_dtype='bfloat16'`` narrows that
      gap but cannot make it bit-exact (the order of float32 accumulation in matmuls differs).
    * The momentum buffer is an exponential moving average (``lerp``), not torch's documented
      :math:`B \leftarrow \mu B + g`, and Nesterov is :math:`g + \mu(\mathrm{buf} - g)`; Keller Jordan's reference
      uses the same EMA form.
    * Weight decay uses the unadjusted ``lr``; the adjusted one scales only the orthogonal update.
    * Only 2-D params are accepted: ``init`` and ``step`` raise ``ValueError`` for any other param (torch raises at
      construction). ``ns_steps >= 100`` and a wrong number of ``ns_coefficients`` raise at construction here (at
      the first step in torch).

    References
    ----------
    Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
    https://kellerjordan.github.io/posts/muon/.
    Liu et al., "Muon is Scalable for LLM Training", arXiv:2502.16982.
    """

    anchor = "torch.optim.Muon"
    lr: float = 1e-3
    weight_decay: float = 0.1
    momentum: float = 0.95
    nesterov: bool = True
    ns_coefficients: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)
    eps: float = 1e-7
    ns_steps: int = hyperfield(5, "int")
    adjust_lr_fn: str | None = hyperfield(None, "?str")
    ns_dtype: str | None = hyperfield(None, "?dtype", "None (param dtype) or 'bfloat16' (emulated)")

    checks = {"lr": Range(ge=0.0, label="Learning rate", message=SHOULD_BE), "momentum": NONNEG,
              "weight_decay": Range(ge=0.0, label="weight decay", message=SHOULD_BE),
              "adjust_lr_fn": OneOf(ADJUST_LR_FNS, "Adjust learning rate function {value} is not supported "
                                                   "({name}={value!r}; one of {choices} or None)"),
              "ns_steps": Range(lt=100, message="Number of steps must be less than 100 for computational efficiency "
                                                "({name}={value!r})"),
              "eps": Range(ge=0.0, label="epsilon", message=SHOULD_BE)}  # not checked by torch

    def validate(self) -> None:
        if len(self.ns_coefficients) != 3:
            raise ValueError(f"Coefficients must be a tuple of exactly 3 values "
                             f"(ns_coefficients={self.ns_coefficients!r})")
        if self.ns_dtype not in (None, "bfloat16"):
            raise ValueError(f"ns_dtype must be None or 'bfloat16', got ns_dtype={self.ns_dtype!r}")


def _check_2d(name, p) -> None:
    if p.ndim != 2:
        where = f" ({name!r})" if name else ""
        raise ValueError(f"Muon only supports 2D parameters whereas we found a parameter{where} with size: "
                         f"{tuple(p.shape)}")


def torch_muon_init(xp, p, hp):
    _check_2d(None, p)
    return {"momentum_buffer": zeros_like(xp, p)}


def torch_muon_prepare(xp, params, grads, state, hps):
    """torch refuses any non-2-D param in the optimizer, with or without a grad: checked before anything is written."""
    for name, p in params.items():
        _check_2d(name, p)
    return {}


def newton_schulz(xp, u, hp):
    """The orthogonalized update in ``u``'s dtype (emulated bfloat16 arithmetic with ``hp.ns_dtype='bfloat16'``):
    :func:`arrayoptim.optimizers.muon.zeropower_via_newtonschulz` with torch's one ``(a, b, c)`` triple repeated
    ``ns_steps`` times, the norm clamped at ``eps``."""
    return zeropower_via_newtonschulz(xp, u, hp.ns_steps, hp.ns_coefficients, eps=hp.eps, ns_dtype=hp.ns_dtype)


def adjusted_lr(lr: float, fn: str | None, shape) -> float:
    import math

    rows, cols = shape[:2]
    if fn is None or fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:  # spectral_unclamped
        ratio = math.sqrt(rows / cols)
    return lr * ratio


def torch_muon_kernel(xp, p, g, s, hp, ctx):
    """Per-array torch Muon update; see :class:`TorchMuonHyperparams` for the math."""
    buf = lerp_(xp, s["momentum_buffer"], g, 1 - hp.momentum)
    s["momentum_buffer"] = buf
    if 0 in tuple(p.shape):  # nothing to update (torch divides by zero for a (n, 0) param)
        return p
    u = lerp(xp, g, buf, hp.momentum) if hp.nesterov else buf
    update = newton_schulz(xp, u, hp)
    p *= 1 - hp.lr * hp.weight_decay
    p += -adjusted_lr(hp.lr, hp.adjust_lr_fn, tuple(p.shape)) * update
    return p


register(OptimInfo("torchmuon", "torch.optim.Muon, MomentUm Orthogonalized by Newton-schulz (2-D params only)",
                   TorchMuonHyperparams, kernel=torch_muon_kernel, init=torch_muon_init,
                   prepare=torch_muon_prepare, param_slots=("momentum_buffer",), has_eps=True, has_momentum=True,
                   locality="matrix", defaults={"momentum": 0.95}))  # torch's default, not timm's factory 0.9
