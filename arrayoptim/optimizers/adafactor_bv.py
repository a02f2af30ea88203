r"""Adafactor as Big Vision writes it, exactly as timm implements it (``adafactorbv``, ``adafactorbvc``,
``cadafactorbv``, ``cadafactorbvc``): factored second moments over the two largest dims, a capped ``beta2``
schedule, optional RMS clipping and momentum.
"""
from __future__ import annotations

import dataclasses
import math

from .._hyper import LR, MAX_LR_SNAPSHOT, NONNEG, Hyperparams, OneOf, Range, hyperfield
from .._lowp import lowp_lerp
from .._registry import OptimInfo, register
from .._xp import blockwise_, caution, increment_step, lerp_, like, new_step, zeros_like
from .adafactor import rms


def bv_factored_dims(shape, min_dim_size_to_factor):
    """Big Vision's ``(dc, dr)``: the second-largest and the largest dim (ties broken by index), or None when
    ``ndim < 2`` or the second-largest is smaller than ``min_dim_size_to_factor``."""
    if len(shape) < 2:
        return None
    order = sorted((size, i) for i, size in enumerate(shape))
    if order[-2][0] < min_dim_size_to_factor:
        return None
    return order[-2][1], order[-1][1]


#: storage formats of ``momentum_dtype`` and their widths (bits)
_WIDTH = {"bfloat16": 16, "float16": 16, "float32": 32, "float64": 64}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdafactorBigVisionHyperparams(Hyperparams):
    r"""timm.optim.AdafactorBigVision.

    With ``t`` the ``step`` slot after its increment, :math:`\epsilon_1` = ``eps`` (None: 1e-30, 1e-7 for
    float16), :math:`\mu` = ``momentum``, :math:`\gamma` = ``lr``, :math:`\lambda` = ``weight_decay``:

    .. math::

        \hat\beta_2 &= \min\!\big(\texttt{beta2\_cap},\ 1 - \max(t - \texttt{decay\_offset}, 1)^{-\texttt{decay\_rate}}\big) \\
        u &= g^2 + \epsilon_1 \\
        R &\leftarrow \mathrm{lerp}(R, \mathrm{mean}_{d_r}(u), 1-\hat\beta_2), \quad
        C \leftarrow \mathrm{lerp}(C, \mathrm{mean}_{d_c}(u), 1-\hat\beta_2), \quad
        u = g \big/ \sqrt{\tfrac{R}{\mathrm{mean}_{d_c}(R)}\,C} \ \text{(factored)} \\
        V &\leftarrow \mathrm{lerp}(V, u, 1-\hat\beta_2), \quad u = g/\sqrt V \ \text{(otherwise)} \\
        u &\leftarrow u / \max(1, \mathrm{rms}(u)/\texttt{clipping\_threshold}) \ \text{(if set)} \\
        m &\leftarrow m + (1-\mu)(u - m), \quad u \leftarrow m \ \text{or caution}(m, g) \ \text{(momentum not None)} \\
        p &\leftarrow p\,(1 - s\lambda) \qquad p \leftarrow p - \gamma u

    with :math:`s = \gamma` (:math:`\gamma^2/\gamma_{\max}` corrected), or with ``unscaled_wd``
    :math:`s = 1` (:math:`\gamma/\gamma_{\max}` corrected); :math:`\gamma_{\max}` is ``max_lr_snapshot``, the
    constructor ``lr``. :math:`d_r`, :math:`d_c` (:func:`bv_factored_dims`) are the largest and second-largest dims
    (factored when the second-largest is ``>= min_dim_size_to_factor``); ``R``, ``C`` keep those dims with size 1.

    :math:`m` is rounded to ``momentum_dtype`` (the update before the EMA too) when that format is narrower than
    the param dtype.

    State: ``step`` (0-d), ``exp_avg_sq_r`` and ``exp_avg_sq_c`` (keepdim shapes) or ``exp_avg_sq``, ``exp_avg``
    (unless ``momentum`` is None; param dtype, holding ``momentum_dtype`` values).

    Warnings
    --------
    * **Momentum dtype.** timm keeps ``exp_avg`` in ``momentum_dtype=torch.bfloat16`` by default: every step
      the update is rounded to bfloat16, the EMA is taken in float32 and stored in bfloat16 again
      (8 significant bits). arrayoptim does the same by default, emulated: ``exp_avg`` is an array of the param
      dtype whose values are the bfloat16 values timm holds (:func:`arrayoptim._lowp.lowp_lerp`, bit-equal to
      torch's CPU ``lerp_``), so it takes the param dtype's memory. ``momentum_dtype`` is timm's argument
      (``'bfloat16'``, ``'float16'``, ``'float32'`` or a dtype of any library); a format at least as wide as the
      param dtype, or ``None``, keeps the momentum in the param dtype unrounded.
    * ``R``/``C`` keep the reduced dims (size 1) like timm; optax/Big Vision drop them.
    * ``momentum`` is the EMA of the *unscaled*, clipped update; ``lr`` multiplies afterwards. The registry's names
      use ``momentum=0.9`` (timm's factory and the class agree); ``momentum=None`` disables it.
    * Weight decay is decoupled and applied after the update is formed, before it is subtracted.
    * An empty param only advances ``step``.

    References
    ----------
    Shazeer & Stern, "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", arXiv:1804.04235.
    Zhai et al., "Scaling Vision Transformers", arXiv:2106.04560 (the Big Vision variant).
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    """

    anchor = "timm.optim.AdafactorBigVision"
    lr: float = 1.0
    min_dim_size_to_factor: int = hyperfield(16, "int")
    decay_rate: float = 0.8
    decay_offset: int = hyperfield(0, "int")
    beta2_cap: float = 0.999
    momentum: float | None = hyperfield(0.9, "?float")
    momentum_dtype: str | None = hyperfield("bfloat16", "?dtype")
    eps: float | None = hyperfield(None, "?float")
    weight_decay: float = 0.0
    clipping_threshold: float | None = hyperfield(None, "?float")
    unscaled_wd: bool = False
    caution: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {"lr": LR, "weight_decay": NONNEG, "momentum": NONNEG,
              "eps": Range(ge=0.0, label="epsilon value", note=" or None"),
              "clipping_threshold": Range(gt=0.0, note=" or None", inf_ok=True), "beta2_cap": Range(ge=0.0, le=1.0),
              "max_lr_snapshot": MAX_LR_SNAPSHOT,
              "momentum_dtype": OneOf(sorted(_WIDTH), "Invalid {name} value: {value} ({name}={value!r} must be one of "
                                                      "{choices} or None)"),
              # not checked by timm: beta2_t = 1 - t ** -decay_rate is negative for a negative rate
              "decay_rate": NONNEG}


def momentum_rounding(hp, p) -> str | None:
    """The format ``exp_avg`` is rounded to for param ``p``: ``hp.momentum_dtype`` when it is narrower than
    ``p``'s dtype, else None (kept unrounded in the param dtype)."""
    name = hp.momentum_dtype
    if name is None:
        return None
    own = str(p.dtype).rsplit(".", 1)[-1]
    return name if _WIDTH[name] < _WIDTH.get(own, 64) else None


def _keep(shape, dim):
    out = list(shape)
    out[dim] = 1
    return tuple(out)


def adafactor_bv_init(xp, p, hp):
    s = {"step": new_step(xp, p)}
    dims = bv_factored_dims(p.shape, hp.min_dim_size_to_factor)
    if dims is not None:
        dc, dr = dims
        s["exp_avg_sq_r"] = zeros_like(xp, p[tuple(slice(0, 1) if i == dr else slice(None) for i in range(p.ndim))])
        s["exp_avg_sq_c"] = zeros_like(xp, p[tuple(slice(0, 1) if i == dc else slice(None) for i in range(p.ndim))])
    else:
        s["exp_avg_sq"] = zeros_like(xp, p)
    if hp.momentum is not None:
        s["exp_avg"] = zeros_like(xp, p)
    return s


def adafactor_bv_kernel(xp, p, g, s, hp, ctx):
    """Per-array Big Vision Adafactor update; see :class:`AdafactorBigVisionHyperparams` for the math."""
    t = increment_step(s)
    if math.prod(p.shape) == 0:  # static shape: nothing to update (and no mean/RMS of an empty array)
        return p
    if hp.eps is not None:
        eps = hp.eps
    else:  # float16 is not a standard dtype: only libraries that have it can hand us float16 params
        stored = ctx.get("storage_dtype", p.dtype)  # a half param computes in float32: its dtype decides
        eps = 1e-7 if stored == getattr(xp, "float16", None) else 1e-30
    decay_step = xp.clip(t - hp.decay_offset, min=1.0) if hp.decay_offset else t
    beta2_t = xp.clip(1.0 - decay_step ** (-hp.decay_rate), max=hp.beta2_cap)
    w = like(xp, 1 - beta2_t, p)
    u = g * g + eps
    dims = bv_factored_dims(p.shape, hp.min_dim_size_to_factor)
    if dims is not None:
        dc, dr = dims
        r, c = s["exp_avg_sq_r"], s["exp_avg_sq_c"]
        r = lerp_(xp, r, xp.mean(u, axis=dr, keepdims=True), w)
        c = lerp_(xp, c, xp.mean(u, axis=dc, keepdims=True), w)
        s["exp_avg_sq_r"], s["exp_avg_sq_c"] = r, c
        row_factor = 1.0 / xp.sqrt(r / xp.mean(r, axis=dc, keepdims=True))
        update = g * row_factor * (1.0 / xp.sqrt(c))
    else:
        v = s["exp_avg_sq"]
        v = lerp_(xp, v, u, w)
        s["exp_avg_sq"] = v
        update = g * (1.0 / xp.sqrt(v))
    if hp.clipping_threshold is not None:
        update = update / xp.clip(rms(xp, update) / hp.clipping_threshold, min=1.0)
    if hp.momentum is not None:
        m = s["exp_avg"]
        fmt = momentum_rounding(hp, p)
        if fmt is None:
            m = lerp_(xp, m, update, 1 - hp.momentum)
        else:  # timm: exp_avg.lerp_(update.to(momentum_dtype), 1 - momentum), stored in momentum_dtype
            # by blocks: the emulation's float64 temporaries are several param sizes each (element-wise)
            m = blockwise_(xp, m, lambda a, b: lowp_lerp(xp, a, b, 1 - hp.momentum, fmt), update)
        s["exp_avg"] = m
        update = caution(xp, m, g) if hp.caution else m
    update = update * hp.lr
    if hp.weight_decay != 0:
        corrected = hp.corrected_weight_decay
        if hp.unscaled_wd:
            scale = hp.lr / hp.max_lr_snapshot if corrected else 1.0
        else:
            scale = hp.lr ** 2 / hp.max_lr_snapshot if corrected else hp.lr
        p *= 1.0 - scale * hp.weight_decay
    p -= update
    return p


_SLOTS = ("exp_avg", "exp_avg_sq")
register(
    OptimInfo("adafactorbv", "Big Vision variant of Adafactor with factored gradients, half precision momentum",
              AdafactorBigVisionHyperparams, kernel=adafactor_bv_kernel, init=adafactor_bv_init, param_slots=_SLOTS,
              has_momentum=True),
    variants={
        "adafactorbvc": ("Adafactor Big Vision with corrected weight decay (lr²/max_lr or lr/max_lr scaling)",
                         {"corrected_weight_decay": True}),
        "cadafactorbv": ("Cautious Big Vision Adafactor", {"caution": True}),
        "cadafactorbvc": ("Cautious Adafactor Big Vision with corrected weight decay",
                          {"caution": True, "corrected_weight_decay": True}),
    },
)
