r"""Stochastic gradient descent: torch.optim.SGD (``sgd``, ``momentum``, ``nesterov``) and timm's SGDW
(``sgdw``, ``nesterovw``, ``sgdc``, ``csgdw``, ``csgdc``).
"""
from __future__ import annotations

import dataclasses

from .._hyper import LR, MAX_LR_SNAPSHOT, NESTEROV, NONNEG, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, register
from .._xp import caution, decay_scale, momentum_buffer


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGDHyperparams(Hyperparams):
    r"""torch.optim.SGD.

    With :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, and ``g`` negated first when ``maximize``:

    .. math::

        g &\leftarrow g + \lambda p \\
        \mathrm{buf} &\leftarrow \begin{cases} g & \text{first step} \\
                                        \mu\,\mathrm{buf} + (1-\tau)\,g & \text{after} \end{cases} \\
        g &\leftarrow g + \mu\,\mathrm{buf} \text{ (nesterov)} \quad\text{or}\quad g \leftarrow \mathrm{buf} \\
        p &\leftarrow p - \gamma g

    State: ``momentum_buffer`` (only when ``momentum != 0``; created at the first step as a copy of ``g``).

    Warnings
    --------
    * The buffer starts as the first gradient itself, skipping dampening (with ``dampening=0.5`` the first buffer
      is ``g``, not ``0.5 g``), and ``lr`` multiplies the buffer when it is applied (Sutskever et al. fold ``lr``
      into the buffer; the two differ as soon as ``lr`` changes).
    * Nesterov is torch's reformulation :math:`g + \mu\,\mathrm{buf}`, not a look-ahead gradient evaluation.
    * The registry's ``sgd`` (and its alias ``nesterov``) is **Nesterov** SGD with ``momentum=0.9``, as timm
      registers it; torch's class defaults are ``momentum=0, nesterov=False``.

    References
    ----------
    Sutskever et al., "On the importance of initialization and momentum in deep learning", ICML 2013.
    """

    anchor = "torch.optim.SGD"
    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False

    # dampening is not checked by torch: the grad enters the buffer times 1 - dampening (> 1 ascends), checked after
    # torch's Nesterov rule so that rule keeps its message
    checks = {"lr": LR, "momentum": NONNEG, "weight_decay": NONNEG, "nesterov": NESTEROV,
              "dampening": Range(ge=0.0, le=1.0)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGDWHyperparams(SGDHyperparams):
    r"""timm.optim.SGDW: SGD with decoupled weight decay, optional caution and corrected decay.

    .. math::

        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (corrected\_weight\_decay)} \\
        \mathrm{buf}, d &: \text{as torch SGD, without the } \lambda p \text{ term} \\
        d &\leftarrow d \odot \frac{\mathbb{1}[d g > 0]}{\max(\mathrm{mean}(\mathbb{1}[d g > 0]), 10^{-3})}
            \text{ (caution, when momentum} \ne 0) \\
        p &\leftarrow p - \gamma d

    :math:`\gamma_{\max}` is ``max_lr_snapshot``: the ``lr`` given at construction (per-step overrides of ``lr``
    from a schedule do not change it), as timm snapshots it.

    Warnings
    --------
    Caution only applies when ``momentum != 0`` (timm masks the momentum direction). The decay multiplies the
    param even when ``weight_decay`` is 0 (by exactly 1).

    References
    ----------
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    """

    anchor = "timm.optim.SGDW"
    caution: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**SGDHyperparams.checks, "max_lr_snapshot": MAX_LR_SNAPSHOT}


def sgd_kernel(xp, p, g, s, hp, ctx):
    """Per-array SGD (torch) / SGDW (timm) update; see the records' docstrings for the math.

    In place it uses augmented operators on the claimed ``p`` and ``momentum_buffer`` and at most two param-sized
    temporaries (the L2-decayed grad and the Nesterov direction).
    """
    decoupled = isinstance(hp, SGDWHyperparams)
    if hp.maximize and decoupled and hp.momentum != 0:
        return _sgdw_maximize(xp, p, g, s, hp)
    if hp.maximize:
        g = -g
    if decoupled:
        scale = decay_scale(hp)
        p *= 1.0 - scale * hp.weight_decay
    elif hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    if hp.momentum != 0:
        buf = momentum_buffer(xp, s, g, hp.momentum, hp.dampening)
        if hp.nesterov:
            d = buf * hp.momentum  # g + momentum * buf
            d += g
        else:
            d = buf
        if decoupled and hp.caution:
            d = caution(xp, d, g)
        if d is not buf:
            d *= hp.lr
            p -= d
            return p
        g = d
    p -= hp.lr * g
    return p


def _sgdw_maximize(xp, p, g, s, hp):
    """:func:`sgd_kernel` for timm's SGDW with momentum and ``maximize``: the same arithmetic on ``-g`` without a
    copy of it (``a + (-g)`` is ``a - g`` exactly, and so is every product with ``-g``)."""
    p *= 1.0 - decay_scale(hp) * hp.weight_decay
    buf = s.get("momentum_buffer")
    if buf is None:
        buf = -g
    else:
        buf *= hp.momentum
        if hp.dampening != 0:
            buf -= (1 - hp.dampening) * g
        else:
            buf -= g
    s["momentum_buffer"] = buf
    if hp.nesterov:
        d = buf * hp.momentum
        d -= g
    else:
        d = buf
    if hp.caution:
        d = caution(xp, d, g, negated=True)
    if d is buf:
        p -= hp.lr * d
    else:
        d *= hp.lr
        p -= d
    return p


register(
    OptimInfo("sgd", "torch.Optim Stochastic Gradient Descent (SGD) with Nesterov momentum", SGDHyperparams,
              kernel=sgd_kernel, defaults={"nesterov": True}, has_eps=False, has_momentum=True,
              param_slots=("momentum_buffer",), locality="element"),
    variants={"momentum": ("torch.Optim Stochastic Gradient Descent (SGD) with classical momentum",
                           {"nesterov": False})},
    aliases=["nesterov"],
)

register(
    OptimInfo("sgdw", "SGD with decoupled weight decay and Nesterov momentum", SGDWHyperparams,
              kernel=sgd_kernel, defaults={"nesterov": True}, has_eps=False, has_momentum=True,
              param_slots=("momentum_buffer",), locality="element"),
    variants={
        "sgdc": ("SGD with corrected decoupled weight decay (lr²/max_lr scaling)",
                 {"corrected_weight_decay": True}),
        "csgdw": ("Cautious SGD with decoupled weight decay and Nesterov momentum", {"caution": True}),
        "csgdc": ("Cautious SGD with corrected decoupled weight decay (lr²/max_lr scaling)",
                  {"caution": True, "corrected_weight_decay": True}),
    },
    aliases=["nesterovw"],
)
