"""Every array backend arrayoptim runs on, declared once, as data (installed as ``arrayoptim.backends``).

Used by the tests, the benchmarks and the notebooks. A backend says how to make its arrays from NumPy, how to read
them back, which device it puts them on, whether they are writeable, whether it has float64, how to synchronize,
and whether it is available here. Missing backends are skipped, never failed.

Select a subset with the environment variable ``ARRAYOPTIM_BACKENDS`` (comma-separated names, validated against
:data:`BACKENDS`), e.g. ``ARRAYOPTIM_BACKENDS=numpy,array_api_strict pytest``.

Two adversarial CPU backends always run: ``array_api_strict`` (on its default device and on its second, fake
``device1``: catches NumPy-only idioms and missing ``device=`` arguments) and ``numpy_readonly`` (read-only arrays:
exercises the copying path and proves grads are never written).
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
from typing import Any, Callable

import numpy as np

__all__ = ["Backend", "BACKENDS", "selected_backends", "get_backend", "ENV_VAR"]

ENV_VAR = "ARRAYOPTIM_BACKENDS"


@dataclasses.dataclass(frozen=True)
class Backend:
    """One array backend.

    Attributes
    ----------
    name
        Identifier used in test ids and ``ARRAYOPTIM_BACKENDS``.
    module
        The import that must succeed for the backend to be available.
    make
        ``make(np_array) -> array`` on this backend (``dtype`` preserved).
    to_numpy
        ``to_numpy(array) -> np.ndarray`` (a host copy).
    device
        A description of where arrays live (for humans and reports).
    writeable
        Whether its arrays can be updated in place (``copy=False`` works).
    float64
        Whether float64 arrays are supported.
    jit
        Whether a step should be run under the library's compiler (JAX: ``jax.jit``).
    synchronize
        Blocks until queued device work is done (no-op on CPU libraries).
    needs_cuda
        Available only where a CUDA device is present.
    """

    name: str
    module: str
    make: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    device: str
    writeable: bool = True
    float64: bool = True
    jit: bool = False
    synchronize: Callable[[], None] = lambda: None
    needs_cuda: bool = False

    def available(self) -> bool:
        if importlib.util.find_spec(self.module) is None:
            return False
        if self.needs_cuda:
            try:
                import cupy

                return cupy.cuda.runtime.getDeviceCount() > 0
            except Exception:
                return False
        return True

    def run_step(self, opt: Any, params: Any, grads: Any, state: Any, **kwargs: Any) -> Any:
        """``opt.step(params, grads, state, **kwargs)``, compiled where the backend compiles."""
        if self.jit and getattr(getattr(opt, "info", None), "traceable", True):
            import jax

            fn = jax.jit(lambda p, g, s: opt.step(p, g, s, **kwargs))
            return fn(params, grads, state)
        return opt.step(params, grads, state, **kwargs)


def _readonly(x: np.ndarray) -> np.ndarray:
    x = np.array(x, copy=True)
    x.flags.writeable = False
    return x


def _strict(device: str | None) -> Callable[[np.ndarray], Any]:
    def make(x: np.ndarray) -> Any:
        import array_api_strict as xp

        dev = xp.Device(device) if device else None
        return xp.asarray(np.array(x, copy=True), device=dev)

    return make


def _strict_to_numpy(x: Any) -> np.ndarray:
    import array_api_strict as xp

    return np.array(x.to_device(xp.Device("CPU_DEVICE")), copy=True)


def _torch_make(x: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(x, copy=True))


def _jax_make(x: np.ndarray) -> Any:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp.asarray(x)


def _cupy_make(x: np.ndarray) -> Any:
    import cupy

    return cupy.asarray(x)


def _cupy_to_numpy(x: Any) -> np.ndarray:
    return x.get()


def _cupy_sync() -> None:
    import cupy

    cupy.cuda.get_current_stream().synchronize()


BACKENDS: dict[str, Backend] = {b.name: b for b in [
    Backend("numpy", "numpy", lambda x: np.array(x, copy=True), np.asarray, "cpu"),
    Backend("numpy_readonly", "numpy", _readonly, np.asarray, "cpu", writeable=False),
    Backend("array_api_strict", "array_api_strict", _strict(None), _strict_to_numpy, "CPU_DEVICE"),
    Backend("array_api_strict_device1", "array_api_strict", _strict("device1"), _strict_to_numpy, "device1"),
    Backend("torch", "torch", _torch_make, lambda t: t.detach().cpu().numpy(), "cpu"),
    Backend("jax", "jax", _jax_make, np.asarray, "cpu", writeable=False, jit=True),
    Backend("cupy", "cupy", _cupy_make, _cupy_to_numpy, "cuda:0", synchronize=_cupy_sync, needs_cuda=True),
]}


def selected_backends() -> list[Backend]:
    """The backends named by ``ARRAYOPTIM_BACKENDS`` (all declared ones if unset), available or not."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return list(BACKENDS.values())
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise ValueError(f"{ENV_VAR} names unknown backends {unknown}; known: {sorted(BACKENDS)}")
    return [BACKENDS[n] for n in names]


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; known: {sorted(BACKENDS)}") from None
