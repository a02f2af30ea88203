r"""LaProp exactly as timm implements it (``laprop``, ``lapropc``, ``claprop``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, MAX_LR_SNAPSHOT, Hyperparams, hyperfield
from .._registry import OptimInfo, register
from .._xp import caution, decay_scale, increment_step, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class LaPropHyperparams(Hyperparams):
    r"""timm.optim.LaProp: momentum of the RMS-normalised gradient (momentum and adaptivity separated).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr`` (this step's), :math:`\gamma_{\max}` = ``max_lr_snapshot``, ``m`` = ``exp_avg``,
    ``v`` = ``exp_avg_sq``, :math:`a_1` = ``exp_avg_lr_1``, :math:`a_2` = ``exp_avg_lr_2`` (0-d, start at 0):

    .. math::

        a_1 &\leftarrow \beta_1 a_1 + (1-\beta_1)\gamma \qquad a_2 \leftarrow \beta_2 a_2 + (1-\beta_2) \\
        v &\leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        m &\leftarrow \beta_1 m + \gamma(1-\beta_1)\,\frac{g}{\sqrt{v / a_2} + \epsilon} \\
        u &\leftarrow \mathrm{caution}(m, g) \text{ (caution)} \quad\text{else}\quad u = m \\
        p &\leftarrow p - \frac{\gamma}{a_1}\,u \quad (\text{step size 0 while } a_1 = 0) \\
        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (corrected\_weight\_decay; only when } \lambda \ne 0)

    :math:`a_2 = 1-\beta_2^t` and, for a constant lr, :math:`a_1 = \gamma(1-\beta_1^t)`: the two slots are the
    bias corrections, with the first one weighted by the lr history (a schedule changes it).

    State: ``step`` (0-d), ``exp_avg``, ``exp_avg_lr_1`` (0-d), ``exp_avg_lr_2`` (0-d), ``exp_avg_sq``.

    Warnings
    --------
    * ``lr`` is inside the momentum (``m`` accumulates lr-scaled steps) and the step divides by the running lr
      average :math:`a_1`, so changing ``lr`` mid-training does not rescale the momentum already accumulated the
      way it would in Adam.
    * The decay is applied **after** the update (and skipped entirely when ``weight_decay == 0``).
    * timm keeps ``exp_avg_lr_1`` as a Python float (double precision) when ``lr`` is a float; here it is a 0-d
      array of the ``step`` slot's dtype (float32 for float32 params). ``exp_avg_lr_2`` matches timm's (a 0-d
      tensor of the default float dtype).
    * timm does not check ``weight_decay``; a negative value is rejected here.

    References
    ----------
    Ziyin et al., "LaProp: Separating Momentum and Adaptivity in Adam", arXiv:2002.04839.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('laprop', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, opt.init(p))
    >>> p['x'], round(float(s['x']['exp_avg_lr_1']), 12)
    (array([ 0.9, -1.9]), 0.01)
    """

    anchor = "timm.optim.LaProp"
    lr: float = 4e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-15
    weight_decay: float = 0.0
    caution: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**ADAM_CHECKS, "max_lr_snapshot": MAX_LR_SNAPSHOT}


def laprop_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_lr_1": new_step(xp, p),
            "exp_avg_lr_2": new_step(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def laprop_kernel(xp, p, g, s, hp, ctx):
    """Per-array LaProp update; see :class:`LaPropHyperparams` for the math."""
    beta1, beta2 = hp.betas
    increment_step(s)
    a1, a2 = s["exp_avg_lr_1"], s["exp_avg_lr_2"]
    a1 *= beta1
    a1 += (1 - beta1) * hp.lr
    a2 *= beta2
    a2 += 1 - beta2
    s["exp_avg_lr_1"], s["exp_avg_lr_2"] = a1, a2
    nonzero = a1 != 0
    step_size = xp.where(nonzero, hp.lr / xp.where(nonzero, a1, xp.ones_like(a1)), xp.zeros_like(a1))
    m, v = s["exp_avg"], s["exp_avg_sq"]
    v *= beta2
    v += (1 - beta2) * (g * g)
    denom = xp.sqrt(v / like(xp, a2, p))
    denom += hp.eps
    m *= beta1
    m += (hp.lr * (1 - beta1)) * (g / denom)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    u = caution(xp, m, g) if hp.caution else m
    p -= like(xp, step_size, p) * u
    if hp.weight_decay != 0:
        scale = decay_scale(hp)
        p -= (scale * hp.weight_decay) * p
    return p


register(
    OptimInfo("laprop", "Separating Momentum and Adaptivity in Adam", LaPropHyperparams, kernel=laprop_kernel,
              init=laprop_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True),
    variants={
        "lapropc": ("LaProp with corrected weight decay (lr²/max_lr scaling)", {"corrected_weight_decay": True}),
        "claprop": ("Cautious LaProp", {"caution": True}),
    },
)
