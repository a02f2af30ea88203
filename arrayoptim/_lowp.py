r"""Low-precision storage emulated with standard array-API arithmetic.

timm and torch keep some buffers in bfloat16 or float16 (Big Vision Adafactor's momentum, Muon's Newton-Schulz
iterate). NumPy has no bfloat16 and the array API standard has neither type, so arrayoptim keeps such values in
the param dtype and rounds them to the narrow format wherever torch would store them: the values are the ones
torch holds, the memory is not saved.

torch converts float64 to bfloat16/float16 through float32 (``c10::BFloat16`` and ``c10::Half`` are built from a
``float``), so :func:`round_to` rounds twice, as torch does; on 2M random float64 values the direct rounding
differs from torch on 19.
"""
from __future__ import annotations

import struct
from typing import Any

from array_api_compat import device as _device

__all__ = ["LOWP_DTYPES", "round_to_bfloat16", "round_to_float16", "round_to", "float32_scalar", "has_float64", "lowp_lerp"]

#: Storage formats :func:`round_to` emulates: significand bits (with the implicit one), smallest normal exponent,
#: largest finite value.
LOWP_DTYPES = {
    "bfloat16": (8, -126, float.fromhex("0x1.fep127")),
    "float16": (11, -14, 65504.0),
    "float32": (24, -126, float.fromhex("0x1.fffffep127")),
}


def _round_binary(xp: Any, x: Any, bits: int, emin: int, max_finite: float) -> Any:
    """Round to the nearest value with ``bits`` significant bits and exponent >= ``emin`` (subnormals below),
    ties to even; values that round past ``max_finite`` become infinite. Keeps ``x``'s dtype.

    A finite nonzero ``x`` with :math:`2^e \\le |x| < 2^{e+1}` rounds to a multiple of
    :math:`2^{\\max(e, e_{min}) - bits + 1}`, which ``xp.round`` (half to even) gives exactly after an exact
    power-of-two division. Zeros, infinities and NaN pass through.
    """
    ax = xp.abs(x)
    finite = xp.isfinite(x) & (ax > 0)
    safe = xp.where(finite, ax, xp.ones_like(ax))
    e = xp.floor(xp.log2(safe))
    two = xp.asarray(2.0, dtype=x.dtype, device=_device(x))
    e = xp.where(xp.pow(two, e) > safe, e - 1, e)  # log2 may be one off next to powers of two
    e = xp.where(xp.pow(two, e + 1) <= safe, e + 1, e)
    quantum = xp.pow(two, xp.clip(e, min=float(emin)) - (bits - 1))
    r = xp.round(xp.where(finite, x, xp.zeros_like(x)) / quantum) * quantum
    inf = xp.asarray(float("inf"), dtype=x.dtype, device=_device(x))
    r = xp.where(r > max_finite, inf, xp.where(r < -max_finite, -inf, r))
    return xp.where(finite, r, x)


def round_to_bfloat16(xp: Any, x: Any) -> Any:
    r"""Round a float32/float64 array to the nearest bfloat16 value (ties to even, overflow to inf), keeping its
    dtype. bfloat16 has float32's exponent range and 8 significant bits. (The array API standard has no bit
    casts, so this is arithmetic, not integer bit twiddling.) Rounds once: see :func:`round_to` for torch's
    float64 conversion."""
    return _round_binary(xp, x, *LOWP_DTYPES["bfloat16"])


def round_to_float16(xp: Any, x: Any) -> Any:
    """Round a float32/float64 array to the nearest IEEE float16 value (11 significant bits, subnormals below
    2**-14, overflow past 65504 to inf), keeping its dtype."""
    return _round_binary(xp, x, *LOWP_DTYPES["float16"])


def round_to(xp: Any, x: Any, name: str) -> Any:
    """``x.to(name).to(x.dtype)`` as torch computes it, for ``name`` in :data:`LOWP_DTYPES`: a float64 ``x`` is
    rounded to float32 first (torch's double-to-half conversions go through ``float``)."""
    if name == "float32" or x.dtype == xp.float64:
        x = xp.astype(xp.astype(x, xp.float32), x.dtype)
    if name == "float32":
        return x
    return _round_binary(xp, x, *LOWP_DTYPES[name])


def float32_scalar(w: float) -> float:
    """A Python float rounded to float32 (as torch's CPU kernels convert a Python scalar weight)."""
    return struct.unpack("f", struct.pack("f", float(w)))[0]


def has_float64(xp: Any) -> bool:
    """Whether ``xp`` computes in float64 (JAX does not unless ``jax_enable_x64`` is set: its ``astype`` to
    float64 then warns and gives float32)."""
    try:
        return "float64" in xp.__array_namespace_info__().dtypes(kind="real floating")
    except (AttributeError, TypeError):  # a namespace from before the inspection API
        return hasattr(xp, "float64")


def lowp_lerp(xp: Any, a: Any, b: Any, w: float, name: str) -> Any:
    r"""torch's ``a.lerp_(b.to(name), w)`` on a tensor ``a`` stored in ``name`` (values held in ``a``'s dtype,
    already representable in ``name``), returning the new values in ``a``'s dtype (a new array).

    torch's CPU kernel computes in float32 with one fused multiply-add: for :math:`w < 0.5`,
    :math:`\mathrm{fma}(w, b - a, a)`, else :math:`\mathrm{fma}(w - 1, b - a, b)`, with :math:`w` and
    :math:`b - a` rounded to float32, then stores the result in ``name``. Here the product of two float32 numbers
    is exact in float64 and the sum is rounded once in float64, then to float32, then to ``name``; on float64 (or
    float32 params where the namespace has float64) this reproduced torch on 2M random values per formula branch
    with no mismatch. Where float64 is missing the arithmetic is float32 (no fused multiply-add).
    """
    wide = xp.float64 if has_float64(xp) else a.dtype
    b = round_to(xp, b, name)
    a64, b64 = xp.astype(a, wide), xp.astype(b, wide)
    diff = xp.astype(xp.astype(b64 - a64, xp.float32), wide)
    w32 = float32_scalar(w)
    if w32 < 0.5:
        r = a64 + w32 * diff
    else:
        r = b64 + float32_scalar(w32 - 1.0) * diff
    return round_to(xp, xp.astype(xp.astype(r, xp.float32), a.dtype), name)
