r"""NAdam exactly as torch.optim implements it (``nadam``), with its momentum-decay schedule and ``mu_product``."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import ADAM_CHECKS, NONNEG, Hyperparams
from .._registry import OptimInfo, register
from .._xp import increment_step, like, new_step, step_dtype, update_moments, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class NAdamHyperparams(Hyperparams):
    r"""torch.optim.NAdam: Adam with Nesterov momentum and Dozat's momentum-decay schedule.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\psi` = ``momentum_decay``, :math:`\epsilon` = ``eps``,
    :math:`\lambda` = ``weight_decay``, :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and
    ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - \gamma\lambda) \ \text{(decoupled)} \quad\text{or}\quad g \leftarrow g + \lambda p \\
        \mu_t &= \beta_1\left(1 - \tfrac12\, 0.96^{t\psi}\right) \qquad
        \mu_{t+1} = \beta_1\left(1 - \tfrac12\, 0.96^{(t+1)\psi}\right) \\
        \Pi &\leftarrow \Pi\,\mu_t \qquad (\text{slot } \texttt{mu\_product},\ \Pi_0 = 1) \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        d &= \sqrt{v / (1-\beta_2^t)} + \epsilon \\
        p &\leftarrow p - \gamma\,\frac{1-\mu_t}{1-\Pi}\,\frac{g}{d}
                        - \gamma\,\frac{\mu_{t+1}}{1-\Pi\,\mu_{t+1}}\,\frac{m}{d}

    State: ``step``, ``mu_product`` (0-d, in the ``step`` dtype), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    Warnings
    --------
    * Three different "NAdam"s exist: this one (torch, Dozat's :math:`\mu_t` schedule and product), timm's
      ``nadamw`` (AdamW with the Nesterov-mixed moment :math:`m + (1-\beta_1)(g - m)`, no :math:`\mu` schedule) and
      optax's ``nadam`` (bias-corrects the momentum term with :math:`1-\beta_1^{t+1}`). They differ by ~1e-2.
    * ``eps`` is added outside the square root of the bias-corrected :math:`v`.
    * The :math:`\mu` schedule is computed from the ``step`` slot in its dtype (float32 for float32 params); torch
      computes it in Python double precision from the float32 step.

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('nadam', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x'].round(4), round(float(s['x']['mu_product']), 6)
    (array([ 0.8944, -1.8944]), 0.450073)
    """

    anchor = "torch.optim.NAdam"
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum_decay: float = 4e-3
    decoupled_weight_decay: bool = False
    maximize: bool = False

    checks = {**ADAM_CHECKS, "momentum_decay": NONNEG}


def nadam_init(xp, p, hp):
    return {"step": new_step(xp, p), "mu_product": xp.ones((), dtype=step_dtype(xp, p), device=device(p)),
            "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def nadam_kernel(xp, p, g, s, hp, ctx):
    """Per-array NAdam update; see :class:`NAdamHyperparams` for the math."""
    beta1, beta2 = hp.betas
    lr, psi = hp.lr, hp.momentum_decay
    if hp.maximize:
        g = -g
    t = increment_step(s)
    bc2 = 1 - beta2 ** t
    if hp.weight_decay != 0:
        if hp.decoupled_weight_decay:
            p *= 1 - lr * hp.weight_decay
        else:
            g = g + hp.weight_decay * p
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (t * psi))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
    prod = s["mu_product"]
    prod *= mu
    s["mu_product"] = prod
    m, v = update_moments(xp, s, g, hp.betas)
    denom = xp.sqrt(v / like(xp, bc2, p))
    denom += hp.eps
    c_grad = like(xp, -lr * (1.0 - mu) / (1.0 - prod), p)
    c_avg = like(xp, (-lr * mu_next) / (1.0 - prod * mu_next), p)
    p += c_grad * (g / denom)
    p += c_avg * (m / denom)
    return p


register(OptimInfo("nadam", "torch.optim.NAdam, Adam with Nesterov momentum", NAdamHyperparams,
                   kernel=nadam_kernel, init=nadam_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True))
