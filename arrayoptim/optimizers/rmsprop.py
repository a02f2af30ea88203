r"""RMSprop exactly as torch.optim implements it (``rmsprop``; the registry's alpha is timm's 0.9)."""
from __future__ import annotations

import dataclasses

from .._hyper import EPS, LR, NONNEG, Hyperparams
from .._registry import OptimInfo, register
from .._xp import increment_step, lerp_, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSpropHyperparams(Hyperparams):
    r"""torch.optim.RMSprop.

    With :math:`\alpha` = ``alpha``, :math:`\mu` = ``momentum``, :math:`\epsilon` = ``eps``, :math:`\lambda` =
    ``weight_decay``, :math:`\gamma` = ``lr``, and ``g`` negated first if ``maximize``:

    .. math::

        g &\leftarrow g + \lambda p \\
        v &\leftarrow \alpha v + (1-\alpha)\,g^2 \\
        \bar g &\leftarrow \bar g + (1-\alpha)(g - \bar g) \quad\text{(centered)} \\
        d &= \sqrt{v - \bar g^2} + \epsilon \ \text{(centered)} \quad\text{or}\quad d = \sqrt{v} + \epsilon \\
        b &\leftarrow \mu b + g / d, \quad p \leftarrow p - \gamma b \ (\mu > 0)
            \quad\text{or}\quad p \leftarrow p - \gamma\, g / d

    State: ``step`` (0-d), ``square_avg`` (v), ``momentum_buffer`` (b, only when ``momentum > 0``),
    ``grad_avg`` (:math:`\bar g`, only when ``centered``).

    Warnings
    --------
    * The registry's ``rmsprop`` has ``alpha=0.9`` and ``momentum=0.9``, as timm registers it (and its factory
      sets momentum); torch's class defaults are ``alpha=0.99, momentum=0``.
    * ``eps`` is added **outside** the square root and ``v`` starts at 0 (torch); timm's ``rmsproptf`` (and
      TensorFlow) put ``eps`` inside the root, start ``v`` at 1 and fold ``lr`` into the momentum buffer.

    References
    ----------
    Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e (2012).
    Graves, "Generating Sequences With Recurrent Neural Networks" (centered variant), arXiv:1308.0850.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('rmsprop', lr=0.01, momentum=0.0, eps=0.0)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x'].round(6), sorted(s['x'])
    (array([ 0.968377, -1.968377]), ['square_avg', 'step'])
    """

    anchor = "torch.optim.RMSprop"
    lr: float = 1e-2
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    maximize: bool = False

    checks = {"lr": LR, "eps": EPS, "momentum": NONNEG, "weight_decay": NONNEG, "alpha": NONNEG}


def rmsprop_init(xp, p, hp):
    s = {"step": new_step(xp, p), "square_avg": zeros_like(xp, p)}
    if hp.momentum > 0:
        s["momentum_buffer"] = zeros_like(xp, p)
    if hp.centered:
        s["grad_avg"] = zeros_like(xp, p)
    return s


def rmsprop_kernel(xp, p, g, s, hp, ctx):
    """Per-array RMSprop update; see :class:`RMSpropHyperparams` for the math."""
    alpha = hp.alpha
    if hp.maximize:
        g = -g
    increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    v = s["square_avg"]
    v *= alpha
    v += (1 - alpha) * (g * g)
    s["square_avg"] = v
    if hp.centered:
        ga = s.get("grad_avg")
        if ga is None:  # a state made without centered
            ga = zeros_like(xp, p)
        ga = lerp_(xp, ga, g, 1 - alpha)
        s["grad_avg"] = ga
        avg = xp.sqrt(v - ga * ga)
    else:
        avg = xp.sqrt(v)
    avg += hp.eps
    if hp.momentum > 0:
        buf = s.get("momentum_buffer")
        if buf is None:  # a state made without momentum
            buf = zeros_like(xp, p)
        buf *= hp.momentum
        buf += g / avg
        s["momentum_buffer"] = buf
        p -= hp.lr * buf
    else:
        p -= hp.lr * (g / avg)
    return p


register(OptimInfo("rmsprop", "torch.optim.RMSprop, Root Mean Square Propagation", RMSpropHyperparams,
                   kernel=rmsprop_kernel, init=rmsprop_init, defaults={"alpha": 0.9}, has_momentum=True,
                   param_slots=("square_avg", "momentum_buffer", "grad_avg")))
