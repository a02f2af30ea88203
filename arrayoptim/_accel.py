"""The one seam for accelerated kernels: ``(reference kernel, namespace predicate) -> faster kernel``.

The step driver (:meth:`arrayoptim.Optimizer.step`, and :func:`arrayoptim.flat`) asks :func:`select` once per step
for the kernel to run on the step's namespace ``xp``. Without a registered, enabled accelerator for that kernel and
namespace, the answer is the reference kernel itself, so correctness never depends on this module.

An accelerated kernel has the reference signature ``kernel(xp, p, g, s, hp, ctx) -> p`` and the same contract
(claimed ``p`` and slots updated in place, grads never written, new slots stored into ``s``). It may handle only the
common configurations and call the reference kernel for the rest. Each one is tested for parity with its reference
kernel (``tests/test_accel.py``).

Accelerators (``name``: what, when it applies):

``numpy`` (on by default)
    NumPy ``ufunc(..., out=)`` chains over cache-sized chunks with one reused scratch buffer
    (:mod:`arrayoptim._accel_numpy`): AdamW/Adam, SGD/SGDW and Lion on NumPy arrays.
``numba`` (opt in; needs the optional ``numba`` package, the ``accel`` extra)
    One fused single-threaded loop per array (:mod:`arrayoptim._accel_numba`): AdamW/Adam, SGD/SGDW, Lion.
    Compiled on first use (about a second per kernel and dtype).

Choose with :func:`use` (``use('numba', 'numpy')``: numba first, then numpy; ``use()``: reference kernels only) or
the environment variable ``ARRAYOPTIM_ACCEL`` read at import (comma-separated names; ``none`` for none).

Examples
--------
>>> from arrayoptim import _accel
>>> _accel.enabled()
('numpy',)
>>> previous = _accel.use()          # reference kernels only
>>> _accel.use(*previous)
()
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
from typing import Any, Callable, Iterator

__all__ = ["register", "select", "use", "enabled", "available", "using", "ACCELERATORS", "ENV_VAR"]

ENV_VAR = "ARRAYOPTIM_ACCEL"

#: accelerator name -> (module that registers its kernels, package it needs)
ACCELERATORS: dict[str, tuple[str, str]] = {
    "numba": ("arrayoptim._accel_numba", "numba"),
    "numpy": ("arrayoptim._accel_numpy", "numpy"),
}

# reference kernel -> [(accelerator name, predicate(xp) -> bool, fast kernel)]
_TABLE: dict[Callable[..., Any], list[tuple[str, Callable[[Any], bool], Callable[..., Any]]]] = {}
_loaded: set[str] = set()


def _from_env() -> tuple[str, ...]:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return ("numpy",)
    names = tuple(n.strip().lower() for n in raw.split(",") if n.strip() and n.strip().lower() != "none")
    unknown = [n for n in names if n not in ACCELERATORS]
    if unknown:
        raise ValueError(f"{ENV_VAR}={raw!r} names unknown accelerators {unknown} (known: {sorted(ACCELERATORS)})")
    return names


_enabled: tuple[str, ...] = _from_env()


def register(kernel: Callable[..., Any], name: str, predicate: Callable[[Any], bool],
             fast: Callable[..., Any]) -> None:
    """Register ``fast`` as accelerator ``name``'s replacement for ``kernel`` on namespaces where ``predicate``."""
    if name not in ACCELERATORS:
        raise ValueError(f"unknown accelerator name {name!r} (known: {sorted(ACCELERATORS)})")
    _TABLE.setdefault(kernel, []).append((name, predicate, fast))


def available(name: str) -> bool:
    """Whether accelerator ``name``'s package is installed."""
    if name not in ACCELERATORS:
        raise ValueError(f"unknown accelerator name {name!r} (known: {sorted(ACCELERATORS)})")
    return importlib.util.find_spec(ACCELERATORS[name][1]) is not None


def _load(name: str) -> None:
    if name not in _loaded:
        _loaded.add(name)
        importlib.import_module(ACCELERATORS[name][0])


def enabled() -> tuple[str, ...]:
    """The enabled accelerators, in order of preference."""
    return _enabled


def use(*names: str) -> tuple[str, ...]:
    """Enable exactly ``names`` (in order of preference; none: reference kernels only); returns the previous ones.

    A name whose package is not installed raises ``ImportError`` here, not at the first step.
    """
    global _enabled
    for n in names:
        if n not in _loaded and not available(n):
            raise ImportError(f"accelerator {n!r} needs the {ACCELERATORS[n][1]!r} package "
                              f"(pip install 'arrayoptim[accel]')")
    previous, _enabled = _enabled, tuple(names)
    return previous


@contextlib.contextmanager
def using(*names: str) -> Iterator[None]:
    """``with using('numba'):`` enable ``names`` inside the block only."""
    previous = use(*names)
    try:
        yield
    finally:
        use(*previous)


def select(kernel: Callable[..., Any], xp: Any) -> Callable[..., Any]:
    """The kernel to run on namespace ``xp``: the first enabled accelerator's, else ``kernel`` itself."""
    for name in _enabled:
        _load(name)
    for name in _enabled:
        for n, predicate, fast in _TABLE.get(kernel, ()):
            if n == name and predicate(xp):
                return fast
    return kernel
