"""Pure equivalents of timm's learning-rate schedulers (``timm.scheduler``, timm 1.0.31).

Every factory takes the base lr (the param group's ``initial_lr``) first and then the timm class's own
keyword arguments and defaults. The returned schedule ``s`` gives, for every ``t``, the value timm writes into the
param group when it is driven with ``step(t)`` (``t_in_epochs=True``) or ``step_update(t)``
(``t_in_epochs=False``): ``_get_lr(t)`` with the lr noise of step ``t`` applied. The arithmetic follows timm's
expressions operation by operation, so the values are identical, not merely close.

Multiple param groups: timm computes every group from its own ``initial_lr`` with shared ``lr_min`` /
``warmup_lr_init`` and shared noise; build one schedule per base lr. A group's ``lr_scale`` (layer decay)
multiplies the value: ``lr = s(t) * lr_scale``.
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Callable, NamedTuple, Sequence

from . import _base as B
from ._base import Schedule
from ._noise import noise_applies, timm_noise
from ._torch import _plateau_params, _plateau_update

__all__ = [
    "cosine_lr_scheduler",
    "tanh_lr_scheduler",
    "step_lr_scheduler",
    "multistep_lr_scheduler",
    "poly_lr_scheduler",
    "wsd_lr_scheduler",
    "plateau_lr_scheduler",
    "PlateauLRScheduler",
    "PlateauLRSchedulerState",
    "create_scheduler_v2",
    "TIMM_EQUIVALENTS",
]


# ----------------------------------------------------------------------------------------------------------------
# shared pieces


def _check_noise(noise_range_t, noise_pct, noise_std, noise_seed, noise_type="normal"):
    if noise_range_t is not None:
        if isinstance(noise_range_t, (list, tuple)):
            if len(noise_range_t) != 2:
                raise ValueError(f"noise_range_t must be None, a number or a pair (lo, hi), got "
                                 f"noise_range_t={noise_range_t!r}")
            for v in noise_range_t:
                B.real("noise_range_t", v)
        else:
            B.real("noise_range_t", noise_range_t)
    B.real("noise_pct", noise_pct, lo=0.0, lo_open=True)
    B.real("noise_std", noise_std)
    B.integer("noise_seed", noise_seed)
    if not isinstance(noise_type, str):
        raise TypeError(f"noise_type must be a str ('normal' or anything else for uniform), got "
                        f"noise_type={noise_type!r}")


def _noisy(v: float, t: int, noise_range_t, noise_pct, noise_std, noise_seed, noise_type="normal") -> float:
    if noise_applies(t, noise_range_t):
        n = timm_noise(t, noise_seed, noise_pct, noise_std, noise_type)
        v = v + v * n
    return v


def _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize):
    B.real("base_lr", base_lr)
    B.real("warmup_t", warmup_t, lo=0)
    B.real("warmup_lr_init", warmup_lr_init)
    B.boolean("warmup_prefix", warmup_prefix)
    B.boolean("t_in_epochs", t_in_epochs)
    B.boolean("initialize", initialize)


def _check_cycles(t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit):
    B.real("t_initial", t_initial, lo=0, lo_open=True)
    B.real("lr_min", lr_min, lo=0)
    B.real("cycle_mul", cycle_mul, lo=0, lo_open=True)
    B.real("cycle_decay", cycle_decay)
    B.integer("cycle_limit", cycle_limit, lo=0)


def _cycle(t, t_initial, cycle_mul):
    """timm's cycle index ``i``, cycle length ``t_i`` and position ``t_curr`` (same arithmetic)."""
    if cycle_mul != 1:
        i = math.floor(math.log(1 - t / t_initial * (1 - cycle_mul), cycle_mul))
        t_i = cycle_mul ** i * t_initial
        t_curr = t - (1 - cycle_mul ** i) / (1 - cycle_mul) * t_initial
    else:
        i = t // t_initial
        t_i = t_initial
        t_curr = t - (t_initial * i)
    return i, t_i, t_curr


def _cycle_length(t_initial, cycle_mul, cycle_limit, warmup_t, warmup_prefix, cycles=0):
    """timm's ``get_cycle_length()`` of the cosine / tanh / poly schedulers."""
    cycles = max(1, cycles or cycle_limit)
    if cycle_mul == 1.0:
        t = t_initial * cycles
    else:
        t = int(math.floor(-t_initial * (cycle_mul ** cycles - 1) / (1 - cycle_mul)))
    return t + warmup_t if warmup_prefix else t


_NOISE_DOC = """    noise_range_t : None, float or (float, float)
        Steps where multiplicative noise is applied: ``lo <= t < hi`` for a pair, ``t >= noise_range_t`` for a
        number.
    noise_pct, noise_std, noise_seed
        Noise ``n`` is drawn from a generator seeded with ``noise_seed + t`` (bit-identical to timm's
        ``torch.Generator``): ``n = randn * noise_std`` resampled until ``|n| < noise_pct``; ``lr = v + v n``.
    t_in_epochs : bool
        Recorded as ``s.t_in_epochs``: timm drives the schedule with ``step(epoch)`` when True, with
        ``step_update(num_updates)`` when False. The function itself is the same.
    initialize : bool
        Accepted for signature compatibility; it only concerns how timm finds the base lr in the param group."""


# ----------------------------------------------------------------------------------------------------------------
# cosine / tanh / poly


def cosine_lr_scheduler(
    base_lr: float, /, t_initial: float, lr_min: float = 0.0, cycle_mul: float = 1.0, cycle_decay: float = 1.0,
    cycle_limit: int = 1, warmup_t: float = 0, warmup_lr_init: float = 0.0, warmup_prefix: bool = False,
    t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67, noise_std: float = 1.0,
    noise_seed: int = 42, k_decay: float = 1.0, initialize: bool = True,
) -> Schedule:
    r"""timm ``CosineLRScheduler``: cosine decay with warmup, restarts (cycles), k-decay and noise.

    .. math::

        s(t) = \begin{cases}
          w_0 + t\,\frac{\eta - w_0}{T_w} & t < T_w \\
          \eta_{\min} + \tfrac12(\eta\,d^{i} - \eta_{\min})
             \left(1 + \cos\left(\pi\,t_{cur}^k / t_i^k\right)\right) & i < \text{cycle\_limit} \\
          \eta_{\min} & \text{otherwise}
        \end{cases}

    with :math:`\eta` = ``base_lr``, :math:`w_0` = ``warmup_lr_init``, :math:`T_w` = ``warmup_t``,
    :math:`d` = ``cycle_decay``, :math:`k` = ``k_decay``, and the cycle index :math:`i`, cycle length
    :math:`t_i = m^i T_0` and position :math:`t_{cur}` computed from :math:`t' = t - T_w` (``warmup_prefix``) or
    :math:`t' = t`: :math:`i = \lfloor \log_m(1 - t'(1-m)/T_0) \rfloor` for :math:`m` = ``cycle_mul`` :math:`\ne 1`,
    else :math:`i = \lfloor t'/T_0 \rfloor`. Noise multiplies by :math:`1 + n` inside ``noise_range_t``.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    t_initial : float
        Length of the first cycle (epochs or updates). Must be > 0.
    lr_min : float
        Floor of the cosine, >= 0.
    cycle_mul, cycle_decay, cycle_limit
        Cycle length multiplier (> 0), per-cycle peak multiplier, number of cycles before holding ``lr_min``.
    warmup_t, warmup_lr_init, warmup_prefix
        Linear warmup length and start value. With ``warmup_prefix=False`` (the default) the warmup lies inside
        the first cycle and the lr jumps at ``t = warmup_t`` to the cosine's value there.
    k_decay : float
        Exponent of the k-decay method (arXiv:2004.05909); 1 is the plain cosine.
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule
        ``s(t)``: the lr timm sets on ``step(t)`` / ``step_update(t)``.

    Warnings
    --------
    timm's constructor writes ``warmup_lr_init`` (with warmup) or ``base_lr`` into the group, without noise;
    that equals ``s(0)`` unless noise is active at ``t = 0``.

    References
    ----------
    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv:1608.03983.

    Examples
    --------
    >>> s = cosine_lr_scheduler(0.1, t_initial=10, lr_min=1e-3, warmup_t=3, warmup_lr_init=0.01)
    >>> [round(s(t), 4) for t in range(5)]
    [0.01, 0.04, 0.07, 0.0796, 0.0667]
    """
    _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize)
    _check_cycles(t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit)
    B.real("k_decay", k_decay, lo=0, lo_open=True)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(t_initial=t_initial, lr_min=lr_min, cycle_mul=cycle_mul, cycle_decay=cycle_decay,
                  cycle_limit=cycle_limit, warmup_t=warmup_t, warmup_lr_init=warmup_lr_init,
                  warmup_prefix=warmup_prefix, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t,
                  noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed, k_decay=k_decay)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1

    def fn(t: int) -> float:
        if t < warmup_t:
            lr = warmup_lr_init + t * warmup_step
        else:
            tt = t - warmup_t if warmup_prefix else t
            i, t_i, t_curr = _cycle(tt, t_initial, cycle_mul)
            gamma = cycle_decay ** i
            lr_max = base_lr * gamma
            k = k_decay
            if i < cycle_limit:
                lr = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr ** k / t_i ** k))
            else:
                lr = lr_min
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "cosine_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


def tanh_lr_scheduler(
    base_lr: float, /, t_initial: float, lb: float = -7.0, ub: float = 3.0, lr_min: float = 0.0,
    cycle_mul: float = 1.0, cycle_decay: float = 1.0, cycle_limit: int = 1, warmup_t: float = 0,
    warmup_lr_init: float = 0.0, warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t=None,
    noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, initialize: bool = True,
) -> Schedule:
    r"""timm ``TanhLRScheduler``: hyperbolic-tangent decay with warmup, cycles and noise.

    .. math::

        s(t) = \eta_{\min} + \tfrac12(\eta\,d^{i} - \eta_{\min})
               \left(1 - \tanh\left(l_b (1 - r) + u_b\, r\right)\right),\qquad r = t_{cur} / t_i

    for :math:`i <` ``cycle_limit`` (cycles as in :func:`cosine_lr_scheduler`), ``lr_min`` afterwards. The warmup
    is linear from ``warmup_lr_init`` to ``base_lr`` with ``warmup_prefix=True`` and, unlike the cosine,
    to the tanh's own value at ``t = warmup_t`` with ``warmup_prefix=False`` (no jump).

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    t_initial : float
        Length of the first cycle, > 0.
    lb, ub : float
        Lower and upper bounds of the tanh argument, ``lb < ub``.
    lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_lr_init, warmup_prefix
        As in :func:`cosine_lr_scheduler` (``warmup_lr_init >= 0`` here).
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule

    Warnings
    --------
    Without warmup timm's constructor writes ``base_lr`` into the group, while ``s(0)`` (what ``step(0)``
    writes) is the tanh's value at 0, :math:`\tfrac12(1 - \tanh l_b)\eta`, slightly below ``base_lr``.

    References
    ----------
    Hsueh et al., "Stochastic Gradient Descent with Hyperbolic-Tangent Decay", arXiv:1806.01593.

    Examples
    --------
    >>> s = tanh_lr_scheduler(0.1, t_initial=10)
    >>> [round(s(t), 4) for t in (0, 5, 9, 10)]
    [0.1, 0.0982, 0.0054, 0.0]
    """
    _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize)
    _check_cycles(t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit)
    B.real("lb", lb)
    B.real("ub", ub)
    if not lb < ub:
        raise ValueError(f"lb must be < ub, got lb={lb!r}, ub={ub!r}")
    B.real("warmup_lr_init", warmup_lr_init, lo=0)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(t_initial=t_initial, lb=lb, ub=ub, lr_min=lr_min, cycle_mul=cycle_mul, cycle_decay=cycle_decay,
                  cycle_limit=cycle_limit, warmup_t=warmup_t, warmup_lr_init=warmup_lr_init,
                  warmup_prefix=warmup_prefix, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t,
                  noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed)

    def decay(t):
        tt = t - warmup_t if warmup_prefix else t
        i, t_i, t_curr = _cycle(tt, t_initial, cycle_mul)
        if i < cycle_limit:
            gamma = cycle_decay ** i
            lr_max = base_lr * gamma
            tr = t_curr / t_i
            return lr_min + 0.5 * (lr_max - lr_min) * (1 - math.tanh(lb * (1. - tr) + ub * tr))
        return lr_min

    if warmup_t:
        target = base_lr if warmup_prefix else decay(warmup_t)
        warmup_step = (target - warmup_lr_init) / warmup_t
    else:
        warmup_step = 1

    def fn(t: int) -> float:
        lr = warmup_lr_init + t * warmup_step if t < warmup_t else decay(t)
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "tanh_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


def poly_lr_scheduler(
    base_lr: float, /, t_initial: float, power: float = 0.5, lr_min: float = 0.0, cycle_mul: float = 1.0,
    cycle_decay: float = 1.0, cycle_limit: int = 1, warmup_t: float = 0, warmup_lr_init: float = 0.0,
    warmup_prefix: bool = False, t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67,
    noise_std: float = 1.0, noise_seed: int = 42, k_decay: float = 1.0, initialize: bool = True,
) -> Schedule:
    r"""timm ``PolyLRScheduler``: polynomial decay with warmup, cycles, k-decay and noise.

    .. math::

        s(t) = \eta_{\min} + (\eta\,d^{i} - \eta_{\min}) \left(1 - t_{cur}^k / t_i^k\right)^{p}

    for :math:`i <` ``cycle_limit`` (cycles and warmup as in :func:`cosine_lr_scheduler`), ``lr_min`` afterwards;
    :math:`p` = ``power``.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    t_initial : float
        Length of the first cycle, > 0.
    power : float
        Polynomial exponent (timm's class default 0.5; ``create_scheduler_v2`` passes ``decay_rate``).
    lr_min, cycle_mul, cycle_decay, cycle_limit, warmup_t, warmup_lr_init, warmup_prefix, k_decay
        As in :func:`cosine_lr_scheduler`.
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = poly_lr_scheduler(0.1, t_initial=4, power=1.0)
    >>> [round(s(t), 4) for t in range(6)]
    [0.1, 0.075, 0.05, 0.025, 0.0, 0.0]
    """
    _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize)
    _check_cycles(t_initial, lr_min, cycle_mul, cycle_decay, cycle_limit)
    B.real("power", power)
    B.real("k_decay", k_decay, lo=0, lo_open=True)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(t_initial=t_initial, power=power, lr_min=lr_min, cycle_mul=cycle_mul, cycle_decay=cycle_decay,
                  cycle_limit=cycle_limit, warmup_t=warmup_t, warmup_lr_init=warmup_lr_init,
                  warmup_prefix=warmup_prefix, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t,
                  noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed, k_decay=k_decay)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1

    def fn(t: int) -> float:
        if t < warmup_t:
            lr = warmup_lr_init + t * warmup_step
        else:
            tt = t - warmup_t if warmup_prefix else t
            i, t_i, t_curr = _cycle(tt, t_initial, cycle_mul)
            gamma = cycle_decay ** i
            lr_max = base_lr * gamma
            k = k_decay
            if i < cycle_limit:
                lr = lr_min + (lr_max - lr_min) * (1 - t_curr ** k / t_i ** k) ** power
            else:
                lr = lr_min
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "poly_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


# ----------------------------------------------------------------------------------------------------------------
# step / multistep


def step_lr_scheduler(
    base_lr: float, /, decay_t: float, decay_rate: float = 1.0, warmup_t: float = 0, warmup_lr_init: float = 0.0,
    warmup_prefix: bool = True, t_in_epochs: bool = True, noise_range_t=None, noise_pct: float = 0.67,
    noise_std: float = 1.0, noise_seed: int = 42, initialize: bool = True,
) -> Schedule:
    r"""timm ``StepLRScheduler``: decay by ``decay_rate`` every ``decay_t`` steps, with warmup and noise.

    .. math::

        s(t) = \eta\,\gamma^{\lfloor t' / T_d \rfloor}, \qquad t' = t - T_w \text{ if warmup\_prefix else } t

    after the linear warmup (:math:`t < T_w`), :math:`\gamma` = ``decay_rate``, :math:`T_d` = ``decay_t``.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    decay_t : float
        Decay interval, > 0 (may be fractional, e.g. 2.4 epochs).
    decay_rate : float
        Multiplier per interval.
    warmup_t, warmup_lr_init, warmup_prefix
        Linear warmup; note ``warmup_prefix`` defaults to **True** here (False for cosine/tanh/poly).
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = step_lr_scheduler(0.1, decay_t=2, decay_rate=0.5)
    >>> [s(t) for t in range(5)]
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """
    _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize)
    B.real("decay_t", decay_t, lo=0, lo_open=True)
    B.real("decay_rate", decay_rate)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(decay_t=decay_t, decay_rate=decay_rate, warmup_t=warmup_t, warmup_lr_init=warmup_lr_init,
                  warmup_prefix=warmup_prefix, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t,
                  noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1

    def fn(t: int) -> float:
        if t < warmup_t:
            lr = warmup_lr_init + t * warmup_step
        else:
            tt = t - warmup_t if warmup_prefix else t
            lr = base_lr * (decay_rate ** (tt // decay_t))
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "step_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


def multistep_lr_scheduler(
    base_lr: float, /, decay_t: Sequence[float], decay_rate: float = 1.0, warmup_t: float = 0,
    warmup_lr_init: float = 0.0, warmup_prefix: bool = True, t_in_epochs: bool = True, noise_range_t=None,
    noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, initialize: bool = True,
) -> Schedule:
    r"""timm ``MultiStepLRScheduler``: decay by ``decay_rate`` at each milestone, with warmup and noise.

    .. math::

        s(t) = \eta\,\gamma^{\#\{m \in \text{decay\_t} : m \le t' + 1\}}

    after the linear warmup, :math:`t'` as in :func:`step_lr_scheduler`.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    decay_t : sequence of float
        Milestones, sorted (non-decreasing).
    decay_rate : float
        Multiplier per milestone.
    warmup_t, warmup_lr_init, warmup_prefix
        Linear warmup; ``warmup_prefix`` defaults to True.
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule

    Warnings
    --------
    Milestone ``m`` takes effect at ``t' = m - 1``, one step *earlier* than torch's ``MultiStepLR`` (timm keeps
    this convention deliberately). timm does not check that ``decay_t`` is sorted; here unsorted milestones raise.

    Examples
    --------
    >>> s = multistep_lr_scheduler(1.0, decay_t=[3, 5], decay_rate=0.1)
    >>> [s(t) for t in range(6)]
    [1.0, 1.0, 0.1, 0.1, 0.010000000000000002, 0.010000000000000002]
    """
    _check_common(base_lr, warmup_t, warmup_lr_init, warmup_prefix, t_in_epochs, initialize)
    if isinstance(decay_t, (str, bytes)) or not isinstance(decay_t, Sequence):
        raise TypeError(f"decay_t must be a sequence of milestones, got decay_t={decay_t!r}")
    for m in decay_t:
        B.real("decay_t", m)
    milestones = list(decay_t)
    if milestones != sorted(milestones):
        raise ValueError(f"decay_t must be sorted (non-decreasing), got decay_t={decay_t!r}")
    B.real("decay_rate", decay_rate)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(decay_t=tuple(milestones), decay_rate=decay_rate, warmup_t=warmup_t,
                  warmup_lr_init=warmup_lr_init, warmup_prefix=warmup_prefix, t_in_epochs=t_in_epochs,
                  noise_range_t=noise_range_t, noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1

    def fn(t: int) -> float:
        if t < warmup_t:
            lr = warmup_lr_init + t * warmup_step
        else:
            tt = t - warmup_t if warmup_prefix else t
            lr = base_lr * (decay_rate ** bisect.bisect_right(milestones, tt + 1))
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "multistep_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


# ----------------------------------------------------------------------------------------------------------------
# WSD

_STABLE_FNS = ("constant", "rsqrt", "power")
_DECAY_FNS = ("linear", "1-sqrt", "cosine", "power", "exp")


def wsd_lr_scheduler(
    base_lr: float, /, t_initial: float, decay_t: float, lr_min: float = 0.0, stable_fn: str = "constant",
    stable_timescale: float | None = None, stable_power: float = 0.5,
    decay_fn: str | Callable[[float], float] = "1-sqrt", decay_power: float = 0.5, decay_ratio: float = 0.1,
    warmup_t: float = 0, warmup_lr_init: float = 0.0, t_in_epochs: bool = True, noise_range_t=None,
    noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int = 42, initialize: bool = True,
) -> Schedule:
    r"""timm ``WSDLRScheduler``: warmup, stable phase, decay over the last ``decay_t`` steps of ``t_initial``.

    .. math::

        s(t) = \eta_{\min} + \left(\max(\eta\,\sigma(t_s), \eta_{\min}) - \eta_{\min}\right)
               \delta\left(\min\left(\frac{t_s - (T_0 - T_d)}{T_d}, 1\right)\right)

    for :math:`t \ge T_w`, :math:`t_s = t - T_w` (the warmup is always a prefix), where the decay factor
    :math:`\delta` applies only once :math:`t_s > T_0 - T_d`. Stable functions :math:`\sigma`: ``'constant'`` 1,
    ``'rsqrt'`` :math:`(1 + t_s/\tau)^{-1/2}`, ``'power'`` :math:`(1 + t_s/\tau)^{-q}`; decay functions
    :math:`\delta(f)`: ``'1-sqrt'`` :math:`1-\sqrt f`, ``'linear'`` :math:`1-f`, ``'cosine'``
    :math:`\tfrac12(1+\cos\pi f)`, ``'power'`` :math:`1 - f^{p}`, ``'exp'`` :math:`(r^f - r)/(1 - r)`, or a
    callable.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    t_initial : float
        Length of the stable + decay phases, > 0 (the whole schedule is ``warmup_t + t_initial`` long).
    decay_t : float
        Length of the decay phase, in ``(0, t_initial]``.
    lr_min : float
        Final lr, >= 0.
    stable_fn, stable_timescale, stable_power
        Stable function, its timescale :math:`\tau` (defaults to ``warmup_t``; must be > 0 for non-constant
        functions) and its power :math:`q` (> 0).
    decay_fn, decay_power, decay_ratio
        Decay function, its power :math:`p` (> 0) and the ``'exp'`` ratio :math:`r \in (0, 1)`.
    warmup_t, warmup_lr_init
        Linear warmup (always a prefix).
""" + _NOISE_DOC + r"""

    Returns
    -------
    Schedule

    References
    ----------
    Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations",
    arXiv:2405.18392.

    Examples
    --------
    >>> s = wsd_lr_scheduler(1.0, t_initial=10, decay_t=4, decay_fn='linear')
    >>> [s(t) for t in range(0, 12, 2)]
    [1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
    """
    B.real("base_lr", base_lr)
    B.real("t_initial", t_initial, lo=0, lo_open=True)
    B.real("decay_t", decay_t)
    if not 0 < decay_t <= t_initial:
        raise ValueError(f"decay_t must be in (0, t_initial={t_initial!r}], got decay_t={decay_t!r}")
    B.real("lr_min", lr_min, lo=0)
    B.choice("stable_fn", stable_fn, _STABLE_FNS)
    if not callable(decay_fn):
        B.choice("decay_fn", decay_fn, _DECAY_FNS)
    B.real("decay_ratio", decay_ratio, lo=0, hi=1, lo_open=True, hi_open=True)
    B.real("decay_power", decay_power, lo=0, lo_open=True)
    B.real("stable_power", stable_power, lo=0, lo_open=True)
    B.real("warmup_t", warmup_t, lo=0)
    B.real("warmup_lr_init", warmup_lr_init)
    B.boolean("t_in_epochs", t_in_epochs)
    B.boolean("initialize", initialize)
    if stable_fn != "constant":
        if stable_timescale is None:
            stable_timescale = warmup_t
        B.real("stable_timescale", stable_timescale)
        if stable_timescale <= 0:
            raise ValueError(f"stable_fn={stable_fn!r} needs stable_timescale > 0 (it defaults to warmup_t), got "
                             f"stable_timescale={stable_timescale!r}")
    elif stable_timescale is not None:
        B.real("stable_timescale", stable_timescale)
    _check_noise(noise_range_t, noise_pct, noise_std, noise_seed)
    params = dict(t_initial=t_initial, decay_t=decay_t, lr_min=lr_min, stable_fn=stable_fn,
                  stable_timescale=stable_timescale, stable_power=stable_power, decay_fn=decay_fn,
                  decay_power=decay_power, decay_ratio=decay_ratio, warmup_t=warmup_t,
                  warmup_lr_init=warmup_lr_init, t_in_epochs=t_in_epochs, noise_range_t=noise_range_t,
                  noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1

    def stable(t_s):
        if stable_fn == "constant":
            return 1.
        p = 0.5 if stable_fn == "rsqrt" else stable_power
        return (1. + t_s / stable_timescale) ** -p

    def decay(frac):
        if callable(decay_fn):
            return decay_fn(frac)
        if decay_fn == "linear":
            return 1. - frac
        if decay_fn == "1-sqrt":
            return 1. - math.sqrt(frac)
        if decay_fn == "cosine":
            return 0.5 * (1. + math.cos(math.pi * frac))
        if decay_fn == "power":
            return 1. - frac ** decay_power
        r = decay_ratio
        return (r ** frac - r) / (1. - r)

    def fn(t: int) -> float:
        if t < warmup_t:
            lr = warmup_lr_init + t * warmup_step
        else:
            t_s = t - warmup_t
            lr = max(base_lr * stable(t_s), lr_min)
            t_decay = t_s - (t_initial - decay_t)
            if t_decay > 0:
                lr = lr_min + (lr - lr_min) * decay(min(t_decay / decay_t, 1.))
        return _noisy(lr, t, noise_range_t, noise_pct, noise_std, noise_seed)

    return Schedule(fn, "wsd_lr_scheduler", {"base_lr": base_lr, **params}, t_in_epochs=t_in_epochs)


# ----------------------------------------------------------------------------------------------------------------
# plateau (a pure state machine)


class PlateauLRSchedulerState(NamedTuple):
    """State of :class:`PlateauLRScheduler`.

    ``lr`` is the lr in the param group (noise included); ``restore_lr`` the clean lr to restore before the next
    decision when noise was applied (else None); ``best``, ``num_bad_epochs``, ``cooldown_counter`` and
    ``plateau_last_epoch`` are the wrapped ``ReduceLROnPlateau``'s counters; ``epoch`` the last epoch passed.
    """

    lr: float
    restore_lr: float | None
    best: float
    num_bad_epochs: int
    cooldown_counter: int
    plateau_last_epoch: int
    epoch: int


class PlateauLRScheduler:
    """Pure equivalent of timm's ``PlateauLRScheduler`` (see :func:`plateau_lr_scheduler`).

    ``init()`` gives the state right after construction; ``step(state, metric=None, epoch=None)`` (also
    ``self(state, metric, epoch)``) returns ``(new_state, lr)``, the lr timm sets on ``step(epoch, metric)``.
    ``epoch`` defaults to ``state.epoch + 1`` (timm's ``train.py`` calls ``step(epoch + 1, metric)``).
    """

    __slots__ = ("base_lr", "params", "_warmup_step", "_rop")

    def __init__(self, base_lr, params, warmup_step, rop):
        object.__setattr__(self, "base_lr", base_lr)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "_warmup_step", warmup_step)
        object.__setattr__(self, "_rop", rop)

    def __setattr__(self, key, value):
        raise AttributeError(f"PlateauLRScheduler is immutable; cannot set {key!r}")

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"plateau_lr_scheduler({self.base_lr!r}, {args})"

    def init(self) -> PlateauLRSchedulerState:
        p = self.params
        lr = p["warmup_lr_init"] if p["warmup_t"] else self.base_lr
        worse = math.inf if p["mode"] == "min" else -math.inf
        return PlateauLRSchedulerState(lr, None, worse, 0, 0, 0, 0)

    def step(self, state: PlateauLRSchedulerState, metric: float | None = None, epoch: int | None = None):
        p = self.params
        if not isinstance(state, PlateauLRSchedulerState):
            raise TypeError(f"state must be a PlateauLRSchedulerState (from .init()), got state={state!r}")
        epoch = state.epoch + 1 if epoch is None else B.integer("epoch", epoch)
        if metric is not None:
            B.real("metric", metric, finite=False)
        if epoch <= p["warmup_t"]:
            lr = p["warmup_lr_init"] + epoch * self._warmup_step
            new = state._replace(lr=lr, epoch=epoch)
            return new, lr
        lr = state.lr
        restore = state.restore_lr
        if restore is not None:
            lr = restore
            restore = None
        best, nbad, cool, last = state.best, state.num_bad_epochs, state.cooldown_counter, state.plateau_last_epoch
        if metric is not None:
            best, nbad, cool, last, lr = _plateau_update(self._rop, best, nbad, cool, last, lr, metric)
        if noise_applies(epoch, p["noise_range_t"]):
            n = timm_noise(epoch, p["noise_seed"] if p["noise_seed"] is not None else 42, p["noise_pct"],
                           p["noise_std"], p["noise_type"])
            restore = lr
            lr = lr + lr * n
        return PlateauLRSchedulerState(lr, restore, best, nbad, cool, last, epoch), lr

    __call__ = step


def plateau_lr_scheduler(
    base_lr: float, /, decay_rate: float = 0.1, patience_t: int = 10, threshold: float = 1e-4, cooldown_t: int = 0,
    warmup_t: int = 0, warmup_lr_init: float = 0.0, lr_min: float = 0.0, mode: str = "max", noise_range_t=None,
    noise_type: str = "normal", noise_pct: float = 0.67, noise_std: float = 1.0, noise_seed: int | None = None,
    initialize: bool = True,
) -> PlateauLRScheduler:
    r"""timm ``PlateauLRScheduler`` as a pure state machine ``(state, metric) -> (state, lr)``.

    For ``epoch <= warmup_t`` (note ``<=``): :math:`lr = w_0 + \mathrm{epoch}\,(\eta - w_0)/T_w` and the metric is
    ignored. Afterwards the clean lr (noise removed) goes through torch's ``ReduceLROnPlateau`` logic
    (``factor=decay_rate``, ``patience=patience_t``, ``cooldown=cooldown_t``, ``min_lr=lr_min``, relative
    threshold, ``eps=1e-8``; skipped when ``metric`` is None) and noise is applied on top inside
    ``noise_range_t``.

    Parameters
    ----------
    base_lr : float
        The param group's initial lr.
    decay_rate, patience_t, threshold, cooldown_t, lr_min, mode
        ``ReduceLROnPlateau``'s ``factor``, ``patience``, ``threshold``, ``cooldown``, ``min_lr``, ``mode``.
        Note timm's default mode is ``'max'`` (torch: ``'min'``).
    warmup_t, warmup_lr_init
        Linear warmup over epochs ``0..warmup_t``.
    noise_range_t, noise_type, noise_pct, noise_std, noise_seed
        As in :func:`cosine_lr_scheduler`; ``noise_type`` other than ``'normal'`` draws uniform noise
        :math:`2(u - \tfrac12)\,\mathrm{noise\_pct}`; ``noise_seed=None`` means 42.
    initialize : bool
        Accepted for signature compatibility.

    Returns
    -------
    PlateauLRScheduler
        ``init()`` and ``step(state, metric=None, epoch=None) -> (state, lr)``.

    Warnings
    --------
    timm's own ``state_dict`` keeps only ``best`` and ``last_epoch``; the pure state here keeps every counter,
    so a resumed run continues exactly.

    Examples
    --------
    >>> plateau = plateau_lr_scheduler(0.1, patience_t=1, mode='min')
    >>> state = plateau.init()
    >>> for loss in [1.0, 1.0, 1.0]:
    ...     state, lr = plateau.step(state, loss)
    >>> round(lr, 6)
    0.01
    """
    B.real("base_lr", base_lr)
    B.real("warmup_t", warmup_t, lo=0)
    B.real("warmup_lr_init", warmup_lr_init)
    B.boolean("initialize", initialize)
    if noise_seed is not None:
        B.integer("noise_seed", noise_seed)
    _check_noise(noise_range_t, noise_pct, noise_std, 42 if noise_seed is None else noise_seed, noise_type)
    rop = _plateau_params(mode=mode, factor=decay_rate, patience=patience_t, threshold=threshold,
                          threshold_mode="rel", cooldown=cooldown_t, min_lr=lr_min, eps=1e-8,
                          names=dict(factor="decay_rate", patience="patience_t", cooldown="cooldown_t",
                                     min_lr="lr_min"))
    params = dict(decay_rate=decay_rate, patience_t=patience_t, threshold=threshold, cooldown_t=cooldown_t,
                  warmup_t=warmup_t, warmup_lr_init=warmup_lr_init, lr_min=lr_min, mode=mode,
                  noise_range_t=noise_range_t, noise_type=noise_type, noise_pct=noise_pct, noise_std=noise_std,
                  noise_seed=noise_seed)
    warmup_step = (base_lr - warmup_lr_init) / warmup_t if warmup_t else 1
    return PlateauLRScheduler(base_lr, params, warmup_step, rop)


# ----------------------------------------------------------------------------------------------------------------
# create_scheduler_v2

_SCHEDS = ("cosine", "tanh", "step", "constant", "multistep", "plateau", "poly", "wsd", "rsqrt", "none")


def create_scheduler_v2(
    base_lr: float, /, sched: str = "cosine", num_epochs: int = 300, decay_epochs: float | None = None,
    decay_milestones: Sequence[int] = (90, 180, 270), cooldown_epochs: int = 0, patience_epochs: int = 10,
    decay_rate: float = 0.1, min_lr: float = 0.0, warmup_lr: float = 1e-5, warmup_epochs: int = 0,
    warmup_prefix: bool = False, noise: float | Sequence[float] | None = None, noise_pct: float = 0.67,
    noise_std: float = 1.0, noise_seed: int = 42, cycle_mul: float = 1.0, cycle_decay: float = 0.1,
    cycle_limit: int = 1, k_decay: float = 1.0, decay_fn: str | None = None, stable_timescale: float | None = None,
    plateau_mode: str = "max", step_on_epochs: bool = True, updates_per_epoch: int = 0,
):
    r"""timm's ``create_scheduler_v2`` with the base lr in place of the optimizer.

    Builds the same scheduler timm builds for ``sched`` (``'cosine'``, ``'tanh'``, ``'step'``, ``'constant'``,
    ``'multistep'``, ``'plateau'``, ``'poly'``, ``'wsd'``, ``'rsqrt'``, ``'none'``) with timm's argument
    translation, and returns ``(schedule, num_epochs)`` where ``num_epochs`` is timm's total number of epochs to
    train (cycles, warmup prefix and cooldown included, as timm computes it).

    Parameters
    ----------
    base_lr : float
        The optimizer's lr.
    sched, num_epochs, decay_epochs, decay_milestones, cooldown_epochs, patience_epochs, decay_rate, min_lr,
    warmup_lr, warmup_epochs, warmup_prefix, noise, noise_pct, noise_std, noise_seed, cycle_mul, cycle_decay,
    cycle_limit, k_decay, decay_fn, stable_timescale, plateau_mode, step_on_epochs, updates_per_epoch
        timm's arguments and defaults. With ``step_on_epochs=False`` every length is multiplied by
        ``updates_per_epoch`` (> 0) and the schedule is indexed by update count.

    Returns
    -------
    (schedule, num_epochs)
        ``schedule`` is a :class:`Schedule` (a :class:`PlateauLRScheduler` state machine for ``'plateau'``,
        ``None`` for ``'none'``).

    Warnings
    --------
    The defaults differ from the classes': ``cycle_decay=0.1`` (classes: 1.0); ``'poly'`` uses ``decay_rate``
    (0.1) as the power (class default 0.5); ``'plateau'`` uses ``cooldown_t=0`` and ignores ``warmup_prefix``;
    ``cooldown_epochs`` only lengthens the returned ``num_epochs`` for cosine/tanh/poly/wsd/rsqrt; ``'wsd'`` /
    ``'rsqrt'`` fit warmup + stable + decay inside ``num_epochs`` unless ``warmup_prefix``.

    Examples
    --------
    >>> s, epochs = create_scheduler_v2(0.1, 'cosine', num_epochs=100, warmup_epochs=5, cooldown_epochs=10)
    >>> epochs, round(s(0), 8), round(s(50), 6)
    (110, 1e-05, 0.05)
    """
    B.real("base_lr", base_lr)
    B.choice("sched", sched, _SCHEDS)
    B.real("num_epochs", num_epochs, lo=0)
    B.boolean("step_on_epochs", step_on_epochs)
    B.integer("updates_per_epoch", updates_per_epoch, lo=0)
    if decay_epochs is not None:
        B.real("decay_epochs", decay_epochs)
    if decay_epochs is None:
        decay_epochs = 0.2 if sched in ("wsd", "rsqrt") else 90
    if isinstance(decay_milestones, (str, bytes)) or not isinstance(decay_milestones, Sequence):
        raise TypeError(f"decay_milestones must be a sequence, got decay_milestones={decay_milestones!r}")
    t_initial = num_epochs
    warmup_t = warmup_epochs
    decay_t = decay_epochs
    cooldown_t = cooldown_epochs
    timescale_t = stable_timescale
    if not step_on_epochs:
        if updates_per_epoch <= 0:
            raise ValueError(f"step_on_epochs=False needs updates_per_epoch > 0 (the number of dataloader batches), "
                             f"got updates_per_epoch={updates_per_epoch!r}")
        t_initial = t_initial * updates_per_epoch
        warmup_t = warmup_t * updates_per_epoch
        decay_t = decay_t * updates_per_epoch
        decay_milestones = [d * updates_per_epoch for d in decay_milestones]
        cooldown_t = cooldown_t * updates_per_epoch
        if timescale_t is not None:
            timescale_t = timescale_t * updates_per_epoch
    warmup_args = dict(warmup_lr_init=warmup_lr, warmup_t=warmup_t, warmup_prefix=warmup_prefix)
    if noise is not None:
        if isinstance(noise, (list, tuple)):
            noise_range = [n * t_initial for n in noise]
            if len(noise_range) == 1:
                noise_range = noise_range[0]
        else:
            noise_range = noise * t_initial
    else:
        noise_range = None
    noise_args = dict(noise_range_t=noise_range, noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed)
    cycle_args = dict(cycle_mul=cycle_mul, cycle_decay=cycle_decay, cycle_limit=cycle_limit)
    cycle_length = None
    s: Any = None
    if sched == "cosine":
        s = cosine_lr_scheduler(base_lr, t_initial=t_initial, lr_min=min_lr, t_in_epochs=step_on_epochs,
                                **cycle_args, **warmup_args, **noise_args, k_decay=k_decay)
        cycle_length = _cycle_length(t_initial, cycle_mul, cycle_limit, warmup_t, warmup_prefix)
    elif sched == "tanh":
        s = tanh_lr_scheduler(base_lr, t_initial=t_initial, lr_min=min_lr, t_in_epochs=step_on_epochs,
                              **cycle_args, **warmup_args, **noise_args)
        cycle_length = _cycle_length(t_initial, cycle_mul, cycle_limit, warmup_t, warmup_prefix)
    elif sched == "step":
        s = step_lr_scheduler(base_lr, decay_t=decay_t, decay_rate=decay_rate, t_in_epochs=step_on_epochs,
                              **warmup_args, **noise_args)
    elif sched == "constant":
        s = step_lr_scheduler(base_lr, decay_t=1, decay_rate=1., t_in_epochs=step_on_epochs,
                              **warmup_args, **noise_args)
    elif sched == "multistep":
        s = multistep_lr_scheduler(base_lr, decay_t=list(decay_milestones), decay_rate=decay_rate,
                                   t_in_epochs=step_on_epochs, **warmup_args, **noise_args)
    elif sched == "plateau":
        if not step_on_epochs:
            raise ValueError("sched='plateau' only supports per-epoch stepping, got step_on_epochs=False")
        warmup_args.pop("warmup_prefix")
        s = plateau_lr_scheduler(base_lr, decay_rate=decay_rate, patience_t=patience_epochs, cooldown_t=0,
                                 **warmup_args, lr_min=min_lr, mode=plateau_mode, **noise_args)
    elif sched == "poly":
        s = poly_lr_scheduler(base_lr, power=decay_rate, t_initial=t_initial, lr_min=min_lr,
                              t_in_epochs=step_on_epochs, k_decay=k_decay, **cycle_args, **warmup_args,
                              **noise_args)
        cycle_length = _cycle_length(t_initial, cycle_mul, cycle_limit, warmup_t, warmup_prefix)
    elif sched in ("wsd", "rsqrt"):
        t_sched = t_initial if warmup_prefix else t_initial - warmup_t
        if 0 < decay_epochs < 1:
            decay_t = decay_epochs * t_sched
        decay_t = int(round(decay_t))
        if not 0 < decay_t <= t_sched:
            raise ValueError(
                f"sched={sched!r} needs 0 < decay_epochs <= num_epochs{'' if warmup_prefix else ' - warmup_epochs'}"
                f", got decay_epochs={decay_epochs!r} (decay {decay_t}, stable + decay length {t_sched})")
        s = wsd_lr_scheduler(base_lr, t_initial=t_sched, decay_t=decay_t, lr_min=min_lr,
                             stable_fn="rsqrt" if sched == "rsqrt" else "constant", stable_timescale=timescale_t,
                             decay_fn=decay_fn or ("linear" if sched == "rsqrt" else "1-sqrt"),
                             t_in_epochs=step_on_epochs, warmup_t=warmup_t, warmup_lr_init=warmup_lr, **noise_args)
        cycle_length = warmup_t + t_sched
    if cycle_length is not None:
        total = cycle_length + cooldown_t
        num_epochs = total if step_on_epochs else total // updates_per_epoch
    elif warmup_prefix:
        num_epochs += warmup_epochs
    return s, num_epochs


TIMM_EQUIVALENTS = {
    "CosineLRScheduler": cosine_lr_scheduler,
    "TanhLRScheduler": tanh_lr_scheduler,
    "StepLRScheduler": step_lr_scheduler,
    "MultiStepLRScheduler": multistep_lr_scheduler,
    "PolyLRScheduler": poly_lr_scheduler,
    "PlateauLRScheduler": plateau_lr_scheduler,
    "WSDLRScheduler": wsd_lr_scheduler,
}
