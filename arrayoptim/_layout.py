"""The slots a param's state must hold, decided once per layout and checked before a step writes anything.

A *layout* is what the state of one param looks like for an optimizer: which slots exist, and for each one whether
it is an array (its shape and dtype), a list of arrays (Kron's factors) or a Python number (a host counter). It
depends only on the param's shape and dtype and on the *structure* of its hyperparameter record (booleans, ints,
strings, ``None`` and which floats are zero: ``amsgrad=True`` adds a slot, ``lr=3e-4`` does not). It is found by
running the optimizer's own ``init`` on the param once and cached under that key, so a step pays one dict lookup
per param plus a comparison per slot, and a record changed by a per-step ``lr`` override keeps its layout.

Slots a kernel creates lazily at a param's first step, as torch does (SGD's ``momentum_buffer``, Adahessian's
moments), are the ``param_slots`` that ``init`` did not create and ``step``: optional, and checked when present.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from array_api_compat import device as _device

from ._registry import LOOKAHEAD_PREFIX as WRAPPER_PREFIX  # a wrapper's slots (Lookahead's): the wrapper checks them
from ._xp import _kind, is_half, step_dtype

__all__ = ["Slot", "Layout", "describe", "structure_key", "check_slot"]


@dataclasses.dataclass(frozen=True)
class Slot:
    """What one slot holds: ``kind`` is ``'array'`` (``shape``, ``dtype``), ``'list'`` (``items``: a Slot each) or
    ``'number'`` (``pytype``: bool, int or float)."""

    kind: str
    shape: tuple[int, ...] = ()
    dtype: Any = None
    pytype: type | None = None
    items: tuple["Slot", ...] = ()

    def __str__(self) -> str:
        if self.kind == "array":
            return f"an array of shape {self.shape} and dtype {self.dtype}"
        if self.kind == "list":
            return f"a list of {len(self.items)} arrays"
        return f"a Python {self.pytype.__name__}" if self.pytype else "None"


def describe(v: Any) -> Slot:
    """The :class:`Slot` a value is (used on the slots ``init`` makes)."""
    if isinstance(v, (list, tuple)):
        return Slot("list", items=tuple(describe(i) for i in v))
    if _kind(v).ns is not None:
        return Slot("array", tuple(v.shape), v.dtype)
    if v is None:
        return Slot("number")
    return Slot("number", pytype=bool if isinstance(v, bool) else int if isinstance(v, int) else float)


def _skey(v: Any) -> Any:
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, float):
        return v == 0.0
    if isinstance(v, (tuple, list)):
        return tuple(_skey(i) for i in v)
    return type(v).__name__  # a traced scalar (jax.jit) or another object: not structural


def structure_key(record: Any) -> tuple:
    """The part of a hyperparameter record that can change a layout (see the module docstring)."""
    return tuple(_skey(getattr(record, f)) for f in record.field_names())


@dataclasses.dataclass(frozen=True)
class Layout:
    """The slots a param's state holds: ``required`` ones (made by ``init``) and ``optional`` ones (made lazily)."""

    required: Mapping[str, Slot]
    optional: Mapping[str, Slot]

    @classmethod
    def probe(cls, info: Any, xp: Any, p: Any, initial: Mapping[str, Any]) -> "Layout":
        """The layout of ``p`` given the slots ``init`` made for it (``initial``)."""
        required = {k: describe(v) for k, v in initial.items()}
        q = xp.float32 if info.half_compute == "float32" and is_half(xp, p.dtype) else p.dtype
        optional = {k: Slot("array", tuple(p.shape), q) for k in info.param_slots if k not in required}
        if "step" not in required:
            optional["step"] = Slot("array", (), step_dtype(xp, xp.zeros((), dtype=q)))
        return cls(required, optional)

    def check(self, where: str, p: Any, slots: Mapping[str, Any], optimizer: str) -> None:
        """Raise ``ValueError``/``TypeError`` naming ``where`` (``"state['w']"``) and the slot unless ``slots``
        matches this layout for the param ``p``."""
        missing = [k for k in self.required if k not in slots]
        foreign = [k for k in slots if k not in self.required and k not in self.optional
                   and not k.startswith(WRAPPER_PREFIX)]
        if missing or foreign:
            parts = ([f"lacks {missing}"] if missing else []) + ([f"has slots {optimizer} does not keep: {foreign}"]
                                                                  if foreign else [])
            raise ValueError(f"{where} {' and '.join(parts)} ({optimizer} keeps {sorted(self.required)}"
                             f"{' and optionally ' + str(sorted(self.optional)) if self.optional else ''} for this "
                             "param and these hyperparameters): this state does not belong to this optimizer")
        for k, v in slots.items():
            want = self.required.get(k) or self.optional.get(k)
            if want is not None:
                check_slot(f"{where}[{k!r}]", v, want, p)
        t = slots.get("step")
        if t is not None and _kind(t).numpy and t.shape == () and not 0 <= float(t) < math.inf:
            # a host counter is read for free (other libraries: the value stays on its device, unchecked here)
            raise ValueError(f"{where}['step'] is a step count and must be finite and >= 0, got {float(t)!r}")


def check_slot(where: str, v: Any, want: Slot, p: Any) -> None:
    if want.kind == "array":
        kv = _kind(v)
        if kv.ns is None:
            raise TypeError(f"{where} must be {want}, got {type(v).__name__} {v!r:.80}")
        kp = _kind(p)
        if kv.ns is not kp.ns:
            raise ValueError(f"{where} is a {type(v).__module__}.{type(v).__name__}, its param a "
                             f"{type(p).__module__}.{type(p).__name__}: this state does not belong to these params")
        if tuple(v.shape) != want.shape or v.dtype != want.dtype:
            raise ValueError(f"{where} has shape {tuple(v.shape)} and dtype {v.dtype}, expected {want.shape} and "
                             f"{want.dtype}: this state does not belong to these params")
        if not (kv.numpy and kp.numpy) and not _same_device(v, p):
            raise ValueError(f"{where} is on device {_device(v)}, its param on {_device(p)}")
    elif want.kind == "list":
        if not isinstance(v, (list, tuple)) or len(v) != len(want.items):
            raise ValueError(f"{where} must be {want}, got {type(v).__name__}"
                             f"{' of length ' + str(len(v)) if isinstance(v, (list, tuple)) else ''}")
        for i, (item, spec) in enumerate(zip(v, want.items)):
            check_slot(f"{where}[{i}]", item, spec, p)
    elif want.pytype is None:
        if v is not None:
            raise TypeError(f"{where} must be None, got {v!r:.80}")
    elif _kind(v).ns is not None and v.ndim == 0 and _kind(v).ns.isdtype(
            v.dtype, "bool" if want.pytype is bool else ("integral", "real floating")):
        pass  # a host number carried as a 0-d array (a jax.jit argument, a loaded checkpoint)
    else:
        t = want.pytype
        ok = isinstance(v, bool) if t is bool else (
            isinstance(v, int) and not isinstance(v, bool) if t is int else
            isinstance(v, (int, float)) and not isinstance(v, bool))
        if not ok:
            raise TypeError(f"{where} must be {want}, got {type(v).__name__} {v!r:.80}")
        if t is int and v < 0:
            raise ValueError(f"{where} is a counter and must be >= 0, got {v!r}")
        if t is float and not math.isfinite(v):
            raise ValueError(f"{where} must be finite, got {v!r}")


def _same_device(a: Any, b: Any) -> bool:
    try:
        return _device(a) == _device(b)
    except Exception:  # tracers without a concrete device: nothing to compare
        return True
