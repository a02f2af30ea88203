"""Pure equivalents of ``torch.optim.lr_scheduler`` (torch 2.14.1).

Each factory is called as ``factory(initial_lr, /, **torch_kwargs)`` with the torch class's own keyword
arguments and returns a :class:`~arrayoptim.schedules.Schedule` ``s`` such that ``s(t)`` is the lr the torch
scheduler leaves in the param group after ``t`` calls to ``step()`` (``s(0)``: right after construction).

torch updates most schedulers *recursively* (``lr <- lr * ratio``); the functions here evaluate the closed form
that the recursion tracks, so they agree with torch's stepping up to floating-point rounding (relative
differences of a few ulps per step, measured <= 1e-13 over 3 periods) and exactly where torch's update is not
recursive (LambdaLR, MultiplicativeLR, CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR). Where the recursion
and the closed form *disagree* (``total_iters=0``, ``SequentialLR`` restarting a ``MultiplicativeLR``,
``ChainedScheduler`` of non-multiplicative schedulers) the functions follow what torch's stepping produces.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from typing import Any, Callable, NamedTuple, Sequence

from . import _base as B
from ._base import Schedule

__all__ = [
    "lambda_lr", "multiplicative_lr", "step_lr", "multistep_lr", "constant_lr", "linear_lr", "exponential_lr",
    "polynomial_lr", "cosine_annealing_lr", "cosine_annealing_warm_restarts", "cyclic_lr", "one_cycle_lr",
    "sequential_lr", "chained_scheduler", "reduce_lr_on_plateau", "ReduceLROnPlateau", "ReduceLROnPlateauState",
    "TORCH_EQUIVALENTS",
]


class _TorchInfo(NamedTuple):
    """How a torch scheduler acts on the param group's lr, for ChainedScheduler / SequentialLR.

    ``kind``: ``'mult'`` (recursive and multiplicative: the lr is ``base * factor(t)``), ``'rec'`` (recursive,
    not multiplicative: CosineAnnealingLR), ``'abs'`` (sets the lr from scratch each step).
    ``init(lr)``: the constructor's initial step; ``update(lr, e)``: ``get_lr()`` at ``last_epoch = e >= 1``.
    """

    kind: str
    base: float
    init: Callable[[float], float]
    update: Callable[[float, int], float]
    factor: Callable[[int], float] | None
    restart: str = "closed"  # how SequentialLR restarts it at a milestone: 'closed' form, or 'chain' (lr * f(0))


def _check_last_epoch(last_epoch):
    if last_epoch != -1:
        raise ValueError(f"only last_epoch=-1 is supported (a pure schedule resumes by evaluating s(t) at the "
                         f"resumed step), got last_epoch={last_epoch!r}")


def _check_initial(initial_lr):
    B.real("initial_lr", initial_lr)


def _make(fn, name, params, info, momentum=None):
    return Schedule(fn, name, params, torch_info=info, momentum=momentum)


def _absolute(s: Callable[[int], float], base: float | None = None) -> _TorchInfo:
    return _TorchInfo("abs", base, lambda lr: s(0), lambda lr, e: s(e), None)


def _info_of(s) -> _TorchInfo:
    info = getattr(s, "_torch", None)
    return info if info is not None else _absolute(s)


# ----------------------------------------------------------------------------------------------------------------


def lambda_lr(initial_lr: float, /, lr_lambda: Callable[[int], float], last_epoch: int = -1) -> Schedule:
    r"""torch ``LambdaLR``: :math:`s(t) = \eta_0\,\lambda(t)`.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    lr_lambda : callable
        ``int -> float`` multiplier (one per schedule; build one schedule per param group).
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        Bit-identical to torch.

    Examples
    --------
    >>> s = lambda_lr(0.1, lr_lambda=lambda e: 0.5 ** e)
    >>> [s(t) for t in range(3)]
    [0.1, 0.05, 0.025]
    """
    _check_initial(initial_lr)
    _check_last_epoch(last_epoch)
    if not callable(lr_lambda):
        raise TypeError(f"lr_lambda must be a callable int -> float, got lr_lambda={lr_lambda!r}")

    def fn(t):
        return initial_lr * lr_lambda(t)

    return _make(fn, "lambda_lr", dict(initial_lr=initial_lr, lr_lambda=lr_lambda), _absolute(fn, initial_lr))


def multiplicative_lr(initial_lr: float, /, lr_lambda: Callable[[int], float], last_epoch: int = -1) -> Schedule:
    r"""torch ``MultiplicativeLR``: :math:`s(t) = \eta_0 \prod_{k=1}^{t} \lambda(k)`.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    lr_lambda : callable
        ``int -> float`` factor applied at each step.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        Bit-identical to torch (the product is taken in torch's order); evaluating ``s(t)`` costs O(t) calls of
        ``lr_lambda``.

    Examples
    --------
    >>> s = multiplicative_lr(1.0, lr_lambda=lambda e: 0.5)
    >>> [s(t) for t in range(4)]
    [1.0, 0.5, 0.25, 0.125]
    """
    _check_initial(initial_lr)
    _check_last_epoch(last_epoch)
    if not callable(lr_lambda):
        raise TypeError(f"lr_lambda must be a callable int -> float, got lr_lambda={lr_lambda!r}")

    def fn(t):
        lr = initial_lr
        for e in range(1, t + 1):
            lr = lr * lr_lambda(e)
        return lr

    def factor(t):
        f = 1.0
        for e in range(1, t + 1):
            f = f * lr_lambda(e)
        return f

    info = _TorchInfo("mult", initial_lr, lambda lr: lr, lambda lr, e: lr * lr_lambda(e), factor, restart="chain")
    return _make(fn, "multiplicative_lr", dict(initial_lr=initial_lr, lr_lambda=lr_lambda), info)


def step_lr(initial_lr: float, /, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> Schedule:
    r"""torch ``StepLR``: :math:`s(t) = \eta_0\,\gamma^{\lfloor t / \mathrm{step\_size} \rfloor}`.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    step_size : int
        Decay period, >= 1 (torch accepts 0 and then fails with ZeroDivisionError on the first step).
    gamma : float
        Multiplicative factor.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = step_lr(1.0, step_size=2, gamma=0.5)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    _check_initial(initial_lr)
    step_size = B.integer("step_size", step_size, lo=1)
    B.real("gamma", gamma)
    _check_last_epoch(last_epoch)

    def factor(t):
        return gamma ** (t // step_size)

    def update(lr, e):
        return lr * gamma if e % step_size == 0 else lr

    info = _TorchInfo("mult", initial_lr, lambda lr: lr, update, factor)
    return _make(lambda t: initial_lr * factor(t), "step_lr",
                 dict(initial_lr=initial_lr, step_size=step_size, gamma=gamma), info)


def multistep_lr(initial_lr: float, /, milestones: Sequence[int], gamma: float = 0.1, last_epoch: int = -1) -> Schedule:
    r"""torch ``MultiStepLR``: :math:`s(t) = \eta_0\,\gamma^{\#\{m \in \mathrm{milestones} : m \le t\}}`.

    Repeated milestones count once per repetition (torch keeps a ``Counter``).

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    milestones : sequence of int
        Non-negative epochs (any order) at which the lr is multiplied by ``gamma``.
    gamma : float
        Multiplicative factor.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Warnings
    --------
    timm's ``MultiStepLRScheduler`` applies milestone ``m`` one step earlier (at ``t = m - 1``).

    Examples
    --------
    >>> s = multistep_lr(1.0, milestones=[2, 4], gamma=0.5)
    >>> [s(t) for t in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """
    _check_initial(initial_lr)
    if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
        raise TypeError(f"milestones must be a sequence of ints, got milestones={milestones!r}")
    ms = [B.integer("milestones", m, lo=0) for m in milestones]
    B.real("gamma", gamma)
    _check_last_epoch(last_epoch)
    counts = Counter(ms)
    ordered = sorted(ms)

    def factor(t):
        return gamma ** bisect.bisect_right(ordered, t)

    def init(lr):
        return lr * gamma ** counts[0] if 0 in counts else lr

    def update(lr, e):
        return lr * gamma ** counts[e] if e in counts else lr

    info = _TorchInfo("mult", initial_lr, init, update, factor)
    return _make(lambda t: initial_lr * factor(t), "multistep_lr",
                 dict(initial_lr=initial_lr, milestones=tuple(ms), gamma=gamma), info)


def constant_lr(initial_lr: float, /, factor: float = 1.0 / 3, total_iters: int = 5, last_epoch: int = -1) -> Schedule:
    r"""torch ``ConstantLR``: :math:`s(t) = \eta_0\,\mathrm{factor}` for :math:`t < T`, :math:`\eta_0` after.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    factor : float
        In ``[0, 1]``.
    total_iters : int
        :math:`T >= 0`.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Warnings
    --------
    Follows torch's stepping: with ``total_iters=0`` the lr stays at ``factor * initial_lr`` forever (torch's
    recursion never undoes the factor; its closed form would say ``initial_lr``). With ``factor=0`` torch raises
    ZeroDivisionError at step ``total_iters``; this returns ``initial_lr`` there.

    Examples
    --------
    >>> s = constant_lr(0.3, factor=0.5, total_iters=2)
    >>> [s(t) for t in range(4)]
    [0.15, 0.15, 0.3, 0.3]
    """
    _check_initial(initial_lr)
    B.real("factor", factor, lo=0, hi=1)
    total_iters = B.integer("total_iters", total_iters, lo=0)
    _check_last_epoch(last_epoch)

    def fac(t):
        if total_iters == 0:
            return factor
        return factor + (t >= total_iters) * (1 - factor)

    def update(lr, e):
        return lr * (1.0 / factor) if e == total_iters else lr

    info = _TorchInfo("mult", initial_lr, lambda lr: lr * factor, update, fac)
    return _make(lambda t: initial_lr * fac(t), "constant_lr",
                 dict(initial_lr=initial_lr, factor=factor, total_iters=total_iters), info)


def linear_lr(initial_lr: float, /, start_factor: float = 1.0 / 3, end_factor: float = 1.0, total_iters: int = 5,
              last_epoch: int = -1) -> Schedule:
    r"""torch ``LinearLR``: :math:`s(t) = \eta_0\,(f_s + (f_e - f_s)\min(t, T)/T)`.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    start_factor : float
        :math:`f_s \in (0, 1]`.
    end_factor : float
        :math:`f_e \in [0, 1]`.
    total_iters : int
        :math:`T >= 0`.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Warnings
    --------
    With ``total_iters=0`` torch's stepping keeps ``start_factor * initial_lr`` forever (its closed form would
    divide by zero); this follows the stepping.

    Examples
    --------
    >>> s = linear_lr(1.0, start_factor=0.25, total_iters=3)
    >>> [s(t) for t in range(5)]
    [0.25, 0.5, 0.75, 1.0, 1.0]
    """
    _check_initial(initial_lr)
    B.real("start_factor", start_factor, lo=0, hi=1, lo_open=True)
    B.real("end_factor", end_factor, lo=0, hi=1)
    total_iters = B.integer("total_iters", total_iters, lo=0)
    _check_last_epoch(last_epoch)

    def fac(t):
        if total_iters == 0:
            return start_factor
        return start_factor + (end_factor - start_factor) * min(total_iters, t) / total_iters

    def update(lr, e):
        if e > total_iters:
            return lr
        return lr * (1.0 + (end_factor - start_factor)
                     / (total_iters * start_factor + (e - 1) * (end_factor - start_factor)))

    info = _TorchInfo("mult", initial_lr, lambda lr: lr * start_factor, update, fac)
    return _make(lambda t: initial_lr * fac(t), "linear_lr",
                 dict(initial_lr=initial_lr, start_factor=start_factor, end_factor=end_factor,
                      total_iters=total_iters), info)


def exponential_lr(initial_lr: float, /, gamma: float, last_epoch: int = -1) -> Schedule:
    r"""torch ``ExponentialLR``: :math:`s(t) = \eta_0\,\gamma^t`.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    gamma : float
        Multiplicative factor per step.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = exponential_lr(1.0, gamma=0.5)
    >>> [s(t) for t in range(3)]
    [1.0, 0.5, 0.25]
    """
    _check_initial(initial_lr)
    B.real("gamma", gamma)
    _check_last_epoch(last_epoch)

    def factor(t):
        return gamma ** t

    info = _TorchInfo("mult", initial_lr, lambda lr: lr, lambda lr, e: lr * gamma, factor)
    return _make(lambda t: initial_lr * factor(t), "exponential_lr", dict(initial_lr=initial_lr, gamma=gamma), info)


def polynomial_lr(initial_lr: float, /, total_iters: int = 5, power: float = 1.0, last_epoch: int = -1) -> Schedule:
    r"""torch ``PolynomialLR``: :math:`s(t) = \eta_0\,(1 - \min(t, T)/T)^{p}` (reaches 0 at :math:`t = T`).

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    total_iters : int
        :math:`T >= 0`; with 0 torch's stepping never changes the lr (so neither does this).
    power : float
        :math:`p`.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = polynomial_lr(1.0, total_iters=4, power=1.0)
    >>> [s(t) for t in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    _check_initial(initial_lr)
    total_iters = B.integer("total_iters", total_iters, lo=0)
    B.real("power", power)
    _check_last_epoch(last_epoch)

    def factor(t):
        if total_iters == 0:
            return 1.0
        return (1.0 - min(total_iters, t) / total_iters) ** power

    def update(lr, e):
        if e > total_iters:
            return lr
        return lr * ((1.0 - e / total_iters) / (1.0 - (e - 1) / total_iters)) ** power

    info = _TorchInfo("mult", initial_lr, lambda lr: lr, update, factor)
    return _make(lambda t: initial_lr * factor(t), "polynomial_lr",
                 dict(initial_lr=initial_lr, total_iters=total_iters, power=power), info)


def cosine_annealing_lr(initial_lr: float, /, T_max: int, eta_min: float = 0.0, last_epoch: int = -1) -> Schedule:
    r"""torch ``CosineAnnealingLR``: :math:`s(t) = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})(1 + \cos(\pi t / T_{max}))`.

    Past ``T_max`` the lr rises again (period ``2 T_max``), as torch's does; it is not held at ``eta_min``.

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    T_max : int
        Half period, >= 1.
    eta_min : float
        Minimum lr.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        The closed form; torch's recursive update agrees to rounding (relative 1e-13 over 3 periods).

    Examples
    --------
    >>> s = cosine_annealing_lr(1.0, T_max=2)
    >>> [round(s(t), 12) for t in range(5)]
    [1.0, 0.5, 0.0, 0.5, 1.0]
    """
    _check_initial(initial_lr)
    T_max = B.integer("T_max", T_max, lo=1)
    B.real("eta_min", eta_min)
    _check_last_epoch(last_epoch)

    def fn(t):
        return eta_min + (initial_lr - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2

    def update(lr, e):
        if (e - 1 - T_max) % (2 * T_max) == 0:
            return lr + (initial_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        return ((1 + math.cos(math.pi * e / T_max)) / (1 + math.cos(math.pi * (e - 1) / T_max))
                * (lr - eta_min) + eta_min)

    info = _TorchInfo("rec", initial_lr, lambda lr: lr, update, None)
    return _make(fn, "cosine_annealing_lr", dict(initial_lr=initial_lr, T_max=T_max, eta_min=eta_min), info)


def cosine_annealing_warm_restarts(initial_lr: float, /, T_0: int, T_mult: int = 1, eta_min: float = 0.0,
                                   last_epoch: int = -1) -> Schedule:
    r"""torch ``CosineAnnealingWarmRestarts`` stepped with ``step()``.

    .. math::

        s(t) = \eta_{\min} + \tfrac12(\eta_0 - \eta_{\min})(1 + \cos(\pi T_{cur} / T_i))

    where cycle :math:`i` has length :math:`T_i = T_0 T_{mult}^i` and :math:`T_{cur}` counts steps since its
    start. The lr never reaches ``eta_min`` (restart happens at :math:`T_{cur} = T_i`).

    Parameters
    ----------
    initial_lr : float
        The param group's lr when the scheduler is created.
    T_0 : int
        First cycle length, >= 1.
    T_mult : int
        Cycle length multiplier, >= 1.
    eta_min : float
        Minimum lr.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        Bit-identical to torch's integer stepping (torch's fractional ``step(epoch)`` is not modelled).

    Examples
    --------
    >>> s = cosine_annealing_warm_restarts(1.0, T_0=2)
    >>> [round(s(t), 12) for t in range(5)]
    [1.0, 0.5, 1.0, 0.5, 1.0]
    """
    _check_initial(initial_lr)
    T_0 = B.integer("T_0", T_0, lo=1)
    T_mult = B.integer("T_mult", T_mult, lo=1)
    B.real("eta_min", eta_min)
    _check_last_epoch(last_epoch)

    def fn(t):
        if T_mult == 1:
            T_cur, T_i = t % T_0, T_0
        else:
            T_cur, T_i = t, T_0
            while T_cur >= T_i:
                T_cur -= T_i
                T_i = T_i * T_mult
        return eta_min + (initial_lr - eta_min) * (1 + math.cos(math.pi * T_cur / T_i)) / 2

    return _make(fn, "cosine_annealing_warm_restarts",
                 dict(initial_lr=initial_lr, T_0=T_0, T_mult=T_mult, eta_min=eta_min), _absolute(fn, initial_lr))


def cyclic_lr(initial_lr: float, /, base_lr: float, max_lr: float, step_size_up: int = 2000,
              step_size_down: int | None = None, mode: str = "triangular", gamma: float = 1.0,
              scale_fn: Callable[[float], float] | None = None, scale_mode: str = "cycle",
              cycle_momentum: bool = True, base_momentum: float = 0.8, max_momentum: float = 0.9,
              last_epoch: int = -1) -> Schedule:
    r"""torch ``CyclicLR`` (all modes, custom ``scale_fn``), with its momentum schedule as ``s.momentum``.

    .. math::

        c = \lfloor 1 + t/S \rfloor,\quad x = 1 + t/S - c,\quad
        h = \begin{cases} x/\rho & x \le \rho \\ (x - 1)/(\rho - 1) & \text{else}\end{cases},\quad
        s(t) = \eta_b + (\eta_M - \eta_b)\,h\,g

    with :math:`S` = ``step_size_up + step_size_down``, :math:`\rho` = ``step_size_up / S`` and
    :math:`g` = ``scale_fn(c)`` (``scale_mode='cycle'``) or ``scale_fn(t)`` (``'iterations'``); built-in modes:
    triangular :math:`g=1`, triangular2 :math:`g = 2^{1-c}`, exp_range :math:`g = \gamma^t`. Momentum:
    :math:`m(t) = m_M - (m_M - m_b)\,h\,g`.

    Parameters
    ----------
    initial_lr : float
        Ignored (torch overwrites the group's lr with ``base_lr``); kept for the common signature.
    base_lr, max_lr : float
        Cycle bounds (one value; build one schedule per param group).
    step_size_up, step_size_down : int
        Half-cycle lengths (``step_size_down=None`` means ``step_size_up``); ``step_size_up > 0``.
    mode, gamma, scale_fn, scale_mode
        As torch.
    cycle_momentum, base_momentum, max_momentum
        When ``cycle_momentum``, ``s.momentum`` is the momentum (or Adam ``betas[0]``) schedule torch writes.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        Bit-identical to torch.

    Examples
    --------
    >>> s = cyclic_lr(0.1, base_lr=0.1, max_lr=1.0, step_size_up=2)
    >>> [round(s(t), 12) for t in range(5)]
    [0.1, 0.55, 1.0, 0.55, 0.1]
    >>> round(s.momentum(2), 12)
    0.8
    """
    _check_initial(initial_lr)
    B.real("base_lr", base_lr)
    B.real("max_lr", max_lr)
    B.real("step_size_up", step_size_up, lo=0, lo_open=True)
    if step_size_down is not None:
        B.real("step_size_down", step_size_down, lo=0)
    if scale_fn is None:
        B.choice("mode", mode, ("triangular", "triangular2", "exp_range"))
    elif not callable(scale_fn):
        raise TypeError(f"scale_fn must be None or a callable, got scale_fn={scale_fn!r}")
    else:
        B.choice("scale_mode", scale_mode, ("cycle", "iterations"))
    B.real("gamma", gamma)
    B.boolean("cycle_momentum", cycle_momentum)
    B.real("base_momentum", base_momentum)
    B.real("max_momentum", max_momentum)
    _check_last_epoch(last_epoch)
    up = float(step_size_up)
    down = float(step_size_down) if step_size_down is not None else up
    total_size = up + down
    step_ratio = up / total_size
    if scale_fn is not None:
        sfn, smode = scale_fn, scale_mode
    elif mode == "triangular":
        sfn, smode = (lambda x: 1.0), "cycle"
    elif mode == "triangular2":
        sfn, smode = (lambda x: 1 / (2.0 ** (x - 1))), "cycle"
    else:
        sfn, smode = (lambda x: gamma ** x), "iterations"

    def parts(t):
        cycle = math.floor(1 + t / total_size)
        x = 1.0 + t / total_size - cycle
        if x <= step_ratio:
            scale_factor = x / step_ratio
        else:
            scale_factor = (x - 1) / (step_ratio - 1)
        return cycle, scale_factor

    def fn(t):
        cycle, scale_factor = parts(t)
        base_height = (max_lr - base_lr) * scale_factor
        return base_lr + base_height * sfn(cycle if smode == "cycle" else t)

    def mom(t):
        cycle, scale_factor = parts(t)
        base_height = (max_momentum - base_momentum) * scale_factor
        return max_momentum - base_height * sfn(cycle if smode == "cycle" else t)

    params = dict(initial_lr=initial_lr, base_lr=base_lr, max_lr=max_lr, step_size_up=step_size_up,
                  step_size_down=step_size_down, mode=mode, gamma=gamma, scale_fn=scale_fn, scale_mode=scale_mode,
                  cycle_momentum=cycle_momentum, base_momentum=base_momentum, max_momentum=max_momentum)
    momentum = Schedule(mom, "cyclic_lr.momentum", params) if cycle_momentum else None
    return _make(fn, "cyclic_lr", params, _absolute(fn, base_lr), momentum=momentum)


def one_cycle_lr(initial_lr: float, /, max_lr: float, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float = 0.85, max_momentum: float = 0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1) -> Schedule:
    r"""torch ``OneCycleLR`` (cos / linear annealing, two or three phases), momentum as ``s.momentum``.

    Start :math:`\eta_0 = \eta_{max}/\mathrm{div\_factor}`, end :math:`\eta_0/\mathrm{final\_div\_factor}`. Phase
    ends (steps): :math:`pT - 1`, then :math:`T - 1` (two phases) or :math:`2pT - 2`, :math:`T - 1` (three phases),
    with :math:`p` = ``pct_start``, :math:`T` = ``total_steps``. Within a phase from step :math:`a` to :math:`b`,
    :math:`r = (t - a)/(b - a)` and the lr anneals from the phase's start to its end value:
    cos: :math:`e + \tfrac12(s - e)(1 + \cos\pi r)`; linear: :math:`(e - s) r + s`.

    Parameters
    ----------
    initial_lr : float
        Ignored (torch overwrites ``initial_lr`` with ``max_lr / div_factor``); kept for the common signature.
    max_lr : float
        Peak lr.
    total_steps, epochs, steps_per_epoch : int
        ``total_steps`` or ``epochs * steps_per_epoch``.
    pct_start, anneal_strategy, three_phase, div_factor, final_div_factor
        As torch.
    cycle_momentum, base_momentum, max_momentum
        When ``cycle_momentum``, ``s.momentum`` is the momentum (or Adam ``betas[0]``) schedule.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule
        Bit-identical to torch. Like torch, ``s(t)`` raises ValueError for ``t > total_steps``.

    Examples
    --------
    >>> s = one_cycle_lr(0.0, max_lr=1.0, total_steps=10, anneal_strategy='linear')
    >>> [round(s(t), 6) for t in (0, 2, 9)]
    [0.04, 1.0, 4e-06]
    """
    _check_initial(initial_lr)
    B.real("max_lr", max_lr)
    if total_steps is not None:
        total_steps = B.integer("total_steps", total_steps, lo=1)
    elif epochs is not None and steps_per_epoch is not None:
        epochs = B.integer("epochs", epochs, lo=1)
        steps_per_epoch = B.integer("steps_per_epoch", steps_per_epoch, lo=1)
        total_steps = epochs * steps_per_epoch
    else:
        raise ValueError(f"one_cycle_lr needs total_steps or (epochs and steps_per_epoch), got "
                         f"total_steps={total_steps!r}, epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}")
    B.real("pct_start", pct_start, lo=0, hi=1)
    B.choice("anneal_strategy", anneal_strategy, ("cos", "linear"))
    B.boolean("cycle_momentum", cycle_momentum)
    B.boolean("three_phase", three_phase)
    B.real("base_momentum", base_momentum)
    B.real("max_momentum", max_momentum)
    B.real("div_factor", div_factor)
    B.real("final_div_factor", final_div_factor)
    if div_factor == 0 or final_div_factor == 0:
        raise ValueError(f"div_factor and final_div_factor must be non-zero, got div_factor={div_factor!r}, "
                         f"final_div_factor={final_div_factor!r}")
    _check_last_epoch(last_epoch)
    init_lr = max_lr / div_factor
    values = {"initial_lr": init_lr, "max_lr": max_lr, "min_lr": init_lr / final_div_factor,
              "max_momentum": max_momentum, "base_momentum": base_momentum}
    if three_phase:
        phases = [
            (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (float(2 * pct_start * total_steps) - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"),
            (total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"),
        ]
    else:
        phases = [
            (float(pct_start * total_steps) - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
            (total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"),
        ]
    # a phase some step lands in must have a non-zero length (torch would divide by zero there)
    if phases[0][0] == 0:
        raise ValueError(f"pct_start * total_steps must not be 1 (the warm-up phase would have zero length), got "
                         f"pct_start={pct_start!r}, total_steps={total_steps!r}")
    if phases[-1][0] == phases[-2][0]:
        raise ValueError(f"the last phase has zero length for pct_start={pct_start!r}, total_steps={total_steps!r}")

    if anneal_strategy == "cos":
        def anneal(start, end, pct):
            cos_out = math.cos(math.pi * pct) + 1
            return end + (start - end) / 2.0 * cos_out
    else:
        def anneal(start, end, pct):
            return (end - start) * pct + start

    def at(t, lr):
        if t > total_steps:
            raise ValueError(f"one_cycle_lr is defined for t <= total_steps={total_steps} (torch raises when stepped "
                             f"further), got t={t}")
        start_step = 0.0
        for i, (end_step, s_lr, e_lr, s_m, e_m) in enumerate(phases):
            if t <= end_step or i == len(phases) - 1:
                pct = (t - start_step) / (end_step - start_step)
                if lr:
                    return anneal(values[s_lr], values[e_lr], pct)
                return anneal(values[s_m], values[e_m], pct)
            start_step = end_step

    def fn(t):
        return at(t, True)

    params = dict(initial_lr=initial_lr, max_lr=max_lr, total_steps=total_steps, epochs=epochs,
                  steps_per_epoch=steps_per_epoch, pct_start=pct_start, anneal_strategy=anneal_strategy,
                  cycle_momentum=cycle_momentum, base_momentum=base_momentum, max_momentum=max_momentum,
                  div_factor=div_factor, final_div_factor=final_div_factor, three_phase=three_phase)
    momentum = Schedule(lambda t: at(t, False), "one_cycle_lr.momentum", params) if cycle_momentum else None
    return _make(fn, "one_cycle_lr", params, _absolute(fn, init_lr), momentum=momentum)


# ----------------------------------------------------------------------------------------------------------------
# composition: SequentialLR and ChainedScheduler


def _check_subs(name, schedulers, initial_lr):
    if isinstance(schedulers, (str, bytes)) or not isinstance(schedulers, Sequence) or len(schedulers) < 1:
        raise ValueError(f"{name} needs a non-empty sequence of schedules, got schedulers={schedulers!r}")
    subs = list(schedulers)
    for i, s in enumerate(subs):
        if isinstance(s, (ReduceLROnPlateau,)) or not callable(s):
            raise TypeError(f"schedulers[{i}] must be a schedule (a callable t -> float; ReduceLROnPlateau is not "
                            f"supported, as in torch), got {s!r}")
        info = getattr(s, "_torch", None)
        if info is not None and info.kind != "abs" and info.base != initial_lr:
            raise ValueError(f"schedulers[{i}] was built with initial_lr={info.base!r} but {name} has "
                             f"initial_lr={initial_lr!r}; torch schedulers on one optimizer share its initial lr")
    return subs


def sequential_lr(initial_lr: float, /, schedulers: Sequence[Callable[[int], float]], milestones: Sequence[int],
                  last_epoch: int = -1) -> Schedule:
    r"""torch ``SequentialLR``: schedule :math:`i` runs from milestone :math:`m_{i-1}` on, restarted at 0.

    .. math::

        s(t) = s_i(t - m_{i-1}), \qquad i = \#\{m_j \le t\},\ m_{-1} = 0

    A ``MultiplicativeLR`` stage continues from the lr the previous stage left (torch restarts it by
    multiplying the current lr by ``lr_lambda(0)``).

    Parameters
    ----------
    initial_lr : float
        The param group's lr (shared by all sub-schedules).
    schedulers : sequence of schedules
        Pure schedules (from this module or any callable ``t -> float``).
    milestones : sequence of int
        Sorted, ``len(schedulers) - 1`` of them.
    last_epoch : int
        Only ``-1``.

    Returns
    -------
    Schedule

    Warnings
    --------
    Nested ``SequentialLR`` is evaluated as the plain composition of pure schedules; torch's nested stepping has
    known bugs (pytorch#196243) that are not reproduced.

    Examples
    --------
    >>> warm = linear_lr(1.0, start_factor=0.5, total_iters=2)
    >>> decay = exponential_lr(1.0, gamma=0.5)
    >>> s = sequential_lr(1.0, schedulers=[warm, decay], milestones=[2])
    >>> [s(t) for t in range(5)]
    [0.5, 0.75, 1.0, 0.5, 0.25]
    """
    _check_initial(initial_lr)
    subs = _check_subs("sequential_lr", schedulers, initial_lr)
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
        raise TypeError(f"milestones must be a sequence of ints, got milestones={milestones!r}")
    ms = [B.integer("milestones", m, lo=0) for m in milestones]
    if len(ms) != len(subs) - 1:
        raise ValueError(f"milestones must have len(schedulers) - 1 = {len(subs) - 1} entries, got "
                         f"milestones={milestones!r}")
    if ms != sorted(ms):
        raise ValueError(f"milestones must be sorted, got milestones={milestones!r}")
    _check_last_epoch(last_epoch)
    infos = [_info_of(s) for s in subs]

    def fn(t):
        idx = bisect.bisect_right(ms, t)
        if idx == 0:
            return subs[0](t)
        m = ms[idx - 1]
        info = infos[idx]
        if info.restart == "chain" and m > 0:
            lr = fn(m - 1)
            for e in range(0, t - m + 1):
                lr = info.update(lr, e)
            return lr
        return subs[idx](t - m)

    return _make(fn, "sequential_lr", dict(initial_lr=initial_lr, schedulers=tuple(subs), milestones=tuple(ms)),
                 _absolute(lambda t: fn(t), initial_lr))


def chained_scheduler(initial_lr: float, /, schedulers: Sequence[Callable[[int], float]], optimizer: Any = None) -> Schedule:
    r"""torch ``ChainedScheduler``: every sub-schedule steps, in order, on the same lr.

    For multiplicative schedulers (StepLR, MultiStepLR, ConstantLR, LinearLR, ExponentialLR, PolynomialLR,
    MultiplicativeLR) the effect is the product of their factors,
    :math:`s(t) = \eta_0 \prod_i s_i(t)/\eta_0`, evaluated in O(1). Otherwise torch's per-step updates are
    replayed (O(t) per evaluation): CosineAnnealingLR applies its recursive update to the current lr, and
    schedulers that set the lr from scratch (LambdaLR, CyclicLR, OneCycleLR, CosineAnnealingWarmRestarts and
    any non-torch schedule) overwrite it.

    Parameters
    ----------
    initial_lr : float
        The param group's lr (shared by all sub-schedules).
    schedulers : sequence of schedules
        Pure schedules.
    optimizer : None
        Accepted for signature compatibility; must be None.

    Returns
    -------
    Schedule

    Examples
    --------
    >>> s = chained_scheduler(1.0, schedulers=[constant_lr(1.0, factor=0.1, total_iters=2),
    ...                                        exponential_lr(1.0, gamma=0.5)])
    >>> [round(s(t), 12) for t in range(4)]
    [0.1, 0.05, 0.25, 0.125]
    """
    _check_initial(initial_lr)
    subs = _check_subs("chained_scheduler", schedulers, initial_lr)
    if optimizer is not None:
        raise ValueError(f"optimizer must be None for a pure schedule, got optimizer={optimizer!r}")
    infos = [_info_of(s) for s in subs]
    if all(i.kind == "mult" for i in infos):
        def fn(t):
            lr = initial_lr
            for i in infos:
                lr = lr * i.factor(t)
            return lr
    else:
        def fn(t):
            lr = initial_lr
            for i in infos:
                lr = i.init(lr)
            for e in range(1, t + 1):
                for i in infos:
                    lr = i.update(lr, e)
            return lr

    return _make(fn, "chained_scheduler", dict(initial_lr=initial_lr, schedulers=tuple(subs)),
                 _absolute(lambda t: fn(t), initial_lr))


# ----------------------------------------------------------------------------------------------------------------
# ReduceLROnPlateau


class ReduceLROnPlateauState(NamedTuple):
    """State of :class:`ReduceLROnPlateau`: the lr and torch's counters (same names as its attributes)."""

    lr: float
    best: float
    num_bad_epochs: int
    cooldown_counter: int
    last_epoch: int


class _PlateauParams(NamedTuple):
    mode: str
    factor: float
    patience: int
    threshold: float
    threshold_mode: str
    cooldown: int
    min_lr: float
    eps: float


def _plateau_params(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps, names=None):
    n = dict(mode="mode", factor="factor", patience="patience", threshold="threshold",
             threshold_mode="threshold_mode", cooldown="cooldown", min_lr="min_lr", eps="eps")
    n.update(names or {})
    B.choice(n["mode"], mode, ("min", "max"))
    B.real(n["factor"], factor, lo=0, hi=1, hi_open=True)
    patience = B.integer(n["patience"], patience, lo=0)
    B.real(n["threshold"], threshold)
    B.choice(n["threshold_mode"], threshold_mode, ("rel", "abs"))
    cooldown = B.integer(n["cooldown"], cooldown, lo=0)
    if isinstance(min_lr, (list, tuple)):
        raise TypeError(f"{n['min_lr']} must be a float (one schedule per param group), got "
                        f"{n['min_lr']}={min_lr!r}")
    B.real(n["min_lr"], min_lr)
    B.real(n["eps"], eps, lo=0)
    return _PlateauParams(mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps)


def _plateau_check(p, best, current):
    if p.mode == "min" and p.threshold_mode == "rel":
        return current < best * (1.0 - p.threshold)
    if p.mode == "min":
        return current < best - p.threshold
    if p.threshold_mode == "rel":
        return current > best * (p.threshold + 1.0)
    return current > best + p.threshold


def _plateau_update(p: _PlateauParams, best, num_bad, cooldown_counter, last_epoch, lr, metric):
    """One ``ReduceLROnPlateau.step(metric)``; returns the new counters and lr."""
    current = float(metric)
    last_epoch = last_epoch + 1
    if _plateau_check(p, best, current):
        best = current
        num_bad = 0
    else:
        num_bad += 1
    if cooldown_counter > 0:
        cooldown_counter -= 1
        num_bad = 0
    if num_bad > p.patience:
        old_lr = float(lr)
        new_lr = max(old_lr * p.factor, p.min_lr)
        if old_lr - new_lr > p.eps:
            lr = new_lr
        cooldown_counter = p.cooldown
        num_bad = 0
    return best, num_bad, cooldown_counter, last_epoch, lr


class ReduceLROnPlateau:
    """Pure state machine equivalent to torch's ``ReduceLROnPlateau`` (see :func:`reduce_lr_on_plateau`)."""

    __slots__ = ("initial_lr", "_p")

    def __init__(self, initial_lr: float, p: _PlateauParams) -> None:
        object.__setattr__(self, "initial_lr", initial_lr)
        object.__setattr__(self, "_p", p)

    def __setattr__(self, key, value):
        raise AttributeError(f"ReduceLROnPlateau is immutable; cannot set {key!r}")

    @property
    def params(self) -> dict:
        return self._p._asdict()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"reduce_lr_on_plateau({self.initial_lr!r}, {args})"

    def init(self) -> ReduceLROnPlateauState:
        """The state right after construction (``best`` is ``inf`` for 'min', ``-inf`` for 'max')."""
        return ReduceLROnPlateauState(self.initial_lr, math.inf if self._p.mode == "min" else -math.inf, 0, 0, 0)

    def step(self, state: ReduceLROnPlateauState, metrics: float):
        """``(state, metrics) -> (new_state, lr)``: one ``scheduler.step(metrics)``."""
        if not isinstance(state, ReduceLROnPlateauState):
            raise TypeError(f"state must be a ReduceLROnPlateauState (from .init()), got state={state!r}")
        B.real("metrics", metrics, finite=False)
        best, nbad, cool, last, lr = _plateau_update(self._p, state.best, state.num_bad_epochs,
                                                     state.cooldown_counter, state.last_epoch, state.lr, metrics)
        return ReduceLROnPlateauState(lr, best, nbad, cool, last), lr

    __call__ = step


def reduce_lr_on_plateau(initial_lr: float, /, mode: str = "min", factor: float = 0.1, patience: int = 10,
                         threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                         min_lr: float = 0, eps: float = 1e-8) -> ReduceLROnPlateau:
    r"""torch ``ReduceLROnPlateau`` as a pure state machine ``(state, metrics) -> (state, lr)``.

    A metric :math:`a` improves on ``best`` when :math:`a < best(1 - \theta)` (min/rel), :math:`a < best - \theta`
    (min/abs), :math:`a > best(1 + \theta)` (max/rel) or :math:`a > best + \theta` (max/abs). After more than
    ``patience`` non-improving steps (not counting those in cooldown) the lr becomes
    :math:`\max(\eta\,\mathrm{factor}, \mathrm{min\_lr})` if that lowers it by more than ``eps``, and a cooldown
    of ``cooldown`` steps starts.

    Parameters
    ----------
    initial_lr : float
        The param group's lr.
    mode, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps
        As torch (``factor`` in ``[0, 1)``; ``min_lr`` one float).

    Returns
    -------
    ReduceLROnPlateau
        ``init()`` and ``step(state, metrics) -> (state, lr)``.

    Examples
    --------
    >>> plateau = reduce_lr_on_plateau(1.0, patience=1)
    >>> state = plateau.init()
    >>> lrs = []
    >>> for loss in [3.0, 2.0, 2.0, 2.0, 2.0]:
    ...     state, lr = plateau.step(state, loss)
    ...     lrs.append(lr)
    >>> lrs
    [1.0, 1.0, 1.0, 0.1, 0.1]
    """
    _check_initial(initial_lr)
    return ReduceLROnPlateau(initial_lr, _plateau_params(mode, factor, patience, threshold, threshold_mode,
                                                         cooldown, min_lr, eps))


TORCH_EQUIVALENTS = {
    "LambdaLR": lambda_lr,
    "MultiplicativeLR": multiplicative_lr,
    "StepLR": step_lr,
    "MultiStepLR": multistep_lr,
    "ConstantLR": constant_lr,
    "LinearLR": linear_lr,
    "ExponentialLR": exponential_lr,
    "PolynomialLR": polynomial_lr,
    "CosineAnnealingLR": cosine_annealing_lr,
    "CosineAnnealingWarmRestarts": cosine_annealing_warm_restarts,
    "CyclicLR": cyclic_lr,
    "OneCycleLR": one_cycle_lr,
    "SequentialLR": sequential_lr,
    "ChainedScheduler": chained_scheduler,
    "ReduceLROnPlateau": reduce_lr_on_plateau,
}
