r"""Adafactor exactly as torch.optim.Adafactor implements it (``torchadafactor``; timm's own Adafactor is
``adafactor``)."""
from __future__ import annotations

import dataclasses
import math
import numbers

from array_api_compat import device as _device

from .._hyper import SHOULD_BE, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, register
from .._xp import increment_step, lerp_, like, new_step, zeros_like


def _eps_pair(name, eps, hp) -> None:
    """torch's checks of ``eps = (eps1 or None, eps2)``: both >= 0."""
    if not isinstance(eps, (tuple, list)) or len(eps) != 2:
        raise TypeError(f"eps must be a pair (eps1 or None, eps2), got eps={eps!r}")
    eps1, eps2 = eps
    if eps1 is not None and not 0.0 <= eps1:
        raise ValueError(f"epsilon1 should be >= 0 but is: {eps1} ({name}={eps!r})")
    if not 0.0 <= eps2:
        raise ValueError(f"epsilon2 should be >= 0 but is: {eps2} ({name}={eps!r})")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TorchAdafactorHyperparams(Hyperparams):
    r"""torch.optim.Adafactor: factored second moments for >= 2-D params, relative step size, update clipping.

    With :math:`\gamma` = ``lr``, :math:`c` = ``beta2_decay``, :math:`(\epsilon_1, \epsilon_2)` = ``eps``
    (:math:`\epsilon_1` = ``finfo(dtype).eps`` when None), :math:`\lambda` = ``weight_decay``, ``t`` the ``step``
    slot after its increment, ``g`` negated first if ``maximize``, :math:`n` = ``p.size``:

    .. math::

        \beta_t &= t^{c} \qquad \rho_t = \min(\gamma, 1/\sqrt t) \qquad
            \alpha = \max\!\big(\epsilon_2, \lVert p\rVert_2/\sqrt n\big)\,\rho_t \quad\text{(before decay)} \\
        p &\leftarrow p\,(1 - \gamma\lambda) \\
        \text{ndim} \ge 2:&\quad R \leftarrow \mathrm{lerp}\big(R, \mathrm{mean}_{-1}(g^2), \beta_t\big),\
            C \leftarrow \mathrm{lerp}\big(C, \mathrm{mean}_{-2}(g^2), \beta_t\big),\
            \hat v = \frac{R\,C}{\max(\mathrm{mean}_{-2}(R), \epsilon_1)} \\
        \text{else}:&\quad V \leftarrow \mathrm{lerp}(V, g^2, \beta_t),\ \hat v = V \\
        u &= g / \sqrt{\max(\hat v, \epsilon_1^2)} \qquad
            p \leftarrow p - \frac{\alpha}{\max(1, \mathrm{RMS}(u)/d)}\,u

    (:math:`\mathrm{mean}_{-1}(g^2)` is computed as :math:`\lVert g\rVert_{2,-1}^2/n_{-1}`, the lerp is torch's
    two-sided formula.) State: ``step`` (0-d), and ``row_var`` (shape with the last dim 1) and ``col_var`` (shape with
    dim -2 set to 1) for >= 2-D params, ``variance`` (param-shaped) otherwise.

    Warnings
    --------
    * torch's Adafactor is not the paper's nor timm's (``adafactor``): there is no first moment, the decay is
      :math:`1-\beta_{2,t} = t^{c}` (no ``beta1``, no ``clip_threshold``/``scale_parameter``/``relative_step``
      switches), ``lr`` caps the relative step :math:`\rho_t`, and ``weight_decay`` is decoupled and uses ``lr``
      (not :math:`\rho_t`).
    * The row statistic is divided by :math:`\max(\mathrm{mean}(R), \epsilon_1)`, then :math:`\hat v` is clamped at
      :math:`\epsilon_1^2` -- :math:`\epsilon_1` is *not* added to :math:`g^2` as in the paper.
    * ``eps=(None, ...)``: torch resolves :math:`\epsilon_1` from the dtype of the *first* param of a group and
      keeps it for the rest; here it is resolved per param (the same unless a group mixes dtypes).
    * An empty param (size 0) only counts its step here; torch divides by zero.

    References
    ----------
    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", arXiv:1804.04235.
    """

    anchor = "torch.optim.Adafactor"
    lr: float = 1e-2
    beta2_decay: float = -0.8
    eps: tuple = hyperfield((None, 1e-3), "any", "(eps1 or None, eps2)")
    d: float = 1.0
    weight_decay: float = 0.0
    maximize: bool = False

    def __post_init__(self) -> None:
        eps = self.eps
        try:
            eps = tuple(eps)
        except TypeError:
            raise TypeError(f"hyperparameter 'eps' must be a pair (eps1 or None, eps2), got {self.eps!r}") from None
        if len(eps) != 2:
            raise ValueError(f"eps must be a pair (eps1 or None, eps2), got {self.eps!r}")

        def num(v, what, optional):
            if v is None and optional:
                return None
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) or getattr(v, "ndim", None) == 0):
                raise TypeError(f"hyperparameter 'eps' ({what}) must be a real number, got {v!r}")
            return float(v)

        object.__setattr__(self, "eps", (num(eps[0], "eps1", True), num(eps[1], "eps2", False)))
        super().__post_init__()

    checks = {"lr": Range(ge=0.0, label="Learning rate", message=SHOULD_BE),
              "beta2_decay": Range(le=0.0, label="beta2_decay", message=SHOULD_BE), "eps": _eps_pair,
              "d": Range(ge=1.0, label="Clipping threshold d", message=SHOULD_BE, inf_ok=True),
              "weight_decay": Range(ge=0.0, label="weight_decay", message=SHOULD_BE)}


def torch_adafactor_init(xp, p, hp):
    s = {"step": new_step(xp, p)}
    if p.ndim > 1:
        row = tuple(p.shape[:-1]) + (1,)
        col = tuple(p.shape[:-2]) + (1, p.shape[-1])
        s["row_var"] = xp.zeros(row, dtype=p.dtype, device=_device(p))
        s["col_var"] = xp.zeros(col, dtype=p.dtype, device=_device(p))
    else:
        s["variance"] = zeros_like(xp, p)
    return s


def torch_adafactor_kernel(xp, p, g, s, hp, ctx):
    """Per-array torch Adafactor update; see :class:`TorchAdafactorHyperparams` for the math."""
    if hp.maximize:
        g = -g
    t = increment_step(s)
    n = math.prod(p.shape)
    if n == 0:
        return p
    eps1, eps2 = hp.eps
    if eps1 is None:
        eps1 = float(xp.finfo(p.dtype).eps)
    beta2_t = like(xp, t ** hp.beta2_decay, p)
    rho_t = like(xp, xp.minimum(_scalar(xp, hp.lr, t), 1 / t ** 0.5), p)
    alpha = xp.maximum(xp.sqrt(xp.sum(p * p)) / math.sqrt(n), _scalar(xp, eps2, p)) * rho_t
    if hp.weight_decay != 0:
        p *= 1 - hp.lr * hp.weight_decay
    if g.ndim > 1:
        row_var, col_var = s["row_var"], s["col_var"]
        gg = g * g
        r = xp.sqrt(xp.sum(gg, axis=-1, keepdims=True))
        c = xp.sqrt(xp.sum(gg, axis=-2, keepdims=True))
        row_var = lerp_(xp, row_var, r * r / g.shape[-1], beta2_t)
        col_var = lerp_(xp, col_var, c * c / g.shape[-2], beta2_t)
        s["row_var"], s["col_var"] = row_var, col_var
        var_estimate = (row_var * col_var) / xp.clip(xp.mean(row_var, axis=-2, keepdims=True), min=eps1)
    else:
        variance = lerp_(xp, s["variance"], g * g, beta2_t)
        s["variance"] = variance
        var_estimate = variance
    update = g * (1 / xp.sqrt(xp.clip(var_estimate, min=eps1 * eps1)))
    denom = xp.maximum(xp.sqrt(xp.sum(update * update)) / (math.sqrt(n) * hp.d), _scalar(xp, 1.0, p))
    p -= (alpha / denom) * update
    return p


def _scalar(xp, v, like_):
    return xp.asarray(v, dtype=like_.dtype, device=_device(like_))


register(OptimInfo("torchadafactor", "torch.optim.Adafactor, factored second moments with relative step size",
                   TorchAdafactorHyperparams, kernel=torch_adafactor_kernel, init=torch_adafactor_init,
                   param_slots=("variance",), has_eps=True))
