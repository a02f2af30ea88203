r"""RAdam exactly as torch.optim implements it (``radam``, and ``radamw`` with decoupled weight decay)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import ADAM_CHECKS, Hyperparams
from .._registry import OptimInfo, register
from .._xp import increment_step, like, new_step, update_moments, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class RAdamHyperparams(Hyperparams):
    r"""torch.optim.RAdam: Adam with a variance-rectified adaptive step that falls back to momentum SGD early on.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - \gamma\lambda) \ \text{(decoupled)} \quad\text{or}\quad g \leftarrow g + \lambda p \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        \hat m &= m / (1-\beta_1^t) \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1 \qquad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1-\beta_2^t} \\
        r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}} \\
        p &\leftarrow \begin{cases}
            p - \gamma\,\hat m\, r_t\, \dfrac{\sqrt{1-\beta_2^t}}{\sqrt v + \epsilon} & \rho_t > 5 \\
            p - \gamma\,\hat m & \text{otherwise}
        \end{cases}

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    Warnings
    --------
    * The threshold is torch's strict :math:`\rho_t > 5` (with the default betas the rectified step starts at
      ``t = 6``); the paper and timm's ``radamlegacy`` use :math:`\rho_t \ge 5`, and optax's ``radam`` has a
      ``threshold`` argument. When :math:`\rho_\infty \le 5` (:math:`\beta_2 \le 2/3`) the step is never rectified.
    * ``eps`` is added to the *uncorrected* :math:`\sqrt v` and :math:`\sqrt{1-\beta_2^t}` multiplies outside
      (torch); timm's ``radamlegacy`` also drops that factor from the denominator and decays weights decoupled.
    * ``radamw`` is the same class with ``decoupled_weight_decay=True`` as timm registers it (torch has no
      ``RAdamW`` class).
    * The branch is taken per step from the ``step`` slot with ``where`` (no host sync), so both branches'
      arithmetic runs; :math:`\rho_t` is computed in the ``step`` dtype (torch: in Python double precision).

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", arXiv:1908.03265.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('radam', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x']  # step 1 is not rectified: p - lr * m_hat = p - lr * g
    array([ 0.95, -1.6 ])
    """

    anchor = "torch.optim.RAdam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled_weight_decay: bool = False
    maximize: bool = False

    checks = ADAM_CHECKS


def radam_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def radam_kernel(xp, p, g, s, hp, ctx):
    """Per-array RAdam update; see :class:`RAdamHyperparams` for the math."""
    beta1, beta2 = hp.betas
    lr = hp.lr
    if hp.maximize:
        g = -g
    t = increment_step(s)
    if hp.weight_decay != 0:
        if hp.decoupled_weight_decay:
            p *= 1 - lr * hp.weight_decay
        else:
            g = g + hp.weight_decay * p
    m, v = update_moments(xp, s, g, hp.betas)
    m_hat = m / like(xp, 1 - beta1 ** t, p)
    rho_inf = 2 / (1 - beta2) - 1
    if not rho_inf > 5.0:  # rho_t < rho_inf <= 5 at every step: never rectified
        p -= m_hat * lr
        return p
    bc2 = 1 - beta2 ** t
    rho_t = rho_inf - 2 * t * (beta2 ** t) / bc2
    on = rho_t > 5.0
    rho = xp.where(on, rho_t, xp.full_like(rho_t, rho_inf))  # keeps the unused branch finite (r = 1)
    rect = xp.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
    adaptive = like(xp, xp.sqrt(bc2), p) / (xp.sqrt(v) + hp.eps)
    one = xp.ones((), dtype=p.dtype, device=device(p))
    p -= m_hat * lr * xp.where(on, adaptive * like(xp, rect, p), one)
    return p


_RADAM = OptimInfo("radam", "torch.optim.RAdam, Rectified Adam with variance adaptation", RAdamHyperparams,
                   kernel=radam_kernel, init=radam_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True)
register(_RADAM, variants={"radamw": (
    "torch.optim.RAdamW, Rectified Adam with variance adaptation and decoupled weight decay",
    {"decoupled_weight_decay": True})})
