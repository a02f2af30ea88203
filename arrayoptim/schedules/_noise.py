"""timm's learning-rate noise, reproduced bit for bit without torch.

timm seeds a fresh ``torch.Generator`` with ``noise_seed + t`` and draws one value from it
(``timm/scheduler/scheduler.py``, ``Scheduler._calculate_noise``). The CPU generator of torch is a
32-bit Mersenne Twister (MT19937) seeded with ``init_genrand(seed mod 2**32)``; the draws used by
timm are produced by ATen as follows:

* ``torch.randn(1)`` (fewer than 16 elements: the serial kernel) uses
  ``at::normal_distribution<double>``: two 64-bit uniforms ``u = (hi << 32 | lo) & (2**53 - 1)) * 2**-53``
  (``hi`` is drawn first), ``r = sqrt(-2 log1p(-u2))``, ``theta = 2 pi u1``, returns ``r cos(theta)`` and
  caches ``r sin(theta)`` in the generator, which the *next* ``randn`` call returns; the value is
  then rounded to float32 (the default dtype).
* ``torch.rand(1)`` (float32) uses one 32-bit draw: ``(x & (2**24 - 1)) * 2**-24``.

The transforms were read from ATen's ``TransformationHelper.h`` / ``DistributionsHelper.h`` behaviour and
are checked against torch itself in ``tests/test_schedules_noise.py``.
"""

from __future__ import annotations

import math
import struct

__all__ = ["timm_noise", "noise_applies"]

_MASK32 = 0xFFFFFFFF
_N = 624
_M = 397


class _MT19937:
    """Minimal MT19937 (the reference ``init_genrand`` seeding), drawing lazily."""

    __slots__ = ("_mt", "_i")

    def __init__(self, seed: int) -> None:
        mt = [0] * _N
        mt[0] = seed & _MASK32
        for i in range(1, _N):
            prev = mt[i - 1]
            mt[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & _MASK32
        self._mt = mt
        self._i = _N  # force a twist on the first draw

    def _twist(self) -> None:
        mt = self._mt
        for i in range(_N):
            y = (mt[i] & 0x80000000) | (mt[(i + 1) % _N] & 0x7FFFFFFF)
            v = mt[(i + _M) % _N] ^ (y >> 1)
            if y & 1:
                v ^= 0x9908B0DF
            mt[i] = v
        self._i = 0

    def next32(self) -> int:
        if self._i >= _N:
            self._twist()
        y = self._mt[self._i]
        self._i += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        return y & _MASK32


def _to_float32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


class _TorchCPUGenerator:
    """The parts of torch's ``CPUGeneratorImpl`` that timm's noise uses."""

    __slots__ = ("_engine", "_next_normal")

    def __init__(self, seed: int) -> None:
        self._engine = _MT19937(seed & _MASK32)
        self._next_normal: float | None = None

    def _uniform53(self) -> float:
        hi = self._engine.next32()
        lo = self._engine.next32()
        return (((hi << 32) | lo) & ((1 << 53) - 1)) * 2.0**-53

    def randn1(self) -> float:
        """``torch.randn(1, generator=g).item()`` (float32 result as a Python float)."""
        if self._next_normal is not None:
            v = self._next_normal
            self._next_normal = None
            return _to_float32(v)
        u1 = self._uniform53()
        u2 = self._uniform53()
        r = math.sqrt(-2.0 * math.log1p(-u2))
        theta = 2.0 * math.pi * u1
        self._next_normal = r * math.sin(theta)
        return _to_float32(r * math.cos(theta))

    def rand1(self) -> float:
        """``torch.rand(1, generator=g).item()`` (float32)."""
        return (self._engine.next32() & ((1 << 24) - 1)) * 2.0**-24


def noise_applies(t: int, noise_range_t) -> bool:
    """timm's ``Scheduler._is_apply_noise``: ``lo <= t < hi`` for a pair, ``t >= n`` for a scalar."""
    if noise_range_t is None:
        return False
    if isinstance(noise_range_t, (list, tuple)):
        return noise_range_t[0] <= t < noise_range_t[1]
    return t >= noise_range_t


def timm_noise(t: int, noise_seed: int, noise_pct: float, noise_std: float, noise_type: str = "normal") -> float:
    r"""The multiplicative noise timm applies at step ``t`` (``lr = v + v * n``).

    ``'normal'``: draws :math:`n = \mathrm{randn} \cdot \mathrm{noise\_std}` from a generator seeded with
    ``noise_seed + t`` until :math:`|n| < \mathrm{noise\_pct}`; any other type:
    :math:`n = 2(\mathrm{rand} - 0.5)\,\mathrm{noise\_pct}`.

    Examples
    --------
    >>> round(timm_noise(5, 42, 0.67, 1.0), 6)
    0.575679
    """
    g = _TorchCPUGenerator(noise_seed + t)
    if noise_type == "normal":
        for _ in range(100_000):
            n = g.randn1() * noise_std
            if abs(n) < noise_pct:
                return n
        raise ValueError(
            f"noise_pct={noise_pct!r} with noise_std={noise_std!r}: no draw with |noise| < noise_pct in 100000 tries"
        )
    return 2 * (g.rand1() - 0.5) * noise_pct
