r"""Adadelta exactly as torch.optim implements it (``adadelta``)."""
from __future__ import annotations

import dataclasses

from .._hyper import EPS, LR, NONNEG, Hyperparams, Range
from .._registry import OptimInfo, register
from .._xp import increment_step, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdadeltaHyperparams(Hyperparams):
    r"""torch.optim.Adadelta.

    With :math:`\rho` = ``rho``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, and ``g`` negated first if ``maximize``:

    .. math::

        g &\leftarrow g + \lambda p \\
        v &\leftarrow \rho v + (1-\rho)\,g^2 \\
        \delta &\leftarrow \frac{\sqrt{u + \epsilon}}{\sqrt{v + \epsilon}}\, g \\
        u &\leftarrow \rho u + (1-\rho)\,\delta^2 \\
        p &\leftarrow p - \gamma\,\delta

    State: ``step`` (0-d), ``square_avg`` (v), ``acc_delta`` (u).

    Warnings
    --------
    * ``eps`` is added **inside** both square roots (torch, the paper); it also sets the size of the very first
      steps, since :math:`u` starts at 0: :math:`|\delta_1| \approx \sqrt{\epsilon / (1-\rho)}`.
    * torch keeps an ``lr`` (default 1.0) that the paper does not have; optax's ``adadelta`` has the same rule.

    References
    ----------
    Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adadelta', lr=1.0, eps=0.01)
    >>> p = {'x': np.array([1.0])}
    >>> p, s = opt.step(p, {'x': np.array([1.0])}, opt.init(p))
    >>> p['x'].round(4), sorted(s['x'])
    (array([0.6985]), ['acc_delta', 'square_avg', 'step'])
    """

    anchor = "torch.optim.Adadelta"
    lr: float = 1.0
    rho: float = 0.9
    eps: float = 1e-6
    weight_decay: float = 0.0
    maximize: bool = False

    checks = {"lr": LR, "rho": Range(ge=0.0, le=1.0), "eps": EPS, "weight_decay": NONNEG}


def adadelta_init(xp, p, hp):
    return {"step": new_step(xp, p), "square_avg": zeros_like(xp, p), "acc_delta": zeros_like(xp, p)}


def adadelta_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adadelta update; see :class:`AdadeltaHyperparams` for the math."""
    rho, eps = hp.rho, hp.eps
    if hp.maximize:
        g = -g
    increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    v, u = s["square_avg"], s["acc_delta"]
    v *= rho
    v += (1 - rho) * (g * g)
    delta = xp.sqrt(u + eps) / xp.sqrt(v + eps) * g
    u *= rho
    u += (1 - rho) * (delta * delta)
    s["square_avg"], s["acc_delta"] = v, u
    p -= hp.lr * delta
    return p


register(OptimInfo("adadelta", "torch.optim.Adadelta, Adapts learning rates based on running windows of gradients",
                   AdadeltaHyperparams, kernel=adadelta_kernel, init=adadelta_init,
                   param_slots=("square_avg", "acc_delta")))
