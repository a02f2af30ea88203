r"""timm's legacy NAdam and RAdam, which pre-date torch.optim's (``nadamlegacy``, ``radamlegacy``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, NONNEG, Hyperparams
from .._registry import OptimInfo, register
from .._xp import assign, increment_step, like, new_step, step_dtype, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class NAdamLegacyHyperparams(Hyperparams):
    r"""timm.optim.NAdamLegacy: Dozat's NAdam with Keras' warming momentum schedule (torch PR #1408).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\psi` = ``schedule_decay``, ``t`` the ``step`` slot after its increment and
    :math:`M` the ``m_schedule`` slot (1 initially):

    .. math::

        g &\leftarrow g + \lambda p \\
        \mu_t &= \beta_1\,(1 - \tfrac12\, 0.96^{t\psi}) \qquad \mu_{t+1} = \beta_1\,(1 - \tfrac12\, 0.96^{(t+1)\psi}) \\
        M' &= M\mu_t \qquad M'' = M\mu_t\mu_{t+1} \qquad M \leftarrow M' \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2) g^2 \\
        d &= \sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon \\
        p &\leftarrow p - \gamma\,\frac{1-\mu_t}{1-M'}\,\frac{g}{d} - \gamma\,\frac{\mu_{t+1}}{1-M''}\,\frac{m}{d}

    State: ``step`` (0-d), ``m_schedule`` (0-d, the running product of :math:`\mu`), ``exp_avg`` (m),
    ``exp_avg_sq`` (v).

    Warnings
    --------
    * Not torch.optim.NAdam (``nadam``): torch's ``momentum_decay`` schedule uses :math:`0.96^{t\psi}` with
      ``momentum_decay=4e-3`` too, but torch has since fixed the ``mu_product`` bookkeeping and offers decoupled
      decay; timm's legacy class keeps the original PR's arithmetic and L2 decay only.
    * timm keeps ``step`` as a Python int and ``m_schedule`` as a Python float (computed in double precision);
      here both are 0-d arrays (float64 for float64 params, float32 otherwise, so float32 params carry the
      schedule in float32).
    * timm only checks ``lr``; arrayoptim also rejects negative ``eps``/``weight_decay`` and betas outside [0, 1).

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop; Stanford CS229 report (2015).
    """

    anchor = "timm.optim.NAdamLegacy"
    lr: float = 2e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule_decay: float = 4e-3

    checks = {**ADAM_CHECKS, "schedule_decay": NONNEG}  # not checked by timm (torch's momentum_decay is)


def nadam_legacy_init(xp, p, hp):
    from array_api_compat import device

    return {"step": new_step(xp, p), "m_schedule": xp.ones((), dtype=step_dtype(xp, p), device=device(p)),
            "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def nadam_legacy_kernel(xp, p, g, s, hp, ctx):
    """Per-array NAdamLegacy update; see :class:`NAdamLegacyHyperparams` for the math."""
    beta1, beta2 = hp.betas
    psi = hp.schedule_decay
    t = increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    mc_t = beta1 * (1.0 - 0.5 * (0.96 ** (t * psi)))
    mc_t1 = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * psi)))
    ms = s["m_schedule"]
    ms_new = ms * mc_t
    ms_next = ms * mc_t * mc_t1
    s["m_schedule"] = assign(ms, ms_new)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    denom = xp.sqrt(v) / like(xp, xp.sqrt(1 - beta2 ** t), p) + hp.eps
    p -= like(xp, hp.lr * (1.0 - mc_t) / (1.0 - ms_new), p) * (g / denom)
    p -= like(xp, hp.lr * mc_t1 / (1.0 - ms_next), p) * (m / denom)
    return p


@dataclasses.dataclass(frozen=True, kw_only=True)
class RAdamLegacyHyperparams(Hyperparams):
    r"""timm.optim.RAdamLegacy: rectified Adam from the paper's code, with decoupled decay.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr`` and ``t`` the ``step`` slot after its increment:

    .. math::

        v &\leftarrow \beta_2 v + (1-\beta_2) g^2 \qquad m \leftarrow \beta_1 m + (1-\beta_1) g \\
        \rho_\infty &= \frac{2}{1-\beta_2} - 1 \qquad
            \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t} \\
        r_t &= \sqrt{(1-\beta_2^t)\,\frac{(\rho_t-4)(\rho_t-2)\,\rho_\infty}{(\rho_\infty-4)\,\rho_t\,(\rho_\infty-2)}} \\
        p &\leftarrow p - \gamma\lambda p \\
        p &\leftarrow p - \frac{\gamma\, r_t}{1-\beta_1^t}\,\frac{m}{\sqrt v + \epsilon} \quad (\rho_t \ge 5)
            \qquad\text{else}\qquad p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\, m

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v): float32 for half-precision params (as timm:
    registry field ``half_compute="float32"``), the param's dtype otherwise.

    Warnings
    --------
    * timm computes this optimizer **in float32 for every param dtype** (``p.float()``, ``grad.float()``, float32
      moments, copied back into the param). arrayoptim keeps timm's float32 compute and float32 moments for
      float16/bfloat16 params, but computes float32 and float64 params in their own dtype (the house rule: state
      keeps the param's dtype, and every backend agrees to 1e-10 in float64). So for **float64 params arrayoptim
      is more precise than timm**, and the two differ by float32 rounding (measured at most 4.8e-8 relative in
      params, 6.1e-8 in state over 12 float64 steps, re-synced each step). That gap is the float32 compute alone:
      timm's own ``step`` run with ``Tensor.float()`` kept float64 matches arrayoptim within 1e-10 (params and
      state, tested). A bit-exact float32 emulation is not
      possible anyway: torch's float32 CPU kernels fuse ``add_(alpha=)``/``addcmul_`` into FMAs and, on AVX-512
      builds, its float32 ``sqrt`` is not correctly rounded (about 17% of values are one ulp off IEEE sqrt).
    * Weight decay is decoupled (``p -= lr * wd * p``), unlike torch.optim.RAdam's default L2; the rectified
      branch's denominator has no :math:`\sqrt{1-\beta_2^t}` (it is folded into :math:`r_t`), and the threshold is
      :math:`\rho_t \ge 5` (torch: ``> 5``). The un-rectified branch is SGD with momentum (no denominator).
    * The branch on :math:`\rho_t` is a host-side Python ``if`` in timm; here both are computed and selected with
      ``xp.where`` (when :math:`\rho_\infty \le 5` the rectified branch can never be taken and is skipped).
    * Param groups: the original implementation (and older timm) cached :math:`(\rho_t, \text{step size})` in one
      buffer shared by every param group, with the first group's lr and betas baked in, so other groups used the
      wrong step size. timm 1.0.31 computes it per param group, and so does arrayoptim: numbers match timm 1.0.31
      for any grouping, and match older timm only for a single group (or groups sharing lr and betas).
    * timm keeps ``step`` as a Python int (here a 0-d array) and validates nothing; arrayoptim applies the usual
      range checks.

    References
    ----------
    Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond", arXiv:1908.03265.
    """

    anchor = "timm.optim.RAdamLegacy"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0

    checks = ADAM_CHECKS


def radam_legacy_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def radam_legacy_kernel(xp, p, g, s, hp, ctx):
    """Per-array RAdamLegacy update; see :class:`RAdamLegacyHyperparams` for the math."""
    beta1, beta2 = hp.betas
    m, v = s["exp_avg"], s["exp_avg_sq"]
    v *= beta2
    v += (1 - beta2) * g * g
    m *= beta1
    m += (1 - beta1) * g
    s["exp_avg"], s["exp_avg_sq"] = m, v
    t = increment_step(s)
    beta2_t = beta2 ** t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2_t / (1 - beta2_t)
    bc1 = 1 - beta1 ** t
    if hp.weight_decay != 0:
        p += (-hp.weight_decay * hp.lr) * p
    plain = p - like(xp, hp.lr / bc1, p) * m
    if rho_inf > 5:  # static: rho_t < rho_inf, so below 5 the rectified branch never happens
        rect = rho_t >= 5
        arg = ((1 - beta2_t) * (rho_t - 4) / (rho_inf - 4) * (rho_t - 2) / rho_t * rho_inf / (rho_inf - 2))
        arg = xp.where(rect, arg, xp.ones_like(arg))  # keep sqrt away from the negative values it never selects
        neg_step = -like(xp, hp.lr * xp.sqrt(arg) / bc1, p)
        rectified = p + (neg_step * m) / (xp.sqrt(v) + hp.eps)  # torch's addcdiv_: self + (value * t1) / t2
        return assign(p, xp.where(rect, rectified, plain))
    return assign(p, plain)


register(OptimInfo("nadamlegacy", "legacy impl of NAdam that pre-dates inclusion in torch.optim",
                   NAdamLegacyHyperparams, kernel=nadam_legacy_kernel, init=nadam_legacy_init,
                   param_slots=("exp_avg", "exp_avg_sq"), has_betas=True))
register(OptimInfo("radamlegacy", "legacy impl of RAdam that predates inclusion in torch.optim",
                   RAdamLegacyHyperparams, kernel=radam_legacy_kernel, init=radam_legacy_init, has_betas=True,
                   half_compute="float32"))
