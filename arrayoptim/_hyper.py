"""Frozen, validated hyperparameter records.

Each optimizer declares one record: a frozen, keyword-only dataclass deriving from :class:`Hyperparams`, whose
field names and defaults are the anchor constructor's own (``lr``, ``betas``, ``eps``, ``weight_decay``, ...).
Values are coerced once, at construction, to plain Python numbers (so they never upcast float32 arrays the way a
NumPy float64 scalar would) and validated by the record's ``validate`` method, with torch's error messages extended
by the argument's name.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar

__all__ = ["Hyperparams", "hyperfield", "IMPLEMENTATION_SELECTORS"]

#: torch's implementation selectors: accepted everywhere, no effect on the math.
IMPLEMENTATION_SELECTORS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def hyperfield(default: Any, kind: str | None = None, doc: str = "") -> Any:
    """A record field. ``kind`` is one of 'float', 'int', 'bool', 'floats' (tuple of floats), 'str', 'dtype' (a
    dtype of any library or its name, kept as the name), 'any',
    optionally prefixed by '?' when None is allowed; by default it is inferred from the default value."""
    if kind is None:
        kind = _infer_kind(default)
    return dataclasses.field(default=default, metadata={"kind": kind, "doc": doc})


def _infer_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "float"  # numeric hyperparameters given as ints (lr=1) are floats
    if isinstance(value, float):
        return "float"
    if isinstance(value, tuple):
        return "floats"
    if isinstance(value, str):
        return "str"
    return "any"


def _is_real_number(v: Any) -> bool:
    """Python/NumPy real numbers, and 0-d real arrays of any library (e.g. torch's ``lr=torch.tensor(1e-3)``)."""
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Real):
        return True
    if getattr(v, "ndim", None) == 0 and hasattr(v, "__float__"):
        return "complex" not in str(getattr(v, "dtype", "")) and "bool" not in str(getattr(v, "dtype", ""))
    return False


def _coerce(name: str, value: Any, kind: str) -> Any:
    optional = kind.startswith("?")
    kind = kind.lstrip("?")
    if value is None:
        if optional:
            return None
        raise TypeError(f"hyperparameter {name!r} must not be None")
    if kind == "any":
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
        # NumPy booleans are fine; ints and strings are not
        if type(value).__name__ == "bool_":
            return bool(value)
        raise TypeError(f"hyperparameter {name!r} must be a bool, got {value!r}")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise TypeError(f"hyperparameter {name!r} must be a str, got {value!r}")
    if kind == "dtype":
        # a dtype's name: 'bfloat16', torch.bfloat16, numpy.dtype('float32'), jax.numpy.float16 all give theirs
        if isinstance(value, str):
            return value
        text = getattr(value, "name", None) or getattr(getattr(value, "dtype", None), "name", None) or str(value)
        if isinstance(text, str) and text.startswith("torch."):
            text = text[len("torch."):]
        elif isinstance(text, str) and text.startswith("<class"):  # a scalar type such as numpy.float16
            text = getattr(value, "__name__", text)
        if isinstance(text, str) and text.isidentifier():
            return text
        raise TypeError(f"hyperparameter {name!r} must be a dtype or a dtype name, got {value!r}")
    if kind == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"hyperparameter {name!r} must be an int, got {value!r}")
    if kind == "float":
        if _is_real_number(value):
            return float(value)
        shape = getattr(value, "shape", None)
        if shape is not None and getattr(value, "ndim", 0) >= 1 and not isinstance(value, (str, bytes)):
            # torch accepts a 1-element tensor lr and raises ValueError("Tensor lr must be 1-element") otherwise
            if math.prod(shape) != 1:
                raise ValueError(f"Tensor {name} must be 1-element (hyperparameter {name!r} has shape "
                                 f"{tuple(shape)})")
            flat = value.reshape(())
            if _is_real_number(flat):
                return float(flat)
        raise TypeError(f"hyperparameter {name!r} must be a real number, got {value!r}")
    if kind == "floats":
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(f"hyperparameter {name!r} must be a tuple of numbers, got {value!r}") from None
        if not all(_is_real_number(v) for v in items):
            raise TypeError(f"hyperparameter {name!r} must be a tuple of numbers, got {value!r}")
        return tuple(float(v) for v in items)
    raise AssertionError(f"unknown kind {kind!r}")  # pragma: no cover


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hyperparams:
    """Base of every hyperparameter record: frozen, keyword-only, coerced and validated on construction.

    ``dataclasses.replace(record, lr=0.1)`` makes a validated copy (used for param groups and per-step overrides).
    """

    #: the anchor that defines this record's names and defaults, e.g. ``"torch.optim.SGD"``
    anchor: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            kind = f.metadata.get("kind") or _infer_kind(f.default)
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), kind))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the argument and value for anything out of range."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ---------------------------------------------------------------------------------------------------------------
# Shared checks, worded like torch's messages plus the argument's name.

def check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value} ({name} must be finite)")


def check_lr(lr: float) -> None:
    if not lr >= 0.0:  # also rejects NaN
        raise ValueError(f"Invalid learning rate: {lr} (lr={lr!r} must be >= 0)")


def check_eps(eps: float, name: str = "eps") -> None:
    if not eps >= 0.0:
        raise ValueError(f"Invalid epsilon value: {eps} ({name}={eps!r} must be >= 0)")


def check_weight_decay(wd: float) -> None:
    if not wd >= 0.0:
        raise ValueError(f"Invalid weight_decay value: {wd} (weight_decay={wd!r} must be >= 0)")


def check_momentum(momentum: float) -> None:
    if not momentum >= 0.0:
        raise ValueError(f"Invalid momentum value: {momentum} (momentum={momentum!r} must be >= 0)")


def check_betas(betas: tuple[float, ...], n: int = 2, name: str = "betas") -> None:
    if len(betas) != n:
        raise ValueError(f"Invalid {name}: {betas!r} ({name} must have {n} entries)")
    for i, b in enumerate(betas):
        if not 0.0 <= b < 1.0:
            raise ValueError(f"Invalid beta parameter at index {i}: {b} ({name}[{i}]={b!r} must be in [0, 1))")


def check_max_lr_snapshot(corrected: bool, max_lr: float | None) -> None:
    if corrected and max_lr is not None and not max_lr > 0.0:
        raise ValueError(
            f"Corrected weight decay requires a positive max lr, got {max_lr} (max_lr_snapshot={max_lr!r}); "
            "construct the optimizer with the peak lr")
