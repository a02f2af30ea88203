"""Comparison of ours against the oracle's: the relative difference (see :mod:`arrayoptim.testing`) of arrays,
numbers and nested slot dicts, and where the worst element is."""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


#: Default tolerance per dtype name (one step, after a re-sync, relative to ``max(1, max|oracle|)``).
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-5}


def _is_torch_tensor(v: Any) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def to_numpy(v: Any) -> Any:
    """A NumPy copy of a torch tensor (bfloat16 widened exactly to float32); anything else unchanged."""
    if _is_torch_tensor(v):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen exactly
            v = v.float()
        return v.numpy().copy()
    return v


# ------------------------------------------------------------------------------------------------ comparison

def rel_diff(ours: Any, theirs: Any) -> tuple[float, str | None]:
    """The relative difference of ``ours`` against the oracle's ``theirs`` (see the module docstring).

    Returns
    -------
    (float, str or None)
        The difference, and a description when the two differ in structure (shape, length, type, value of a
        non-number), in which case the difference is ``inf``.
    """
    theirs = to_numpy(theirs)
    ours = to_numpy(ours)
    if isinstance(theirs, np.ndarray) or isinstance(ours, np.ndarray):
        o, r = np.asarray(ours), np.asarray(theirs)
        if o.shape != r.shape:
            return math.inf, f"shape {o.shape} != oracle {r.shape}"
        if r.size == 0:
            return 0.0, None
        o = o.astype(np.float64) if o.dtype.kind in "biuf" else o
        r = r.astype(np.float64) if r.dtype.kind in "biuf" else r
        finite_r = r[np.isfinite(r)]
        scale = max(1.0, float(np.max(np.abs(finite_r)))) if finite_r.size else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(o - r) / (scale + np.abs(r))
        same = (o == r) | (np.isnan(o) & np.isnan(r))
        err = np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))
        return float(np.max(err)), None
    if isinstance(theirs, numbers.Number) and not isinstance(theirs, bool):
        try:
            o = float(ours)
        except (TypeError, ValueError):
            return math.inf, f"{ours!r} != oracle {theirs!r}"
        if o == theirs or (math.isnan(o) and math.isnan(theirs)):
            return 0.0, None
        d = abs(o - theirs) / max(1.0, abs(theirs))
        return (math.inf if math.isnan(d) else d), None
    if isinstance(theirs, (list, tuple)):
        if not isinstance(ours, (list, tuple)) or len(ours) != len(theirs):
            return math.inf, f"{ours!r} != oracle {theirs!r} (length)"
        worst, why = 0.0, None
        for i, (a, b) in enumerate(zip(ours, theirs)):
            d, w = rel_diff(a, b)
            if w is not None and why is None:
                why = f"[{i}]: {w}"
            worst = max(worst, d)
        return worst, why
    if ours == theirs:
        return 0.0, None
    return math.inf, f"{ours!r} != oracle {theirs!r}"


def assert_close(ours: Any, theirs: Any, rtol: float, what: str) -> None:
    """Assert ``rel_diff(ours, theirs) <= rtol``; the message starts with ``what``.

    Raises
    ------
    AssertionError
        With the difference (or the structural mismatch) and the tolerance.
    """
    d, why = rel_diff(ours, theirs)
    if why is not None:
        raise AssertionError(f"{what}: {why}")
    if not d <= rtol:
        raise AssertionError(f"{what}: relative difference {d:.3g} > rtol {rtol:g}{_where_worst(ours, theirs)}")


def _where_worst(ours: Any, theirs: Any) -> str:
    o, r = np.asarray(to_numpy(ours)), np.asarray(to_numpy(theirs))
    if o.shape != r.shape or o.dtype.kind not in "biuf" or r.dtype.kind not in "biuf" or o.size == 0:
        return ""
    with np.errstate(invalid="ignore"):
        diff = np.abs(o.astype(np.float64) - r.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    i = np.unravel_index(int(np.argmax(diff)), o.shape) if o.ndim else ()
    return f" (at index {tuple(int(k) for k in i)}: ours {o[i]!r}, oracle {r[i]!r})"
