"""How a kernel runs on one param: the dtype it computes in, and the one rounding back into storage.

:func:`run_kernel` is the only place that calls an optimizer's per-array kernel (the core's loop and flat mode
both go through it), so the half-precision policy (``OptimInfo.half_compute``) is written once.

float16/bfloat16 params always compute in float32 ("opmath", as torch's and timm's CPU kernels compute every
element-wise op on half tensors in float32). What differs is where the state lives:

* ``half_compute == "float32"`` (timm's AdaBelief, Adafactor, RAdamLegacy): the state is float32 (the core's
  ``init`` makes it so) and only the param is rounded back, once per step.
* ``half_compute == "param"`` (the default: torch's Adam, SGD, ... keep each slot in the dtype it was created
  in): float32 working copies of the param, the grad, every float16/bfloat16 slot (lists of arrays item by item)
  and every float16/bfloat16 array of ``ctx`` go into the kernel (``ctx['storage_dtype']`` tells it the param's
  own dtype, for defaults that depend on it: Big Vision Adafactor's eps); afterwards the param and each such slot are
  rounded once into their claimed storage, in their own dtype (array identity kept with ``copy=False``). Slots
  that were not half (the float32 ``step``, booleans, host counters) keep what the kernel made of them; a slot
  the kernel created (SGD's lazy ``momentum_buffer``) takes the param's dtype when it is a float32 array of the
  param's shape (never the float32 `step` count, even beside a 0-d param), and is kept as made otherwise.

The anchors round after every op, this path once per slot per step: the two agree to about one rounding of the
half dtype per stored value, and where the anchor's float32 intermediates stay finite (``g * g`` for
``|g| >= 256`` in float16, folded into ``addcmul_``) so do ours. Any other param dtype runs the kernel directly.
"""
from __future__ import annotations

from typing import Any, Callable

from ._xp import assign, claim, is_half

__all__ = ["run_kernel"]


def run_kernel(kernel: Callable[..., Any], xp: Any, p: Any, g: Any, s: dict, hp: Any, ctx: Any, *,
               copy: bool | None, half_compute: str) -> Any:
    """``kernel(xp, p, g, s, hp, ctx)`` on the unclaimed param ``p`` and the claimed slot dict ``s``; returns the
    new param (claimed per ``copy``). A grad of another floating dtype is cast to the param's first. A float16 or
    bfloat16 param computes in float32 (see the module docstring)."""
    if _half_dtype(xp, p.dtype):
        if half_compute == "float32":  # the anchor's float32 state and compute, rounded into the param once
            new = kernel(xp, xp.astype(p, xp.float32), xp.astype(g, xp.float32), s, hp,
                         {**ctx, "storage_dtype": p.dtype})
            return assign(claim(xp, p, copy), xp.astype(new, p.dtype))
        return _opmath(kernel, xp, p, g, s, hp, ctx, copy)
    if g.dtype != p.dtype:
        g = xp.astype(g, p.dtype)
    return kernel(xp, claim(xp, p, copy), g, s, hp, ctx)


#: (namespace, dtype) -> whether it is float16/bfloat16 (one dict lookup per param on the fast path)
_HALF: dict[Any, bool] = {}


def _half_dtype(xp: Any, dtype: Any) -> bool:
    try:
        return _HALF[xp, dtype]
    except KeyError:
        out = _HALF[xp, dtype] = is_half(xp, dtype)
        return out
    except TypeError:  # an unhashable dtype object
        return is_half(xp, dtype)


def _is_half_array(xp: Any, v: Any) -> bool:
    dt = getattr(v, "dtype", None)
    return dt is not None and hasattr(v, "shape") and _half_dtype(xp, dt)


def _widen(xp: Any, v: Any) -> Any:
    """A float32 working copy of a half array, item by item for a list/tuple of arrays; None when nothing is half."""
    if _is_half_array(xp, v):
        return xp.astype(v, xp.float32)
    if isinstance(v, (list, tuple)) and any(_is_half_array(xp, x) for x in v):
        return type(v)(xp.astype(x, xp.float32) if _is_half_array(xp, x) else x for x in v)
    return None


def _store(xp: Any, dst: Any, v: Any) -> Any:
    """Round the kernel's float32 ``v`` once into the claimed half storage ``dst`` (its dtype, in place where the
    shape is unchanged); lists item by item."""
    if isinstance(dst, (list, tuple)):
        if isinstance(v, (list, tuple)) and len(v) == len(dst):
            return type(v)(_store(xp, d, x) if _is_half_array(xp, d) else x for d, x in zip(dst, v))
        return v
    if not hasattr(v, "dtype"):
        return v
    v = xp.astype(v, dst.dtype)
    return assign(dst, v) if tuple(v.shape) == tuple(dst.shape) else v


def _opmath(kernel: Callable[..., Any], xp: Any, p: Any, g: Any, s: dict, hp: Any, ctx: Any,
            copy: bool | None) -> Any:
    """A half param of a ``half_compute == "param"`` kernel: float32 in, each stored value rounded once."""
    f32 = xp.float32
    work, held = {}, {}
    for k, v in s.items():
        w = _widen(xp, v)
        if w is None:
            work[k] = v
        else:
            held[k], work[k] = v, w
    wide = {k: _widen(xp, v) for k, v in ctx.items()}
    ctx = {**{k: v if wide[k] is None else wide[k] for k, v in ctx.items()}, "storage_dtype": p.dtype}
    new = kernel(xp, xp.astype(p, f32), xp.astype(g, f32), work, hp, ctx)
    for k in [k for k in s if k not in work]:  # a slot the kernel dropped
        del s[k]
    for k, v in work.items():
        if k in held:
            s[k] = _store(xp, held[k], v)
        elif k in s or k == "step" or getattr(v, "dtype", None) != f32 or tuple(v.shape) != tuple(p.shape):
            s[k] = v  # not half before (float32 step, flags, host counters), or created and not param-like
        else:  # created by the kernel with the param's shape (a lazy momentum buffer): the param's dtype
            s[k] = xp.astype(v, p.dtype)
    return assign(claim(xp, p, copy), xp.astype(new, p.dtype))
