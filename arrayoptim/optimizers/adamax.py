r"""Adamax exactly as torch.optim implements it (``adamax``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, Hyperparams
from .._registry import OptimInfo, register
from .._xp import assign, increment_step, lerp_, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamaxHyperparams(Hyperparams):
    r"""torch.optim.Adamax: Adam with an infinity-norm second moment.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and ``g`` negated first if ``maximize``:

    .. math::

        g &\leftarrow g + \lambda p \\
        m &\leftarrow m + (1-\beta_1)(g - m) \\
        u &\leftarrow \max(\beta_2 u,\ |g| + \epsilon) \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{u}

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_inf`` (u).

    Warnings
    --------
    ``eps`` is added to :math:`|g|` inside the max (torch); the paper has no ``eps``, and optax's ``adamax`` adds it
    to the denominator instead (:math:`m / (u + \epsilon)` with :math:`u = \max(\beta_2 u, |g|)`).

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980, section 7.1.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adamax', lr=0.1, eps=0.0)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x'], s['x']['exp_inf']
    (array([ 0.9, -1.9]), array([0.5, 4. ]))
    """

    anchor = "torch.optim.Adamax"
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    maximize: bool = False

    checks = ADAM_CHECKS


def adamax_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_inf": zeros_like(xp, p)}


def adamax_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adamax update; see :class:`AdamaxHyperparams` for the math."""
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    t = increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    m, u = s["exp_avg"], s["exp_inf"]
    m = lerp_(xp, m, g, 1 - beta1)
    u *= beta2
    u = assign(u, xp.maximum(u, xp.abs(g) + hp.eps))
    s["exp_avg"], s["exp_inf"] = m, u
    clr = like(xp, hp.lr / (1 - beta1 ** t), p)
    p -= clr * (m / u)
    return p


register(OptimInfo("adamax", "torch.optim.Adamax, Adam with infinity norm for more stable updates",
                   AdamaxHyperparams, kernel=adamax_kernel, init=adamax_init, param_slots=("exp_avg", "exp_inf"),
                   has_betas=True))
