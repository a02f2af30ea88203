r"""MADGRAD as timm implements it (``madgrad``, ``madgradw``)."""
from __future__ import annotations

import dataclasses

from .._hyper import LR, Hyperparams, Range
from .._registry import OptimInfo, register
from .._xp import assign, increment_step, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class MADGRADHyperparams(Hyperparams):
    r"""timm.optim.MADGRAD: momentumized, adaptive, dual-averaged gradient method.

    With :math:`\gamma` = ``lr``, :math:`\epsilon` = ``eps``, :math:`\mu` = ``momentum``, :math:`c = 1-\mu`,
    :math:`\lambda_{wd}` = ``weight_decay``, ``t`` the ``step`` slot after its increment, ``nu`` = ``grad_sum_sq``,
    ``s`` = ``s`` and ``x0`` = ``x0``:

    .. math::

        \lambda &= (\gamma + \epsilon)\sqrt{t} \\
        p &\leftarrow p\,(1 - \gamma\lambda_{wd}) \ \text{(decoupled\_decay)}
            \quad\text{or}\quad g \leftarrow g + \lambda_{wd} p \\
        x_0 &= \texttt{x0} \ (\mu \ne 0) \quad\text{or}\quad x_0 = p + s / (\nu^{1/3} + \epsilon) \ (\mu = 0) \\
        \nu &\leftarrow \nu + \lambda g^2 \qquad s \leftarrow s + \lambda g \\
        z &= x_0 - s / (\nu^{1/3} + \epsilon) \\
        p &\leftarrow (1 - c)\,p + c\,z \ (\mu \ne 0) \quad\text{or}\quad p \leftarrow z \ (\mu = 0)

    State: ``step`` (0-d), ``grad_sum_sq`` (:math:`\nu`), ``s``, ``x0`` (the initial param, only when
    ``momentum != 0``).

    Warnings
    --------
    * ``eps`` is **added to the learning rate** in the dual-averaging weight :math:`\lambda` (facebookresearch and
      timm), besides being added to the cube root; the paper has no such term. Decoupled decay uses the raw ``lr``.
    * timm keeps ``step`` as a Python int; here it is a 0-d array (float64 for float64 params, float32 otherwise).
    * ``x0`` is a copy of the param made by ``init`` (timm: at the param's first step); the two agree because a
      param without a grad is never touched.
    * timm rejects ``lr <= 0`` at construction but happily runs with ``group['lr'] = 0`` from a scheduler; arrayoptim
      validates per-step overrides with the same rules as the constructor, so it accepts ``lr=0`` (and rejects
      ``lr < 0`` and NaN).
    * With ``momentum == 0`` timm reconstructs ``x0`` from the state each step (the sparse-friendly form), exactly
      as done here; the rounding of that reconstruction is part of the trajectory.
    * The ``(1 - c)`` factor is computed as ``1 - (1 - momentum)`` as in timm, which is not always bit-equal to
      ``momentum``.

    References
    ----------
    Defazio & Jelassi, "Adaptivity without Compromise: A Momentumized, Adaptive, Dual Averaged Gradient Method for
    Stochastic Optimization", arXiv:2101.11075.
    """

    anchor = "timm.optim.MADGRAD"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0
    eps: float = 1e-6
    decoupled_decay: bool = False

    checks = {
        # timm's message says [0,1]; its check (momentum < 0 or momentum >= 1 raises) excludes 1
        "momentum": Range(ge=0.0, lt=1.0, message="Momentum {value} must be in the range [0,1] ({name}={value!r} "
                                                  "must be {bound}; timm's check excludes 1)"),
        "lr": LR,
        "weight_decay": Range(ge=0.0, message="Invalid weight_decay value: {value} Weight decay must be non-negative "
                                              "({name}={value!r})"),
        "eps": Range(ge=0.0, message="Invalid epsilon value: {value} Eps must be non-negative ({name}={value!r})"),
    }


def madgrad_init(xp, p, hp):
    s = {"step": new_step(xp, p), "grad_sum_sq": zeros_like(xp, p), "s": zeros_like(xp, p)}
    if hp.momentum != 0:
        s["x0"] = xp.asarray(p, copy=True)
    return s


def madgrad_kernel(xp, p, g, s, hp, ctx):
    """Per-array MADGRAD update; see :class:`MADGRADHyperparams` for the math."""
    eps = hp.eps
    t = increment_step(s)
    lamb = like(xp, (hp.lr + eps) * xp.sqrt(t), p)
    if hp.weight_decay != 0:
        if hp.decoupled_decay:
            p *= 1.0 - hp.lr * hp.weight_decay
        else:
            g = g + hp.weight_decay * p
    nu, sm = s["grad_sum_sq"], s["s"]
    if hp.momentum == 0:
        x0 = p + sm / (nu ** (1 / 3) + eps)
    else:
        x0 = s.get("x0")
        if x0 is None:  # a state made with momentum=0: start the average from here
            x0 = xp.asarray(p, copy=True)
            s["x0"] = x0
    nu += lamb * g * g
    rms = nu ** (1 / 3) + eps
    sm += lamb * g
    s["grad_sum_sq"], s["s"] = nu, sm
    z = x0 - sm / rms
    if hp.momentum == 0:
        return assign(p, z)
    ck = 1 - hp.momentum
    p *= 1 - ck
    p += ck * z
    return p


register(
    OptimInfo("madgrad", "Momentum-based Adaptive gradient method", MADGRADHyperparams, kernel=madgrad_kernel,
              init=madgrad_init, param_slots=("grad_sum_sq", "s", "x0"), has_momentum=True),
    variants={"madgradw": ("MADGRAD with decoupled weight decay", {"decoupled_decay": True})},
)
