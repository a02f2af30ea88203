"""Composition: constant, join, warmup in front of any schedule, scaling, and per-step hyperparameters."""

from __future__ import annotations

import bisect
import numbers
from typing import Any, Callable, Sequence

from . import _base as B
from ._base import Schedule, check_step

__all__ = ["constant_schedule", "join_schedules", "with_warmup", "scale_schedule", "hyperparams_at"]


def constant_schedule(value: float) -> Schedule:
    r"""A constant schedule: :math:`s(t) = v`.

    Parameters
    ----------
    value : float
        The value.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> constant_schedule(0.5)(10)
    0.5
    """
    B.real("value", value)
    return Schedule(lambda t: value, "constant_schedule", dict(value=value))


def join_schedules(schedules: Sequence[Callable[[int], float]], boundaries: Sequence[int]) -> Schedule:
    r"""Run ``schedules[i]`` from ``boundaries[i-1]`` on, each restarted at 0 (optax ``join_schedules``).

    .. math::

        s(t) = s_i(t - b_{i-1}), \qquad i = \#\{b_j \le t\},\ b_{-1} = 0

    Parameters
    ----------
    schedules : sequence of schedules
        ``len(boundaries) + 1`` callables ``t -> float``.
    boundaries : sequence of int
        Sorted, non-negative steps.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = join_schedules([constant_schedule(1.0), lambda t: 0.5 ** t], boundaries=[2])
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 1.0, 0.5, 0.25]
    """
    if isinstance(schedules, (str, bytes)) or not isinstance(schedules, Sequence) or len(schedules) < 1:
        raise ValueError(f"schedules must be a non-empty sequence of schedules, got schedules={schedules!r}")
    subs = [B.schedule_like(f"schedules[{i}]", s) for i, s in enumerate(schedules)]
    if isinstance(boundaries, (str, bytes)) or not isinstance(boundaries, Sequence):
        raise TypeError(f"boundaries must be a sequence of ints, got boundaries={boundaries!r}")
    bs = [B.integer("boundaries", b, lo=0) for b in boundaries]
    if len(bs) != len(subs) - 1:
        raise ValueError(f"boundaries must have len(schedules) - 1 = {len(subs) - 1} entries, got "
                         f"boundaries={boundaries!r}")
    if bs != sorted(bs):
        raise ValueError(f"boundaries must be sorted, got boundaries={boundaries!r}")

    def fn(t):
        i = bisect.bisect_right(bs, t)
        return subs[i](t - bs[i - 1]) if i else subs[0](t)

    return Schedule(fn, "join_schedules", dict(schedules=tuple(subs), boundaries=tuple(bs)))


def with_warmup(schedule: Callable[[int], float], warmup_t: int, warmup_lr_init: float = 0.0,
                warmup_prefix: bool = True) -> Schedule:
    r"""Put a linear warmup in front of any schedule (timm's warmup rule).

    .. math::

        s(t) = \begin{cases} w_0 + t\,(v - w_0)/T_w & t < T_w \\ g(t - T_w) & t \ge T_w,\ \text{prefix} \\
        g(t) & t \ge T_w,\ \text{no prefix} \end{cases}

    where the warmup target :math:`v` is the value the wrapped schedule :math:`g` takes when the warmup ends,
    :math:`g(0)` with ``warmup_prefix`` and :math:`g(T_w)` without, so the result is continuous.

    Parameters
    ----------
    schedule : schedule
        Any callable ``t -> float``.
    warmup_t : int
        Warmup length :math:`T_w \ge 0` (0 returns the schedule's values unchanged).
    warmup_lr_init : float
        :math:`w_0`.
    warmup_prefix : bool
        Shift the wrapped schedule by ``warmup_t`` (True) or overlay the warmup on its first steps (False).

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = with_warmup(constant_schedule(1.0), warmup_t=4)
    >>> [s(t) for t in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    """
    B.schedule_like("schedule", schedule)
    warmup_t = B.integer("warmup_t", warmup_t, lo=0)
    B.real("warmup_lr_init", warmup_lr_init)
    B.boolean("warmup_prefix", warmup_prefix)
    if warmup_t:
        target = float(schedule(0 if warmup_prefix else warmup_t))
        step = (target - warmup_lr_init) / warmup_t
    else:
        step = 0.0

    def fn(t):
        if t < warmup_t:
            return warmup_lr_init + t * step
        return schedule(t - warmup_t if warmup_prefix else t)

    return Schedule(fn, "with_warmup", dict(schedule=schedule, warmup_t=warmup_t, warmup_lr_init=warmup_lr_init,
                                            warmup_prefix=warmup_prefix))


def scale_schedule(schedule: Callable[[int], float], factor: float) -> Schedule:
    r"""Multiply a schedule by a constant: :math:`s(t) = c\,g(t)` (e.g. timm's per-group ``lr_scale``).

    Parameters
    ----------
    schedule : schedule
        Any callable ``t -> float``.
    factor : float
        :math:`c`.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> scale_schedule(constant_schedule(0.5), 0.1)(3)
    0.05
    """
    B.schedule_like("schedule", schedule)
    B.real("factor", factor)
    return Schedule(lambda t: schedule(t) * factor, "scale_schedule", dict(schedule=schedule, factor=factor))


def _value_at(name: str, v: Any, t: int) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, tuple):
        return tuple(_value_at(f"{name}[{i}]", x, t) for i, x in enumerate(v))
    if callable(v):
        out = v(t)
        if isinstance(out, bool) or not isinstance(out, numbers.Real):
            raise TypeError(f"schedule for {name} must return a real number, got {out!r} at t={t}")
        return float(out)
    raise TypeError(f"{name} must be a number, a schedule (callable t -> float) or a tuple of those, got "
                    f"{name}={v!r}")


def hyperparams_at(t: int, /, **hyperparams: Any) -> dict:
    r"""Evaluate every hyperparameter at step ``t``: schedules are called, numbers pass through as floats.

    The result is the per-step override dict the functional optimizer accepts,
    ``opt.step(params, grads, state, hyperparams=hyperparams_at(t, lr=..., weight_decay=...))``, so any numeric
    hyperparameter (not only ``lr``) can follow a schedule. Tuples are evaluated element-wise (e.g.
    ``betas=(one_cycle.momentum, 0.999)``); bools pass through unchanged.

    Parameters
    ----------
    t : int
        The step.
    **hyperparams
        Name -> number, schedule, or tuple of those.

    Returns
    -------
    dict
        Name -> Python float (or tuple of floats).

    Examples
    --------
    >>> from arrayoptim.schedules import exponential_lr
    >>> hyperparams_at(2, lr=exponential_lr(0.1, gamma=0.5), weight_decay=1e-4, betas=(0.9, 0.999))
    {'lr': 0.025, 'weight_decay': 0.0001, 'betas': (0.9, 0.999)}
    """
    t = check_step(t)
    return {k: _value_at(k, v, t) for k, v in hyperparams.items()}
