r"""LARS / LARC exactly as timm implements them (``lars``, ``larc``, ``nlars``, ``nlarc``): a layer-wise trust ratio
on the (weight-decayed) gradient, then torch-SGD momentum.
"""
from __future__ import annotations

import dataclasses

from .._hyper import EPS, LR, NESTEROV, NONNEG, Hyperparams, Range
from .._registry import OptimInfo, register
from .._xp import l2_norm, momentum_buffer


@dataclasses.dataclass(frozen=True, kw_only=True)
class LarsHyperparams(Hyperparams):
    r"""timm.optim.Lars (LARS, and LARC with ``trust_clip``).

    With :math:`\eta` = ``trust_coeff``, :math:`\lambda` = ``weight_decay``, :math:`\epsilon` = ``eps``,
    :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``, :math:`\gamma` = ``lr``:

    .. math::

        r &= \frac{\eta\,\lVert p\rVert}{\lVert g\rVert + \lambda\lVert p\rVert + \epsilon}
            \ (1 \text{ if } \lVert p\rVert = 0 \text{ or } \lVert g\rVert = 0), \quad
            r \leftarrow \min(r/\gamma, 1) \ \text{(trust\_clip, LARC)} \\
        g &\leftarrow (g + \lambda p)\, r \qquad \text{(only if } \lambda \ne 0 \text{ or always\_adapt)} \\
        \mathrm{buf} &\leftarrow \begin{cases} g & \text{first step} \\
                                        \mu\,\mathrm{buf} + (1-\tau)\,g & \text{after} \end{cases}, \quad
        d = g + \mu\,\mathrm{buf} \ \text{(nesterov)} \ \text{or} \ \mathrm{buf} \\
        p &\leftarrow p - \gamma d

    State: ``momentum_buffer`` (only when ``momentum != 0``; created at the first step as a copy of ``g``).

    Warnings
    --------
    * The trust ratio only applies where ``weight_decay != 0`` (or ``always_adapt``); with the registry's
      ``weight_decay=0`` LARS is plain SGD. Weight decay is also only added to ``g`` in that branch (it is
      multiplied by the trust ratio with it).
    * optax.lars uses :math:`\eta\lVert p\rVert/\lVert g + \lambda p\rVert`; timm (and NVIDIA apex LARC)
      :math:`\eta\lVert p\rVert/(\lVert g\rVert + \lambda\lVert p\rVert + \epsilon)`.
    * LARC divides the ratio by ``lr``. At ``lr=0`` timm computes ``r/0`` (``inf``, clipped to 1; ``NaN`` when
      ``trust_coeff=0``); arrayoptim takes the clipped ratio as 1 (0 when ``r == 0``) without dividing by zero.
      The step is 0 either way, the momentum buffer differs only in that ``trust_coeff=0`` corner.
    * The registry's names default to ``momentum=0.9`` (timm's factory), the class to 0; ``lr`` defaults to 1.0.

    References
    ----------
    You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", arXiv:1708.03888.
    """

    anchor = "timm.optim.Lars"
    lr: float = 1.0
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    trust_coeff: float = 1e-3
    eps: float = 1e-8
    trust_clip: bool = False
    always_adapt: bool = False

    checks = {"lr": LR, "momentum": NONNEG, "weight_decay": NONNEG, "eps": EPS, "nesterov": NESTEROV,
              "trust_coeff": NONNEG, "dampening": Range(ge=0.0, le=1.0)}


def lars_kernel(xp, p, g, s, hp, ctx):
    """Per-array LARS/LARC update; see :class:`LarsHyperparams` for the math."""
    wd = hp.weight_decay
    if wd != 0 or hp.always_adapt:
        w_norm, g_norm = l2_norm(xp, p), l2_norm(xp, g)
        den = g_norm + w_norm * wd + hp.eps
        ok = xp.logical_and(w_norm > 0, g_norm > 0)
        ratio = xp.where(ok, hp.trust_coeff * w_norm / xp.where(den > 0, den, 1.0), 1.0)
        if hp.trust_clip:
            if hp.lr > 0:
                ratio = xp.clip(ratio / hp.lr, max=1.0)
            else:  # min(r / 0, 1) without the division
                ratio = xp.where(ratio > 0, 1.0, 0.0 * ratio)
        g = (g + wd * p) * ratio
    if hp.momentum != 0:
        buf = momentum_buffer(xp, s, g, hp.momentum, hp.dampening)
        g = g + hp.momentum * buf if hp.nesterov else buf
    p -= hp.lr * g
    return p


register(
    OptimInfo("lars", "Layer-wise Adaptive Rate Scaling", LarsHyperparams, kernel=lars_kernel,
              param_slots=("momentum_buffer",), has_momentum=True),
    variants={
        "larc": ("LARS with trust ratio clipping for stability", {"trust_clip": True}),
        "nlars": ("LARS with Nesterov momentum", {"nesterov": True}),
        "nlarc": ("LARS with Nesterov momentum & trust ratio clipping", {"nesterov": True, "trust_clip": True}),
    },
)
