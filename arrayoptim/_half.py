"""How a kernel runs on one param: the dtype it computes in, and the one rounding back into storage.

:func:`run_kernel` is the only place that calls an optimizer's per-array kernel (the core's loop and flat mode
both go through it), so the half-precision policy (``OptimInfo.half_compute``) is written once.
"""
from __future__ import annotations

from typing import Any, Callable

from ._xp import assign, claim, is_half

__all__ = ["run_kernel"]


def run_kernel(kernel: Callable[..., Any], xp: Any, p: Any, g: Any, s: dict, hp: Any, ctx: Any, *,
               copy: bool | None, half_compute: str) -> Any:
    """``kernel(xp, p, g, s, hp, ctx)`` on the unclaimed param ``p`` and the claimed slot dict ``s``; returns the
    new param (claimed per ``copy``). A grad of another floating dtype is cast to the param's first."""
    if half_compute == "float32" and is_half(xp, p.dtype):  # the anchor's float32 compute, rounded once
        new = kernel(xp, xp.astype(p, xp.float32), xp.astype(g, xp.float32), s, hp, ctx)
        return assign(claim(xp, p, copy), xp.astype(new, p.dtype))
    if g.dtype != p.dtype:
        g = xp.astype(g, p.dtype)
    return kernel(xp, claim(xp, p, copy), g, s, hp, ctx)
