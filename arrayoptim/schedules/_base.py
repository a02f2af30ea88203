"""The schedule type, argument validation and the step check shared by every schedule."""

from __future__ import annotations

import math
import numbers
import operator
from types import MappingProxyType
from typing import Any, Callable, Mapping

__all__ = ["Schedule"]


def check_step(t: Any) -> int:
    """Validate a step count: a non-negative integer (``bool`` is rejected)."""
    if isinstance(t, bool):
        raise TypeError(f"step t must be a non-negative integer, got t={t!r}")
    try:
        i = operator.index(t)
    except TypeError:
        raise TypeError(f"step t must be a non-negative integer, got t={t!r} of type {type(t).__name__}") from None
    if i < 0:
        raise ValueError(f"step t must be a non-negative integer, got t={t!r}")
    return i


class Schedule:
    """A pure schedule: ``s(t) -> float`` for an integer step ``t >= 0``.

    Instances are immutable. ``name`` and ``params`` say how the schedule was built (``params`` is a read-only
    mapping of the factory's arguments); ``momentum`` is a companion schedule for factories that also drive
    momentum (torch's ``CyclicLR`` and ``OneCycleLR``), else ``None``; ``t_in_epochs`` says whether timm would
    drive it with ``step(epoch)`` (``True``) or ``step_update(num_updates)`` (``False``), ``None`` when the
    anchor has no such notion.
    """

    __slots__ = ("_fn", "name", "params", "momentum", "t_in_epochs", "_torch", "__weakref__")

    def __init__(
        self,
        fn: Callable[[int], float],
        name: str,
        params: Mapping[str, Any],
        *,
        momentum: "Schedule | None" = None,
        t_in_epochs: bool | None = None,
        torch_info: Any = None,
    ) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", MappingProxyType(dict(params)))
        object.__setattr__(self, "momentum", momentum)
        object.__setattr__(self, "t_in_epochs", t_in_epochs)
        object.__setattr__(self, "_torch", torch_info)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Schedule is immutable; cannot set {key!r}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"Schedule is immutable; cannot delete {key!r}")

    def __call__(self, t: int) -> float:
        return float(self._fn(check_step(t)))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


# ----------------------------------------------------------------------------------------------------------------
# argument validation: every error names the argument and its value


def real(name: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
         hi_open: bool = False, finite: bool = True) -> float:
    """Check ``value`` is a real number (not bool) within the given bounds and return it unchanged."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {name}={value!r}")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"{name} must be a finite number, got {name}={value!r}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {name}={value!r}")
    if hi is not None and (v > hi or (hi_open and v == hi)):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {name}={value!r}")
    return value


def integer(name: str, value: Any, *, lo: int | None = None) -> int:
    """Check ``value`` is an integer (not bool), ``>= lo`` when given, and return it as ``int``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {name}={value!r}") from None
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {name}={value!r}")
    return v


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {name}={value!r}")
    return value


def choice(name: str, value: Any, options: tuple) -> Any:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {name}={value!r}")
    return value


def schedule_like(name: str, value: Any) -> Callable[[int], float]:
    if not callable(value):
        raise TypeError(f"{name} must be a schedule (a callable t -> float), got {name}={value!r}")
    return value
