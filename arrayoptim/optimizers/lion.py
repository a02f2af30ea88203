r"""Lion exactly as timm implements it (``lion``, ``lionc``, ``clion``, ``clionc``)."""
from __future__ import annotations

import dataclasses

from .._hyper import BETAS, LR, MAX_LR_SNAPSHOT, NONNEG, Hyperparams, hyperfield
from .._registry import OptimInfo, register
from .._xp import caution, decay_scale, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class LionHyperparams(Hyperparams):
    r"""timm.optim.Lion: the sign of an interpolated momentum (EvoLved Sign Momentum).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\lambda` = ``weight_decay``, :math:`\gamma` = ``lr``,
    :math:`\gamma_{\max}` = ``max_lr_snapshot``, ``m`` = ``exp_avg``, ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (corrected\_weight\_decay)} \\
        u &\leftarrow \mathrm{sign}\big(m + (1-\beta_1)(g - m)\big) \\
        u &\leftarrow \mathrm{caution}(u, g) \text{ (caution)} \\
        p &\leftarrow p - \gamma u \\
        m &\leftarrow m + (1-\beta_2)(g - m)

    State: ``exp_avg`` only (no ``step``).

    Warnings
    --------
    * Two betas with different roles: :math:`\beta_1` interpolates for the update, :math:`\beta_2` for the stored
      momentum (timm's defaults ``(0.9, 0.99)``, as the paper).
    * ``weight_decay`` defaults to 0 (``optax.lion`` defaults to 1e-3); there is no ``eps``.
    * :math:`\mathrm{sign}(0) = 0`: coordinates whose interpolated momentum is exactly 0 do not move.
    * timm does not check ``weight_decay``; a negative value is rejected here.

    References
    ----------
    Chen et al., "Symbolic Discovery of Optimization Algorithms", arXiv:2302.06675.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('lion', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, opt.init(p))
    >>> p['x']
    array([ 0.9, -1.9])
    """

    anchor = "timm.optim.Lion"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    caution: bool = False
    corrected_weight_decay: bool = False
    maximize: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {"lr": LR, "betas": BETAS, "weight_decay": NONNEG, "max_lr_snapshot": MAX_LR_SNAPSHOT}


def lion_init(xp, p, hp):
    return {"exp_avg": zeros_like(xp, p)}


def lion_kernel(xp, p, g, s, hp, ctx):
    """Per-array Lion update; see :class:`LionHyperparams` for the math.

    In place: augmented operators on the claimed ``p`` and ``exp_avg``, at most two param-sized temporaries.
    """
    beta1, beta2 = hp.betas
    scale = decay_scale(hp)
    p *= 1.0 - scale * hp.weight_decay
    m = s["exp_avg"]
    if hp.maximize:  # the same arithmetic on -g without a copy of it: every step below is negated exactly
        u = g + m  # -(-g - m)
        u *= 1 - beta1
        u -= m  # -(m + (1 - beta1) * (-g - m))
        u = xp.sign(u)
        if hp.caution:
            u = caution(xp, u, g)  # (-u) * (-g) > 0 is u * g > 0; the masked update is negated
        u *= hp.lr
        p += u
        u = g + m  # m += (1 - beta2) * (-g - m)
        u *= 1 - beta2
        m -= u
        s["exp_avg"] = m
        return p
    u = g - m  # sign(m + (1 - beta1) * (g - m))
    u *= 1 - beta1
    u += m
    u = xp.sign(u)
    if hp.caution:
        u = caution(xp, u, g)
    u *= hp.lr
    p -= u
    u = g - m  # m += (1 - beta2) * (g - m)
    u *= 1 - beta2
    m += u
    s["exp_avg"] = m
    return p


_CORRECTED = " with corrected weight decay (lr²/max_lr scaling)"
register(
    OptimInfo("lion", "Evolved Sign Momentum optimizer for improved convergence", LionHyperparams,
              kernel=lion_kernel, init=lion_init, param_slots=("exp_avg",), has_eps=False, has_betas=True,
              locality="element"),
    variants={
        "lionc": ("Lion" + _CORRECTED, {"corrected_weight_decay": True}),
        "clion": ("Cautious Lion", {"caution": True}),
        "clionc": ("Cautious Lion" + _CORRECTED, {"caution": True, "corrected_weight_decay": True}),
    },
)
