r"""NVIDIA's NovoGrad as timm implements it (``novograd``, ``novogradw``, ``novogradc``)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import ADAM_CHECKS, MAX_LR_SNAPSHOT, Hyperparams, hyperfield
from .._registry import OptimInfo, register
from .._xp import amsgrad_max, assign, decay_scale, increment_step, new_step, step_dtype, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class NvNovoGradHyperparams(Hyperparams):
    r"""timm.optim.NvNovoGrad: Adam-like momentum with a per-tensor (layer-wise) second moment.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\gamma_{\max}` = ``max_lr_snapshot`` (the constructor ``lr``), ``v`` =
    ``exp_avg_sq`` (a 0-d slot), ``m`` = ``exp_avg``:

    .. math::

        n &= \textstyle\sum g^2 \\
        v &\leftarrow \begin{cases} n & v = 0 \\ \beta_2 v + (1-\beta_2)\,n & \text{otherwise} \end{cases} \\
        \hat v &\leftarrow \max(\hat v, v) \ \text{(amsgrad, slot max\_exp\_avg\_sq)} \quad\text{else}\quad \hat v = v \\
        u &= g / (\sqrt{\hat v} + \epsilon) \\
        p &\leftarrow p\,(1 - s\lambda),\ s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \ \text{(decoupled\_decay[, corrected\_weight\_decay])} \quad\text{or}\quad u \leftarrow u + \lambda p \\
        u &\leftarrow (1-\beta_1)\,u \quad\text{(grad\_averaging)} \\
        m &\leftarrow \beta_1 m + u \\
        p &\leftarrow p - \gamma m

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v, 0-d, the param's dtype; float32 beside half params,
    as timm's default-dtype scalar), ``max_exp_avg_sq`` (0-d, amsgrad only). For half params the squared norm is
    rounded to the param's dtype as timm computes it, except where that rounding overflows (timm's float16 norm of
    a grad with |g| >= 256 is inf: ours stays finite).

    Warnings
    --------
    * The first-step rule is data-dependent in timm (``if exp_avg_sq == 0``, a host sync); here it is an
      ``xp.where``, so a ``v`` that is exactly 0 later (all-zero gradients so far) restarts from ``n`` in both.
    * L2 decay is added to the **normalized** gradient (as the paper), not to ``g``; ``weight_decay`` with
      ``decoupled_decay=True`` shrinks the param instead. Corrected decay only applies when decoupled.
    * There is no bias correction; ``grad_averaging`` is off by default (the paper's :math:`(1-\beta_1)` factor).
    * timm keeps ``step`` as a Python int; here it is a 0-d array. timm does not check ``weight_decay`` (arrayoptim
      rejects negative values).

    References
    ----------
    Ginsburg et al., "Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep Networks",
    arXiv:1905.11286.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    """

    anchor = "timm.optim.NvNovoGrad"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.95, 0.98)
    eps: float = 1e-8
    weight_decay: float = 0.0
    grad_averaging: bool = False
    amsgrad: bool = False
    decoupled_decay: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**ADAM_CHECKS, "max_lr_snapshot": MAX_LR_SNAPSHOT}


def novograd_init(xp, p, hp):
    norms = step_dtype(xp, p)  # timm: torch's default dtype (float32 beside half params, as the step count)
    s = {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p),
         "exp_avg_sq": xp.zeros((), dtype=norms, device=device(p))}
    if hp.amsgrad:
        s["max_exp_avg_sq"] = xp.zeros((), dtype=norms, device=device(p))
    return s


def _rounded(xp, x, dtype):
    """``x`` rounded to ``dtype`` and back, where that stays finite (``x`` itself where it would overflow)."""
    r = xp.astype(xp.astype(x, dtype), x.dtype)
    return xp.where(xp.isfinite(r), r, x)


def novograd_kernel(xp, p, g, s, hp, ctx):
    """Per-array NvNovoGrad update; see :class:`NvNovoGradHyperparams` for the math."""
    beta1, beta2 = hp.betas
    increment_step(s)
    stored = ctx.get("storage_dtype", g.dtype)
    if stored == g.dtype:
        n = xp.sum(g * g)
    else:  # a half param: timm squares and sums in the param's dtype (its overflow to inf aside)
        n = xp.sum(_rounded(xp, g * g, stored))
        n = _rounded(xp, n, stored)
    v = s["exp_avg_sq"]
    v = assign(v, xp.where(v == 0, n, v * beta2 + (1 - beta2) * n))
    s["exp_avg_sq"] = v
    if hp.amsgrad:
        v = amsgrad_max(xp, s, "max_exp_avg_sq", v)
    u = g / (xp.sqrt(v) + hp.eps)
    if hp.weight_decay != 0:
        if hp.decoupled_decay:
            scale = decay_scale(hp)
            p *= 1.0 - scale * hp.weight_decay
        else:
            u = u + hp.weight_decay * p
    if hp.grad_averaging:
        u = u * (1 - beta1)
    m = s["exp_avg"]
    m *= beta1
    m += u
    s["exp_avg"] = m
    p -= hp.lr * m
    return p


register(
    OptimInfo("novograd", "Normalized Adam with L2 norm gradient normalization", NvNovoGradHyperparams,
              kernel=novograd_kernel, init=novograd_init, param_slots=("exp_avg",), has_betas=True),
    variants={
        "novogradw": ("NovoGrad with decoupled weight decay", {"decoupled_decay": True}),
        "novogradc": ("NovoGrad with corrected decoupled weight decay (lr²/max_lr scaling)",
                      {"decoupled_decay": True, "corrected_weight_decay": True}),
    },
)
