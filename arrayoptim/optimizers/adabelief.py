r"""AdaBelief exactly as timm implements it (``adabelief``, ``radabelief``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, Hyperparams
from .._registry import OptimInfo, register
from .._xp import amsgrad_max, increment_step, lerp_, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdaBeliefHyperparams(Hyperparams):
    r"""timm.optim.AdaBelief: Adam with the second moment of the *prediction error* ``g - m``.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, ``m`` = ``exp_avg``,
    ``s`` = ``exp_avg_var``, ``bc1`` = :math:`1-\beta_1^t`, ``bc2`` = :math:`1-\beta_2^t`:

    .. math::

        p &\leftarrow p\,(1-\gamma\lambda) \text{ (decoupled\_decay)}, \quad p\,(1-\lambda)
            \text{ (decoupled\_decay and fixed\_decay)}, \quad\text{else}\quad g \leftarrow g + \lambda p \\
        m &\leftarrow m + (1-\beta_1)(g - m) \\
        s &\leftarrow \beta_2 s + (1-\beta_2)(g - m)^2 + \epsilon
            \quad\text{(the } +\epsilon \text{ is stored in the slot)} \\
        \hat s &\leftarrow \max(\hat s, s) \text{ (amsgrad, slot max\_exp\_avg\_var)} \quad\text{else}\quad \hat s = s \\
        p &\leftarrow p - \frac{\gamma}{bc1}\,\frac{m}{\sqrt{\hat s}/\sqrt{bc2} + \epsilon}
            \qquad\text{(rectify=False)}

    With ``rectify`` (RAdam's rule): :math:`\rho_\infty = 2/(1-\beta_2) - 1`,
    :math:`\rho_t = \rho_\infty - 2t\beta_2^t/(1-\beta_2^t)`; if :math:`\rho_t \ge 5`

    .. math::

        r_t = \sqrt{bc2\,\frac{(\rho_t-4)(\rho_t-2)\rho_\infty}{(\rho_\infty-4)\rho_t(\rho_\infty-2)}},\qquad
        p \leftarrow p - \frac{\gamma r_t}{bc1}\,\frac{m}{\sqrt{s} + \epsilon}

    otherwise :math:`p \leftarrow p - \gamma m / bc1` when ``degenerated_to_sgd``, else no update.

    State: ``step``, ``exp_avg``, ``exp_avg_var``, ``max_exp_avg_var`` (amsgrad only).

    Warnings
    --------
    * timm (like the official code) adds ``eps`` to ``exp_avg_var`` **in place every step**, so eps accumulates in
      the state (``s`` grows by ``eps`` per step even for zero gradients), and ``eps`` is then added again outside the
      square root. optax's ``adabelief`` adds ``eps_root`` to a temporary instead; the paper uses ``eps=1e-8`` (timm's
      default is 1e-16, where the two coincide in practice).
    * With ``amsgrad`` the max is taken of ``s`` *after* its ``+eps``; the rectified branch uses ``s``, **not** the
      amsgrad max, and omits the ``1/sqrt(bc2)`` factor (it is folded into :math:`r_t`).
    * The registry's ``adabelief`` has ``rectify=False``; the class default (``radabelief``) is ``rectify=True``.
    * ``decoupled_decay=True`` is the class default (AdamW-style); ``fixed_decay`` ignores ``lr`` in the decay.
    * timm's ``step`` slot is a Python int; here it is a 0-d array like every ``step`` slot.
    * float16/bfloat16 params are computed in float32 with float32 state and rounded back once per step, as timm
      does (registry field ``half_compute="float32"``).
    * timm does not check ``weight_decay``; a negative value is rejected here.

    References
    ----------
    Zhuang et al., "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients", NeurIPS 2020,
    arXiv:2010.07468.
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (RAdam), arXiv:1908.03265.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adabelief', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, opt.init(p))
    >>> sorted(s['x'])
    ['exp_avg', 'exp_avg_var', 'step']
    """

    anchor = "timm.optim.AdaBelief"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-16
    weight_decay: float = 0.0
    amsgrad: bool = False
    decoupled_decay: bool = True
    fixed_decay: bool = False
    rectify: bool = True
    degenerated_to_sgd: bool = True

    checks = ADAM_CHECKS


def adabelief_init(xp, p, hp):
    s = {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_var": zeros_like(xp, p)}
    if hp.amsgrad:
        s["max_exp_avg_var"] = zeros_like(xp, p)
    return s


def adabelief_kernel(xp, p, g, s, hp, ctx):
    """Per-array AdaBelief update; see :class:`AdaBeliefHyperparams` for the math."""
    beta1, beta2 = hp.betas
    t = increment_step(s)
    if hp.decoupled_decay:
        p *= 1.0 - (hp.weight_decay if hp.fixed_decay else hp.lr * hp.weight_decay)
    elif hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    m, v = s["exp_avg"], s["exp_avg_var"]
    m = lerp_(xp, m, g, 1 - beta1)
    r = g - m
    v *= beta2
    v += (1 - beta2) * (r * r)
    v += hp.eps  # timm's in-place exp_avg_var.add_(eps): eps accumulates in the state
    s["exp_avg"], s["exp_avg_var"] = m, v
    base = v
    if hp.amsgrad:
        base = amsgrad_max(xp, s, "max_exp_avg_var", v)
    bc1 = 1 - beta1 ** t
    if not hp.rectify:
        bc2_sqrt = like(xp, xp.sqrt(1 - beta2 ** t), p)
        denom = xp.sqrt(base) / bc2_sqrt
        denom += hp.eps
        p -= like(xp, hp.lr / bc1, p) * (m / denom)
        return p
    beta2_t = beta2 ** t
    sma_max = 2 / (1 - beta2) - 1
    sma = sma_max - 2 * t * beta2_t / (1 - beta2_t)
    adaptive = sma >= 5
    safe = xp.where(adaptive, sma, xp.full_like(sma, 5.0))  # keeps the unused sqrt argument positive
    rect = xp.sqrt((1 - beta2_t) * (safe - 4) / (sma_max - 4) * (safe - 2) / safe * sma_max / (sma_max - 2)) / bc1
    fallback = 1.0 / bc1 if hp.degenerated_to_sgd else xp.zeros_like(bc1)
    step_size = like(xp, xp.where(adaptive, rect, fallback) * hp.lr, p)
    denom = xp.sqrt(v)
    denom += hp.eps
    denom = xp.where(adaptive, denom, xp.ones_like(denom))
    p -= step_size * (m / denom)
    return p


_SLOTS = ("exp_avg", "exp_avg_var", "max_exp_avg_var")
register(
    OptimInfo("adabelief", "Adapts learning rate based on gradient prediction error", AdaBeliefHyperparams,
              kernel=adabelief_kernel, init=adabelief_init, param_slots=_SLOTS, defaults={"rectify": False},
              has_betas=True, half_compute="float32"),
    variants={"radabelief": ("Rectified AdaBelief with variance adaptation", {"rectify": True})},
)
