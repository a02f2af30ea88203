r"""LAMB exactly as timm implements it (``lamb``, ``lambc``, ``lambw``, ``lambcw``, ``lambcd``, ``clamb``,
``clambw``): Adam moments, a global gradient-norm clip across every param of every group, and a layer-wise trust
ratio.
"""
from __future__ import annotations

import dataclasses

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _device

from .._hyper import BETAS, EPS, LR, MAX_LR_SNAPSHOT, NONNEG, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, StepInput, register
from .._xp import caution, decay_scale, increment_step, is_half, l2_norm, lerp_, like, new_step, step_dtype, zeros_like


def safe_ratio(xp, num, den):
    """``num / den`` where both are positive, else 1, without ever dividing by zero (``xp.where`` evaluates both
    branches, so the denominator is made safe before the division)."""
    ok = xp.logical_and(num > 0, den > 0)
    return xp.where(ok, num / xp.where(den > 0, den, 1.0), 1.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LambHyperparams(Hyperparams):
    r"""timm.optim.Lamb (NVIDIA's NVLAMB flavour of LAMB).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\beta_3 = 1-\beta_1` if ``grad_averaging`` else 1,
    :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``, :math:`\gamma` = ``lr``, ``t`` the ``step``
    slot after its increment, and ``clip`` the global factor computed once per step over **all** grads of all
    groups (``ctx['clip']``):

    .. math::

        \mathrm{clip} &= \max\!\Big(1, \tfrac{\sqrt{\sum_i \lVert g_i\rVert^2}}{\texttt{max\_grad\_norm}}\Big)
            \qquad g \leftarrow g / \mathrm{clip} \\
        m &\leftarrow \beta_1 m + \beta_3 g \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        u &\leftarrow \frac{m / bc_1}{\sqrt{v}/\sqrt{bc_2} + \epsilon}, \quad bc_k = 1-\beta_k^t
            \text{ (1 without bias\_correction)} \\
        u &\leftarrow \mathrm{caution}(u, g) \ \text{(caution)} \\
        p &\leftarrow p\,(1 - s\lambda),\ s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \ \text{(decoupled\_decay)} \quad\text{else}\quad u \leftarrow u + \lambda p \\
        r &= \frac{\lVert p\rVert}{\lVert u\rVert} \ (1 \text{ if either norm is } 0),\quad
            r \leftarrow \min(r, 1) \ \text{(trust\_clip)} \\
        p &\leftarrow p - \gamma\, r\, u \qquad (r = 1 \text{ unless } \lambda \ne 0 \text{ or always\_adapt})

    State: ``step`` (0-d, the group's count), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    Warnings
    --------
    * **Step counter.** timm keeps ``step`` in the **param group** (a 0-d tensor) and advances it on every
      ``step()``, grads or not. Here it is state too (registry field ``counter="group"``): every param's ``step``
      slot holds its group's count, advanced by the kernel for a param with a grad and by the core for a param
      without one, so ``t`` is timm's in every case, also after steps in which a whole group has no grad. The
      torch adapter keeps the count where timm does (``param_groups[i]['step']``, a 0-d CPU tensor), and
      :func:`arrayoptim.to_state_dict` moves it there.
    * ``max_grad_norm`` is read from the optimizer's top-level hyperparameters only (timm reads
      ``self.defaults``): a group's own ``max_grad_norm`` is ignored, as in timm. ``None`` disables clipping.
      ``max_grad_norm <= 0`` is rejected (timm divides by it). The global norm is that of the step's grads, or
      the step input ``grad_norm`` (a 0-d array or a number) when the step's grads are not all of them: grads
      sharded across calls, or timm's param groups listed twice, whose grads its norm counts twice (the torch
      adapter passes it then).
    * The trust ratio is only applied where ``weight_decay != 0`` (or ``always_adapt``): a no-decay group gets
      plain (clipped) Adam steps. optax.lamb always adapts. The paper's trust-ratio clamp at 10 is absent.
    * Decoupled decay shrinks ``p`` *before* its norm is taken for the trust ratio. Caution masks the normalized
      update before weight decay is added, using the clipped grad.
    * Zero norms give a trust ratio of 1 without evaluating ``0/0`` (no floating-point warnings).

    References
    ----------
    You et al., "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", arXiv:1904.00962.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('lamb', lr=0.1, weight_decay=0.0)
    >>> p = {'x': np.array([3.0, 4.0])}
    >>> p, s = opt.step(p, {'x': np.array([3.0, 4.0])}, opt.init(p))
    >>> np.round(p['x'], 6), s['x']['step']
    (array([2.9, 3.9]), array(1.))
    """

    anchor = "timm.optim.Lamb"
    lr: float = 1e-3
    bias_correction: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-6
    weight_decay: float = 0.01
    grad_averaging: bool = True
    max_grad_norm: float | None = hyperfield(1.0, "?float")
    trust_clip: bool = False
    always_adapt: bool = False
    caution: bool = False
    decoupled_decay: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {"lr": LR, "eps": EPS, "weight_decay": NONNEG, "betas": BETAS,
              "max_grad_norm": Range(gt=0.0, inf_ok=True, message="Invalid {label}: {value} ({name}={value!r} must be "
                                                                   "{bound}, or None to disable clipping)"),
              "max_lr_snapshot": MAX_LR_SNAPSHOT}


def lamb_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def lamb_prepare(xp, params, grads, state, hps):
    """The global clip factor ``max(1, ||all grads|| / max_grad_norm)`` (top-level ``max_grad_norm``, as timm)."""
    max_norm = hps[None].max_grad_norm
    if max_norm is None:
        return {}
    out = {"max_grad_norm": max_norm}  # for a given grad_norm (the step input)
    total = None
    for name, p in params.items():
        g = grads.get(name)
        if g is None:
            continue
        if is_half(xp, p.dtype):  # timm: each half grad's norm accumulated in float32, stored in the param's dtype
            g32 = xp.astype(g, xp.float32)
            n = xp.astype(xp.astype(xp.sqrt(xp.sum(g32 * g32)), p.dtype), xp.float32)
            sq = n * n
        else:
            if g.dtype != p.dtype:
                g = xp.astype(g, p.dtype)
            sq = xp.sum(g * g)
        total = sq if total is None else total + sq
    if total is None:
        return out
    out["clip"] = xp.clip(xp.sqrt(total) / max_norm, min=1.0)
    return out


def grad_norm_input(view, grad_norm):
    """The step input ``grad_norm``: validated, then handed to each param's kernel (``ctx['grad_norm']``)."""
    if grad_norm is None or view.xp is None:
        return {}
    xp = view.xp
    like_p = view.params[view.active[0]]
    if isinstance(grad_norm, (int, float)) and not isinstance(grad_norm, bool):
        grad_norm = xp.asarray(float(grad_norm), dtype=step_dtype(xp, like_p), device=_device(like_p))
    elif not is_array_api_obj(grad_norm) or array_namespace(grad_norm) is not xp or tuple(grad_norm.shape) != () \
            or not xp.isdtype(grad_norm.dtype, "real floating"):
        raise ValueError(f"grad_norm must be a number or a 0-d real floating array of the params' array library, "
                         f"got {type(grad_norm).__name__} {getattr(grad_norm, 'shape', '')}")
    elif _device(grad_norm) != _device(like_p):
        raise ValueError(f"grad_norm is on device {_device(grad_norm)}, the params on {_device(like_p)}")
    return {n: {"grad_norm": grad_norm} for n in view.active}


def lamb_kernel(xp, p, g, s, hp, ctx):
    """Per-array LAMB update; see :class:`LambHyperparams` for the math."""
    beta1, beta2 = hp.betas
    t = increment_step(s)
    clip = ctx.get("clip")
    if "grad_norm" in ctx and ctx.get("max_grad_norm") is not None:  # a given global norm
        clip = xp.clip(ctx["grad_norm"] / ctx["max_grad_norm"], min=1.0)
    if clip is not None:
        g = g / like(xp, clip, p)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    if hp.grad_averaging:
        m = lerp_(xp, m, g, 1 - beta1)  # timm's lerp(m, g, 1 - beta1)
    else:
        m *= beta1
        m += g
    v *= beta2
    v += (1 - beta2) * (g * g)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    if hp.bias_correction:
        bc1 = like(xp, 1 - beta1 ** t, p)
        bc2_sqrt = like(xp, xp.sqrt(1 - beta2 ** t), p)
        update = (m / bc1) / (xp.sqrt(v) / bc2_sqrt + hp.eps)
    else:
        update = m / (xp.sqrt(v) + hp.eps)
    if hp.caution:
        update = caution(xp, update, g)
    if hp.weight_decay != 0:
        if hp.decoupled_decay:
            scale = decay_scale(hp)
            p *= 1.0 - scale * hp.weight_decay
        else:
            update = update + hp.weight_decay * p
    if hp.weight_decay != 0 or hp.always_adapt:
        ratio = safe_ratio(xp, l2_norm(xp, p), l2_norm(xp, update))
        if hp.trust_clip:
            ratio = xp.clip(ratio, max=1.0)
        update = update * ratio
    p -= hp.lr * update
    return p


register(
    OptimInfo("lamb", "Layer-wise Adaptive Moments for batch optimization", LambHyperparams, kernel=lamb_kernel,
              init=lamb_init, prepare=lamb_prepare, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True,
              counter="group",
              step_inputs=(StepInput("grad_norm", "the global grad norm the clip divides by (0-d array or number), "
                                     "when the step's grads are not all of them", prepare=grad_norm_input),)),
    variants={
        "lambc": ("LAMB with trust ratio clipping for stability", {"trust_clip": True}),
        "lambw": ("LAMB with decoupled weight decay", {"decoupled_decay": True}),
        "lambcw": ("LAMB with trust ratio clipping for stability and decoupled decay",
                   {"trust_clip": True, "decoupled_decay": True}),
        "lambcd": ("LAMB with corrected decoupled weight decay (lr²/max_lr scaling)",
                   {"decoupled_decay": True, "corrected_weight_decay": True}),
        "clamb": ("Cautious LAMB", {"caution": True}),
        "clambw": ("Cautious LAMB with decoupled weight decay", {"caution": True, "decoupled_decay": True}),
    },
)
