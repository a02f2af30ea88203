"""torch tensors <-> array-API arrays through DLPack: zero-copy views where possible, a working copy otherwise.

A :class:`Binding` pairs a torch tensor with the array the functional step works on:

* **view** (``copied=False``): ``np.from_dlpack(t.detach())`` on CPU, ``cupy.from_dlpack`` on CUDA. In-place
  updates of the array are updates of the tensor; nothing is written back.
* **working copy** (``copied=True``), taken when a view is impossible or would be wrong:

  - ``bfloat16`` (NumPy has no bfloat16; CuPy's support is optional): computed in ``float32``, rounded back to
    bfloat16 by the write-back (one rounding per step, where torch rounds after every operation);
  - neg-bit views (``torch._neg_view``, ``x.conj().imag``): DLPack exports the raw memory without the sign, so
    the view would be silently negated; the copy is ``resolve_neg()``-ed and the write-back goes through
    ``Tensor.copy_``, which honours the bit;
  - a view that comes back read-only (legacy unversioned DLPack capsules): copied, written back with ``copy_``;
  - any other export failure (``BufferError``/``RuntimeError`` from the producer).

  Results travelling back to torch are made C-contiguous first: torch cannot import negative strides (and some
  versions abort the process on them).

Tensors with internal overlap (``expand``-ed params) cannot be updated element-wise; they are refused, as torch's
in-place optimizers refuse them.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Binding", "bind", "to_torch", "namespace_key", "torch_dtype_of", "stream_context"]

_NUMPY_EXPORTABLE = {torch.float16, torch.float32, torch.float64}
#: dtypes computed in float32 (and rounded back on write-back)
_UPCAST = {torch.bfloat16}


class Binding:
    """A torch tensor and the array a step works on (a view of it, or a working copy to write back)."""

    __slots__ = ("tensor", "array", "copied")

    def __init__(self, tensor: torch.Tensor, array: Any, copied: bool) -> None:
        self.tensor = tensor
        self.array = array
        self.copied = copied

    def write_back(self, result: Any) -> None:
        """Make ``tensor`` hold ``result``; a no-op when ``result`` is the zero-copy view itself."""
        if result is self.array and not self.copied:
            return
        self.tensor.copy_(to_torch(result, self.tensor.device))


def _is_cuda(t: torch.Tensor) -> bool:
    return t.device.type == "cuda"


def _export(t: torch.Tensor) -> Any:
    if _is_cuda(t):
        import cupy

        return cupy.from_dlpack(t)
    return np.from_dlpack(t)


def _copy_array(t: torch.Tensor) -> Any:
    src = t.detach().resolve_conj().resolve_neg()
    if src.dtype in _UPCAST:
        src = src.float()
    src = src.contiguous()
    if src.data_ptr() == t.data_ptr():
        src = src.clone()
    return _export(src)


def bind(t: torch.Tensor) -> Binding:
    """The array view of ``t`` (zero copy) or, where no correct view exists, a working copy to write back."""
    d = t.detach()
    if d.dtype in _NUMPY_EXPORTABLE and not d.is_neg() and not d.is_conj() and d.device.type in ("cpu", "cuda"):
        try:
            a = _export(d)
        except (BufferError, RuntimeError, TypeError):
            a = None
        if a is not None and _writeable(a):
            return Binding(t, a, False)
    return Binding(t, _copy_array(d), True)


def _writeable(a: Any) -> bool:
    flags = getattr(a, "flags", None)
    return True if flags is None or not hasattr(flags, "writeable") else bool(flags.writeable)


def to_torch(a: Any, device: torch.device | None = None) -> torch.Tensor:
    """An array (or NumPy scalar) as a torch tensor sharing its memory where possible (C-contiguous first)."""
    if isinstance(a, torch.Tensor):
        return a
    if isinstance(a, (np.generic, np.ndarray)):
        a = np.asarray(a)
        out = torch.from_numpy(a if a.flags.c_contiguous else np.array(a, order="C"))
    else:  # CuPy (or another DLPack producer)
        mod = type(a).__module__.split(".")[0]
        if mod == "cupy":
            import cupy

            a = a if a.flags.c_contiguous else cupy.array(a, order="C")
        out = torch.from_dlpack(a)
    return out if device is None else out.to(device)


def torch_dtype_of(a: Any) -> torch.dtype:
    """The torch dtype of an array's dtype (NumPy or CuPy)."""
    return torch.from_numpy(np.empty((0,), dtype=np.dtype(str(a.dtype)))).dtype


def namespace_key(t: torch.Tensor) -> tuple:
    """Tensors that can share one functional step: same array library (device type) and device index."""
    return (t.device.type, t.device.index)


class stream_context:
    """On CUDA, run CuPy work on torch's current stream of ``device``; a no-op on CPU."""

    def __init__(self, device_key: tuple) -> None:
        self.kind, self.index = device_key
        self._ctx = None

    def __enter__(self):
        if self.kind == "cuda":
            import cupy

            dev = torch.device("cuda", self.index)
            stream = torch.cuda.current_stream(dev)
            self._dev = cupy.cuda.Device(dev.index if dev.index is not None else torch.cuda.current_device())
            self._dev.__enter__()
            self._ctx = cupy.cuda.ExternalStream(stream.cuda_stream, self._dev.id)
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
            self._dev.__exit__(*exc)
        return False
