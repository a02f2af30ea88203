"""Frozen, validated hyperparameter records.

Each optimizer declares one record: a frozen, keyword-only dataclass deriving from :class:`Hyperparams`, whose
field names and defaults are the anchor constructor's own (``lr``, ``betas``, ``eps``, ``weight_decay``, ...).
Values are coerced once, at construction, to plain Python numbers (so they never upcast float32 arrays the way a
NumPy float64 scalar would), then checked: first the record's declared ``checks`` (a mapping of field name to a
check from the small vocabulary below, in the order torch runs them), then the generic domain rule, then its
``validate`` method, which holds only what is specific to the record (rules across fields, normalizations). Errors
are torch's messages extended by the argument's name.

The generic domain rule covers every field, declared or not: no real number in a field, nor inside a tuple or list
in it (``betas``, ``step_sizes``, ``ns_coefficients``), may be NaN, and none may be infinite, except ``+inf`` in a
field whose declared check says ``inf_ok`` (a clipping threshold of ``inf``: no clipping; ASGD's ``t0=inf``: never
average). It runs after the declared checks, so a value torch rejects gets torch's message; the anchors accept NaN
and infinities in most fields, where they poison the params (``lr=inf``) or silently disable a rule.

Examples
--------
>>> import dataclasses
>>> from arrayoptim import Hyperparams
>>> from arrayoptim.checks import ADAM_CHECKS, Range
>>> @dataclasses.dataclass(frozen=True, kw_only=True)
... class Toy(Hyperparams):
...     lr: float = 1e-3
...     betas: tuple[float, float] = (0.9, 0.999)
...     eps: float = 1e-8
...     weight_decay: float = 0.0
...     gamma: float = 0.5
...     checks = {**ADAM_CHECKS, "gamma": Range(gt=0.0, le=1.0)}
>>> Toy(eps=-1.0)
Traceback (most recent call last):
ValueError: Invalid epsilon value: -1.0 (eps=-1.0 must be >= 0)
>>> Toy(gamma=0)
Traceback (most recent call last):
ValueError: Invalid gamma value: 0.0 (gamma=0.0 must be in (0, 1])
>>> Toy(lr=float('inf'))
Traceback (most recent call last):
ValueError: Invalid lr value: inf (lr=inf must be finite)
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Mapping

__all__ = ["Hyperparams", "hyperfield", "IMPLEMENTATION_SELECTORS", "Check", "Range", "OneOf", "Betas", "Each", "LR",
           "EPS", "NONNEG", "BETAS", "MAX_LR_SNAPSHOT", "NESTEROV", "ADAM_CHECKS", "SHOULD_BE", "check_domain"]

#: a declarative check, ``check(name, value, record) -> None``, raising ``ValueError`` (see :class:`Range`)
Check = Callable[[str, Any, Any], None]

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
    #: field name -> :data:`Check`, applied in this order (the anchor's) after coercion, before the generic domain
    #: rule (:func:`check_domain`: no NaN, no infinity unless the check is ``inf_ok``) and :meth:`validate`;
    #: a field holding None (an optional one left unset) is not checked
    checks: ClassVar[Mapping[str, Check]] = MappingProxyType({})
    #: field -> the field whose value it takes when left None, at construction (timm's corrected weight decay
    #: snapshots the constructor ``lr`` as ``max_lr_snapshot``; per-step overrides of ``lr`` keep the snapshot)
    defaults_from: ClassVar[Mapping[str, str]] = MappingProxyType({"max_lr_snapshot": "lr"})

    def __post_init__(self) -> None:
        fields = dataclasses.fields(self)
        for f in fields:
            kind = f.metadata.get("kind") or _infer_kind(f.default)
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), kind))
        names = {f.name for f in fields}
        for name, source in self.defaults_from.items():
            if name in names and source in names and getattr(self, name) is None:
                object.__setattr__(self, name, getattr(self, source))
        for name, check in self.checks.items():
            value = getattr(self, name)
            if value is not None:
                check(name, value, self)
        for f in fields:
            check_domain(f.name, getattr(self, f.name), getattr(self.checks.get(f.name), "inf_ok", False))
        self.validate()

    def validate(self) -> None:
        """What the declared ``checks`` cannot say (rules across fields, normalizations): raise ``ValueError``
        naming the arguments and values."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ---------------------------------------------------------------------------------------------------------------
# Declarative checks, worded like torch's messages plus the argument's name. A check is any callable
# ``check(name, value, record)`` that raises ``ValueError``; these are the shared vocabulary.

def _num(x: float) -> str:
    return f"{x:g}"


def check_domain(name: str, value: Any, inf_ok: bool = False) -> None:
    """The generic rule every field obeys (run by :class:`Hyperparams` after the declared checks): no real number in
    ``value``, nor in a tuple or list inside it (at any depth), is NaN or infinite; ``inf_ok`` lets ``+inf`` through
    (a field whose check declares it: a threshold where ``inf`` means "no limit"). ``-inf`` always raises."""
    for where, v in _reals(name, value):
        x = float(v)
        if x != x:
            raise ValueError(f"Invalid {name} value: {value!r} ({where}={x!r} must not be NaN)")
        if math.isinf(x) and not (inf_ok and x > 0):
            allowed = "finite or +inf" if inf_ok else "finite"
            raise ValueError(f"Invalid {name} value: {value!r} ({where}={x!r} must be {allowed})")


def _reals(where: str, value: Any):
    """``(path, number)`` for every real number in ``value`` and in the tuples/lists nested in it."""
    if isinstance(value, (tuple, list)):
        for i, v in enumerate(value):
            yield from _reals(f"{where}[{i}]", v)
    elif _is_real_number(value):
        yield where, value


@dataclasses.dataclass(frozen=True)
class Range:
    """``value`` within the bounds given (``ge``/``gt`` below, ``le``/``lt`` above; NaN is out of every range, also
    of a ``Range()`` without bounds).

    Out of range raises ``ValueError(message)``, formatted with ``name``, ``value``, ``label`` (default
    ``'<name> value'``), ``bound`` (``'>= 0'``, ``'in [0, 1)'``) and ``note``; the default message is torch's
    ``Invalid <label>: <value>`` plus ``(<name>=<value> must be <bound><note>)``.

    ``inf_ok=True`` declares ``+inf`` a meaningful value of the field (a clipping threshold: no clipping), which the
    generic rule (:func:`check_domain`) otherwise rejects in every field; the bounds still apply.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    label: str | None = None
    note: str = ""
    message: str = "Invalid {label}: {value} ({name}={value!r} must be {bound}{note})"
    inf_ok: bool = False

    def __call__(self, name: str, value: Any, record: Any = None) -> None:
        ok = (value == value and (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
              and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        if not ok:
            label = f"{name} value" if self.label is None else self.label
            raise ValueError(self.message.format(name=name, value=value, label=label, bound=self.bound,
                                                 note=self.note))

    @property
    def bound(self) -> str:
        """``'>= 0'``, ``'> 0'``, ``'< 100'``, ... or an interval such as ``'in [0, 1)'``."""
        ops = ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
        given = [(op, v) for op, v in ops if v is not None]
        if not given:
            return "a number"
        if len(given) == 1:
            return f"{given[0][0]} {_num(given[0][1])}"
        (lo_op, lo), (hi_op, hi) = given
        return f"in {'[' if lo_op == '>=' else '('}{_num(lo)}, {_num(hi)}{']' if hi_op == '<=' else ')'}"


@dataclasses.dataclass(frozen=True)
class OneOf:
    """``value`` is one of ``choices``, else ``ValueError(message)`` formatted with ``name``, ``value`` and
    ``choices``."""

    choices: Any
    message: str

    def __call__(self, name: str, value: Any, record: Any = None) -> None:
        if value not in self.choices:
            raise ValueError(self.message.format(name=name, value=value, choices=self.choices))


@dataclasses.dataclass(frozen=True)
class Betas:
    """``n`` coefficients, each in ``[0, 1)`` (torch's messages, one per index)."""

    n: int = 2

    def __call__(self, name: str, value: Any, record: Any = None) -> None:
        if len(value) != self.n:
            raise ValueError(f"Invalid {name}: {value!r} ({name} must have {self.n} entries)")
        for i, b in enumerate(value):
            if not 0.0 <= b < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {b} ({name}[{i}]={b!r} must be in [0, 1))")


@dataclasses.dataclass(frozen=True)
class Each:
    """``check`` applied to every element of a tuple, each named ``<name>[i]`` (Rprop's ``step_sizes``)."""

    check: Check

    @property
    def inf_ok(self) -> bool:
        return getattr(self.check, "inf_ok", False)

    def __call__(self, name: str, value: Any, record: Any = None) -> None:
        for i, v in enumerate(value):
            if v is not None:
                self.check(f"{name}[{i}]", v, record)


def _max_lr_snapshot(name: str, value: Any, record: Any) -> None:
    """A peak lr: ``>= 0``, and positive with ``corrected_weight_decay`` (the decay divides by it)."""
    check_max_lr_snapshot(record.corrected_weight_decay, value)


def _nesterov(name: str, value: Any, record: Any) -> None:
    """Nesterov needs a momentum and no dampening (torch.optim.SGD's rule)."""
    if value and (record.momentum <= 0 or record.dampening != 0):
        raise ValueError(
            "Nesterov momentum requires a momentum and zero dampening "
            f"({name}=True, momentum={record.momentum!r}, dampening={record.dampening!r})")


#: torch's newer message form (``torch.optim.Adafactor``, ``Muon``): ``Range(..., message=SHOULD_BE)``
SHOULD_BE = "{label} should be {bound} but is: {value} ({name}={value!r})"
#: ``lr >= 0``
LR = Range(ge=0.0, label="learning rate")
#: ``eps >= 0``
EPS = Range(ge=0.0, label="epsilon value")
#: ``>= 0``, the message naming the field (``weight_decay``, ``momentum``, ...)
NONNEG = Range(ge=0.0)
#: two coefficients in ``[0, 1)``
BETAS = Betas(2)
#: ``>= 0``, and positive when ``corrected_weight_decay`` (the record's field) is set
MAX_LR_SNAPSHOT: Check = _max_lr_snapshot
#: ``nesterov=True`` needs ``momentum > 0`` and ``dampening == 0`` (the record's fields)
NESTEROV: Check = _nesterov
#: torch.optim.Adam's checks in its order (lr, eps, betas, weight_decay), shared by the Adam-like records
ADAM_CHECKS: Mapping[str, Check] = MappingProxyType({"lr": LR, "eps": EPS, "betas": BETAS, "weight_decay": NONNEG})


# The same checks as functions (kept for records written before the declarative ``checks``).

def check_finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"Invalid {name} value: {value} ({name} must be finite)")


def check_lr(lr: float) -> None:
    LR("lr", lr)


def check_eps(eps: float, name: str = "eps") -> None:
    EPS(name, eps)


def check_weight_decay(wd: float) -> None:
    NONNEG("weight_decay", wd)


def check_momentum(momentum: float) -> None:
    NONNEG("momentum", momentum)


def check_betas(betas: tuple[float, ...], n: int = 2, name: str = "betas") -> None:
    Betas(n)(name, betas)


def check_max_lr_snapshot(corrected: bool, max_lr: float | None) -> None:
    if corrected and max_lr is not None and not max_lr > 0.0:
        raise ValueError(
            f"Corrected weight decay requires a positive max lr, got {max_lr} (max_lr_snapshot={max_lr!r}); "
            "construct the optimizer with the peak lr")
    if max_lr is not None and not max_lr >= 0.0:  # unused without corrected_weight_decay, still an lr
        raise ValueError(f"Invalid max_lr_snapshot value: {max_lr} (max_lr_snapshot={max_lr!r} must be >= 0)")
