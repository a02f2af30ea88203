r"""Adagrad exactly as torch.optim implements it (``adagrad``; the registry's eps is timm's 1e-8)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import EPS, LR, NONNEG, Hyperparams
from .._registry import OptimInfo, register
from .._xp import increment_step, like, new_step


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdagradHyperparams(Hyperparams):
    r"""torch.optim.Adagrad.

    With :math:`\eta` = ``lr_decay``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and ``g`` negated first if ``maximize``:

    .. math::

        g &\leftarrow g + \lambda p \\
        \tilde\gamma &= \frac{\gamma}{1 + (t-1)\,\eta} \\
        S &\leftarrow S + g^2 \qquad (S_0 = \texttt{initial\_accumulator\_value}) \\
        p &\leftarrow p - \tilde\gamma\,\frac{g}{\sqrt{S} + \epsilon}

    State: ``step`` (0-d), ``sum`` (S). Both exist from ``init`` (torch creates them in the constructor).

    Warnings
    --------
    * The registry's ``adagrad`` has ``eps=1e-8``, as timm registers it; torch's class default is ``1e-10``
      (pass ``eps=1e-10`` to get torch's).
    * ``eps`` is added **outside** the square root (torch); optax's ``adagrad`` uses
      :math:`1/\sqrt{S + \epsilon}` and starts the accumulator at 0.1.
    * Sparse gradients (torch's ``grad.is_sparse`` path) are not represented: gradients are dense arrays.

    References
    ----------
    Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
    JMLR 12 (2011).

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adagrad', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x'], s['x']['sum']
    (array([ 0.9, -1.9]), array([ 0.25, 16.  ]))
    """

    anchor = "torch.optim.Adagrad"
    lr: float = 1e-2
    lr_decay: float = 0.0
    weight_decay: float = 0.0
    initial_accumulator_value: float = 0.0
    eps: float = 1e-10
    maximize: bool = False

    checks = {"lr": LR, "lr_decay": NONNEG, "weight_decay": NONNEG, "initial_accumulator_value": NONNEG, "eps": EPS}


def adagrad_init(xp, p, hp):
    return {"step": new_step(xp, p),
            "sum": xp.full(p.shape, hp.initial_accumulator_value, dtype=p.dtype, device=device(p))}


def adagrad_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adagrad update; see :class:`AdagradHyperparams` for the math."""
    if hp.maximize:
        g = -g
    t = increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    clr = hp.lr if hp.lr_decay == 0 else like(xp, hp.lr / (1 + (t - 1) * hp.lr_decay), p)
    acc = s["sum"]
    acc += g * g
    s["sum"] = acc
    std = xp.sqrt(acc)
    std += hp.eps
    p -= clr * (g / std)
    return p


register(OptimInfo("adagrad", "torch.optim.Adagrad, Adapts learning rates using cumulative squared gradients",
                   AdagradHyperparams, kernel=adagrad_kernel, init=adagrad_init, defaults={"eps": 1e-8},
                   param_slots=("sum",)))
