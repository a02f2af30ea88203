r"""Adafactor, fairseq style, exactly as timm implements it (``adafactor``, ``cadafactor``): factored second
moments, update RMS clipping, and a relative step size when ``lr`` is None.
"""
from __future__ import annotations

import dataclasses
import math

from array_api_compat import device as _device

from .._hyper import BETAS, EPS, LR, NONNEG, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, register
from .._xp import assign, caution, increment_step, lerp_, like, new_step, zeros_like


def factored_dims(shape, min_dim_size_to_factor):
    """timm's (fairseq) choice of ``(dim_col, dim_row)`` to factor, or None.

    Dims 0 and 1 when ``ndim > 2`` and both exceed ``min_dim_size_to_factor`` (conv weights: out/in channels),
    else the last two when ``ndim >= 2`` and both exceed it. Strictly greater, unlike Big Vision's ``>=``.
    """
    ndim = len(shape)
    if ndim > 2 and shape[0] > min_dim_size_to_factor and shape[1] > min_dim_size_to_factor:
        return 0, 1
    if ndim >= 2 and shape[-2] > min_dim_size_to_factor and shape[-1] > min_dim_size_to_factor:
        return ndim - 2, ndim - 1
    return None


def rms(xp, x):
    """Root mean square of a whole non-empty array, ``||x|| / sqrt(numel)``."""
    return xp.sqrt(xp.sum(x * x)) / math.sqrt(math.prod(x.shape))


def _relative_step_only(name, warmup_init, hp) -> None:
    """timm: ``warmup_init`` shapes the relative step, so it needs ``lr=None``."""
    if warmup_init and hp.lr is not None:
        raise ValueError(f"warmup_init requires relative_step=True (lr={hp.lr!r}, warmup_init=True; "
                         "leave lr=None for the relative step)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdafactorHyperparams(Hyperparams):
    r"""timm.optim.Adafactor (fairseq/HF style).

    With ``t`` the ``step`` slot after its increment, :math:`\hat\beta_2 = 1 - t^{\texttt{decay\_rate}}`,
    :math:`\epsilon_1` = ``eps``, ``d`` = ``clip_threshold``, :math:`\lambda` = ``weight_decay``,
    :math:`\beta_1` = ``betas[0]`` (no first moment when ``betas`` is None):

    .. math::

        \mathrm{RMS} &= \mathrm{rms}(p) \\
        \gamma_t &= \begin{cases} \min(10^{-6} t \text{ (warmup\_init) or } 10^{-2},\ 1/\sqrt t)
            \cdot \max(\texttt{eps\_scale}, \mathrm{RMS}) \text{ (scale\_parameter)} & \texttt{lr} = \text{None} \\
            \texttt{lr} & \text{otherwise} \end{cases} \\
        u &= g^2 + \epsilon_1 \\
        R &\leftarrow \hat\beta_2 R + (1-\hat\beta_2)\,\mathrm{mean}_{\text{row}}(u), \quad
        C \leftarrow \hat\beta_2 C + (1-\hat\beta_2)\,\mathrm{mean}_{\text{col}}(u) \ \text{(factored)} \\
        u &= g \big/ \sqrt{\tfrac{R}{\mathrm{mean}(R)}\,C} \ \text{(factored)} \quad\text{or}\quad
        V \leftarrow \hat\beta_2 V + (1-\hat\beta_2)\,u,\ u = g/\sqrt V \\
        u &\leftarrow \gamma_t\, u / \max(1, \mathrm{rms}(u)/d) \\
        m &\leftarrow m + (1-\beta_1)(u - m),\quad u \leftarrow m \ \text{(or caution}(m, g)\text{)} \\
        p &\leftarrow p - \lambda\gamma_t\, p - u

    Factoring (:func:`factored_dims`): dims 0/1 of an N-D (N > 2) weight if both exceed
    ``min_dim_size_to_factor``, else the last two. ``R`` (``exp_avg_sq_row``) drops the row dim, ``C``
    (``exp_avg_sq_col``) the column dim.

    State: ``step`` (0-d; timm keeps a Python int), ``RMS`` (0-d, ``rms(p)`` before the step), ``exp_avg``
    (with ``betas``), and ``exp_avg_sq_row``/``exp_avg_sq_col`` or ``exp_avg_sq``.

    Warnings
    --------
    * With ``lr=None`` (relative step) timm writes the computed :math:`\gamma_t` into ``param_group['lr']``
      every step (the last param's value wins). arrayoptim does not mirror it: :math:`\gamma_t` is recomputed from
      ``step`` and ``RMS`` (both in the state) and the record keeps ``lr=None``. timm fixes relative-step mode
      at construction and ignores later ``group['lr']`` edits; here a per-step ``hyperparams={'lr': x}``
      override switches that step to the external ``lr``.
    * Unlike fairseq / HF Transformers, ``scale_parameter`` and ``warmup_init`` only affect the relative step
      (timm); an external ``lr`` is not scaled by ``RMS``.
    * ``eps`` is added to :math:`g^2` (inside the root); the first moment is an EMA of the *lr-scaled, clipped*
      update; caution masks that EMA against ``g``. Weight decay is decoupled and scaled by :math:`\gamma_t`.
    * float16/bfloat16 params are computed in float32 with float32 state (``RMS`` included) and rounded back
      once per step, as timm does (registry field ``half_compute="float32"``).
    * An empty param only advances ``step`` (timm stores a NaN ``RMS`` for it).

    References
    ----------
    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", arXiv:1804.04235.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    """

    anchor = "timm.optim.Adafactor"
    lr: float | None = hyperfield(None, "?float")
    eps: float = 1e-30
    eps_scale: float = 1e-3
    clip_threshold: float = 1.0
    decay_rate: float = -0.8
    betas: tuple[float, float] | None = hyperfield(None, "?floats")
    weight_decay: float = 0.0
    scale_parameter: bool = True
    warmup_init: bool = False
    min_dim_size_to_factor: int = hyperfield(16, "int")
    caution: bool = False

    checks = {"lr": LR, "warmup_init": _relative_step_only, "eps": EPS, "eps_scale": EPS, "weight_decay": NONNEG,
              "betas": BETAS, "clip_threshold": Range(gt=0.0, inf_ok=True),
              "decay_rate": Range(le=0.0, note=": beta2_t = 1 - t ** decay_rate")}


def _drop(shape, dim):
    return tuple(shape[:dim]) + tuple(shape[dim + 1:])


def adafactor_init(xp, p, hp):
    s = {"step": new_step(xp, p)}
    if hp.betas is not None:
        s["exp_avg"] = zeros_like(xp, p)
    dims = factored_dims(p.shape, hp.min_dim_size_to_factor)
    dev = _device(p)
    if dims is not None:
        dim_col, dim_row = dims
        s["exp_avg_sq_row"] = xp.zeros(_drop(p.shape, dim_row), dtype=p.dtype, device=dev)
        s["exp_avg_sq_col"] = xp.zeros(_drop(p.shape, dim_col), dtype=p.dtype, device=dev)
    else:
        s["exp_avg_sq"] = zeros_like(xp, p)
    s["RMS"] = xp.zeros((), dtype=p.dtype, device=dev)
    return s


def adafactor_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adafactor update; see :class:`AdafactorHyperparams` for the math."""
    t = increment_step(s)
    if math.prod(p.shape) == 0:  # static shape: nothing to update (and no mean/RMS of an empty array)
        return p
    p_rms = rms(xp, p)
    s["RMS"] = assign(s["RMS"], p_rms)
    tp = like(xp, t, p)
    if hp.lr is None:
        lr_t = 1.0 / xp.sqrt(tp)
        lr_t = xp.minimum(lr_t, 1e-6 * tp) if hp.warmup_init else xp.clip(lr_t, max=1e-2)
        if hp.scale_parameter:
            lr_t = lr_t * xp.clip(p_rms, min=hp.eps_scale)
    else:
        lr_t = hp.lr
    w = 1.0 - like(xp, 1.0 - t ** hp.decay_rate, p)  # 1 - beta2_t
    u = g * g + hp.eps
    dims = factored_dims(p.shape, hp.min_dim_size_to_factor)
    if dims is not None:
        dim_col, dim_row = dims
        row, col = s["exp_avg_sq_row"], s["exp_avg_sq_col"]
        row = lerp_(xp, row, xp.mean(u, axis=dim_row), w)
        col = lerp_(xp, col, xp.mean(u, axis=dim_col), w)
        s["exp_avg_sq_row"], s["exp_avg_sq_col"] = row, col
        r_factor = xp.expand_dims(1.0 / xp.sqrt(row / xp.mean(row, axis=dim_col, keepdims=True)), axis=dim_row)
        c_factor = 1.0 / xp.sqrt(xp.expand_dims(col, axis=dim_col))
        update = (r_factor * c_factor) * g
    else:
        v = s["exp_avg_sq"]
        v = lerp_(xp, v, u, w)
        s["exp_avg_sq"] = v
        update = (1.0 / xp.sqrt(v)) * g
    update = update / xp.clip(rms(xp, update) / hp.clip_threshold, min=1.0)
    update = update * lr_t
    if hp.betas is not None:
        m = s["exp_avg"]
        m = lerp_(xp, m, update, 1 - hp.betas[0])
        s["exp_avg"] = m
        update = caution(xp, m, g) if hp.caution else m
    if hp.weight_decay != 0:
        p -= (hp.weight_decay * lr_t) * p
    p -= update
    return p


register(
    OptimInfo("adafactor", "Memory-efficient implementation of Adam with factored gradients", AdafactorHyperparams,
              kernel=adafactor_kernel, init=adafactor_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True,
              half_compute="float32"),
    variants={"cadafactor": ("Cautious Adafactor", {"caution": True, "betas": (0.9, 0.999)})},
)
