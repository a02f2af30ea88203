"""Small array-API helpers shared by kernels. Standard functions only: no NumPy, torch or CuPy imports.

Conventions kernels follow (see ARCHITECTURE.md):

* Scalars enter as Python floats. A scalar that has to be an array (a bias correction computed from the ``step``
  slot) is cast to the param's dtype before it meets a param-sized array, so float32 stays float32 everywhere.
* Outputs are claimed by the driver before the kernel runs, so kernels update them with augmented operators
  (in place on NumPy/CuPy/torch/array-api-strict, rebinding on JAX) and store them back into the slot dict.
* No ``float(x)``, ``bool(x)`` or ``if x > 0`` on array values: no host syncs, and the step traces under jax.jit.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from array_api_compat import array_namespace, is_array_api_obj, is_jax_array, is_writeable_array
from array_api_compat import device as _device

__all__ = ["claim", "lerp", "lerp_", "l2_norm", "zeros_like", "step_dtype", "new_step", "increment_step", "like", "assign", "caution", "decay_scale",
           "rms_clip_denom"]


def zeros_like(xp: Any, p: Any) -> Any:
    """A zero slot with ``p``'s shape, dtype and device."""
    return xp.zeros(p.shape, dtype=p.dtype, device=_device(p))


def step_dtype(xp: Any, p: Any) -> Any:
    """The dtype of the ``step`` slot: float64 for float64 params, float32 otherwise.

    This is what torch does under ``torch.set_default_dtype(torch.float64)`` (and float32 otherwise): a float32
    counter is exact up to 2**24 steps, the same limit torch has.
    """
    return xp.float64 if p.dtype == xp.float64 else xp.float32


def is_half(xp: Any, dtype: Any) -> bool:
    """Whether ``dtype`` is float16 or bfloat16 (where the namespace has them: the standard has neither)."""
    return any(h is not None and dtype == h for h in (getattr(xp, "float16", None), getattr(xp, "bfloat16", None)))


def new_step(xp: Any, p: Any) -> Any:
    """A fresh ``step`` slot: a 0-d zero on ``p``'s device."""
    return xp.zeros((), dtype=step_dtype(xp, p), device=_device(p))


def increment_step(s: dict) -> Any:
    """``s['step'] += 1`` on the claimed slot, returning the new count (an array, never a Python number)."""
    t = s["step"]
    t += 1
    s["step"] = t
    return t


def like(xp: Any, x: Any, p: Any) -> Any:
    """Cast a scalar array computed from the step (e.g. ``1 - beta1 ** t``) to ``p``'s dtype."""
    return xp.astype(x, p.dtype)


def assign(dst: Any, value: Any) -> Any:
    """Write ``value`` into the claimed array ``dst`` in place (or return ``value`` on immutable JAX arrays)."""
    if is_jax_array(dst):
        return value
    dst[...] = value
    return dst


def lerp(xp: Any, a: Any, b: Any, w: Any) -> Any:
    """torch's ``lerp(a, b, w)`` as a new array, in torch's formula: ``a + w (b - a)`` for ``w < 0.5``, else
    ``b - (b - a)(1 - w)`` (exact at ``w = 1``). ``w`` is a Python float or a 0-d array (both sides computed, picked
    by ``where``: no host sync)."""
    if isinstance(w, (int, float)):
        return a + w * (b - a) if w < 0.5 else b - (b - a) * (1 - w)
    d = b - a
    return xp.where(w < 0.5, a + w * d, b - d * (1 - w))


def lerp_(xp: Any, a: Any, b: Any, w: Any) -> Any:
    """``a <- lerp(a, b, w)`` in place on the claimed ``a`` (torch's ``a.lerp_(b, w)``), returning ``a``."""
    if isinstance(w, (int, float)) and w < 0.5:
        a += w * (b - a)
        return a
    return assign(a, lerp(xp, a, b, w))


def l2_norm(xp: Any, x: Any) -> Any:
    """The Frobenius (L2) norm of a whole array as a 0-d array of its dtype."""
    return xp.sqrt(xp.sum(x * x))


def caution(xp: Any, update: Any, g: Any, negated: bool = False) -> Any:
    """Cautious-optimizer mask (arXiv 2411.16085) as timm applies it, returning the masked update.

    ``mask = (update * g > 0)``; ``mask /= max(mean(mask), 1e-3)``; ``update * mask``. The mean is over the whole
    tensor (per parameter), with timm's fixed floor of 1e-3. ``negated``: ``g`` is the negated grad (the mask of
    ``-g``, ``update * g < 0``, without a copy of ``-g``; the product is negated exactly).
    """
    if math.prod(g.shape) == 0:  # static shape: nothing to mask (and no mean of an empty array)
        return update
    mask = xp.astype(update * g < 0 if negated else update * g > 0, g.dtype)
    mask /= xp.clip(xp.mean(mask), min=1e-3)
    mask *= update  # update * mask, in place on the mask (a product commutes exactly)
    return mask


def decay_scale(hp: Any) -> float:
    """The lr factor of decoupled weight decay: ``lr``, or ``lr**2 / max_lr_snapshot`` with timm's corrected weight
    decay (arXiv 2506.02285; ``max_lr_snapshot`` is the constructor lr), so ``p *= 1 - decay_scale(hp) * wd``."""
    return hp.lr ** 2 / hp.max_lr_snapshot if getattr(hp, "corrected_weight_decay", False) else hp.lr


def rms_clip_denom(xp: Any, denom: Any, g: Any, threshold: float) -> Any:
    """StableAdamW's update clipping (arXiv 2304.13013), per tensor: ``denom * max(1, RMS(g / denom) / threshold)``."""
    n = math.prod(g.shape)
    if n == 0:  # static shape: nothing to clip
        return denom
    q = g / denom
    rms = xp.sqrt(xp.sum(q * q)) / n ** 0.5
    return denom * xp.clip(rms / threshold, min=1.0)


# ------------------------------------------------------------------------------------------- array kinds

@dataclasses.dataclass(frozen=True)
class _Kind:
    """What validation needs to know about an array type, computed once per type (a step checks thousands of
    arrays of one or two types: asking array-api-compat about each one cost more than AdamW's arithmetic)."""

    ns: Any  # the array namespace (None: not an array)
    jax: bool  # immutable JAX array or tracer
    numpy: bool  # a NumPy ndarray: one device, writeability in its flags
    torch: bool = False  # a torch tensor: autograd and inference mode decide what can be written


_KINDS: dict[type, _Kind] = {}


def _kind(x: Any) -> _Kind:
    t = type(x)
    k = _KINDS.get(t)
    if k is None:
        if is_array_api_obj(x):
            import numpy as np

            k = _Kind(array_namespace(x), is_jax_array(x), t is np.ndarray, t.__module__.startswith("torch"))
        else:
            k = _Kind(None, False, False)
        if k.ns is None or not (k.numpy and x.dtype.kind == "V"):  # JAX's float0 grads are NumPy-typed: no cache
            _KINDS[t] = k
    return k


def _writeable(x: Any, k: _Kind) -> bool:
    """Whether ``x`` can take an in-place update: its library allows it (:func:`_unwriteable`) and no two of its
    elements share memory."""
    if k.numpy:
        if not x.flags.writeable:
            return False
    elif k.jax or _unwriteable(x):
        return False
    return not internal_overlap(x)


def claim(xp: Any, x: Any, copy: bool | None) -> Any:
    """The array a kernel may update: ``x`` itself (in place), a copy, or ``x`` when immutable (JAX rebinds).

    ``copy``: True copies, False takes ``x`` itself, None copies only what is read-only. A list or tuple of arrays
    (Kron's factors) is claimed item by item; anything else (a Python counter) is returned as it is. The driver
    has checked writeability before, so this never raises.
    """
    if isinstance(x, (list, tuple)):
        return [claim(xp, v, copy) for v in x]
    k = _kind(x)
    if k.ns is None or k.jax:
        return x
    if copy is True or (copy is None and not _writeable(x, k)):
        if k.torch and x.requires_grad:
            return x.detach().clone()  # a copy outside autograd, as torch.optim's updates are
        return xp.asarray(x, copy=True)
    return x


# ------------------------------------------------------------------------------------------- moments

def blockwise_(xp: Any, dst: Any, fn: Any, *args: Any, blocks: int = 8) -> Any:
    """``dst <- fn(dst, *args)`` for an element-wise ``fn`` of arrays shaped like the claimed ``dst``, applied to
    ``blocks`` slices along ``dst``'s largest dim, so ``fn``'s temporaries are 1/``blocks`` of the array each
    (the values are the same: ``fn`` is element-wise). JAX arrays (immutable) and small arrays go whole."""
    if is_jax_array(dst) or dst.ndim == 0 or math.prod(dst.shape) < (1 << 16):
        return assign(dst, fn(dst, *args))
    axis = max(range(dst.ndim), key=lambda i: dst.shape[i])
    n = dst.shape[axis]
    step = -(-n // blocks)
    for lo in range(0, n, step):
        idx = tuple(slice(lo, lo + step) if i == axis else slice(None) for i in range(dst.ndim))
        dst[idx] = fn(dst[idx], *(a[idx] for a in args))
    return dst


def scalar_like(xp: Any, value: float, p: Any) -> Any:
    """``value`` as a 0-d array of ``p``'s dtype on ``p``'s device (a Python float rounded the way a binary
    operator with ``p`` rounds it; no param-sized ``full_like``)."""
    return xp.asarray(value, dtype=p.dtype, device=_device(p))


def update_moments(xp: Any, s: dict, g: Any, betas: tuple[float, float]) -> tuple[Any, Any]:
    """Adam's two moments on the claimed slots, as torch and timm update them, returning ``(m, v)``:
    ``exp_avg <- lerp(exp_avg, g, 1 - beta1)`` (torch's formula, :func:`lerp_`) and
    ``exp_avg_sq <- beta2 * exp_avg_sq + (1 - beta2) * g**2``."""
    beta1, beta2 = betas
    m = lerp_(xp, s["exp_avg"], g, 1 - beta1)
    v = s["exp_avg_sq"]
    v *= beta2
    v += (1 - beta2) * (g * g)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    return m, v


def amsgrad_max(xp: Any, s: dict, key: str, v: Any) -> Any:
    """AMSGrad's running maximum on the claimed slot, ``s[key] <- max(s[key], v)``, returned (a state made without
    amsgrad lacks the slot: it starts from zeros)."""
    vmax = s.get(key)
    if vmax is None:
        vmax = xp.zeros_like(v)
    vmax = assign(vmax, xp.maximum(vmax, v))
    s[key] = vmax
    return vmax


def momentum_buffer(xp: Any, s: dict, g: Any, momentum: float, dampening: float) -> Any:
    """torch.optim.SGD's ``momentum_buffer`` on the claimed slot, returned: a copy of ``g`` at its first step, then
    ``momentum * buf + (1 - dampening) * g`` (``buf + g`` exactly when ``dampening`` is 0)."""
    buf = s.get("momentum_buffer")
    if buf is None:
        buf = xp.asarray(g, copy=True)
    else:
        buf *= momentum
        if dampening != 0:
            buf += (1 - dampening) * g
        else:
            buf += g  # torch's add(g, alpha=1): exactly g
    s["momentum_buffer"] = buf
    return buf


# ------------------------------------------------------------------------------------------- writing in place

def slot_arrays(slots: Any) -> list[tuple[str, Any]]:
    """``('[slot]', array)`` for the array slots of a slot dict, list items as ``('[slot][i]', array)``."""
    out = []
    for k, v in slots.items():
        if isinstance(v, (list, tuple)):
            out.extend((f"[{k!r}][{i}]", a) for i, a in enumerate(v) if _kind(a).ns is not None)
        elif _kind(v).ns is not None:
            out.append((f"[{k!r}]", v))
    return out


def _torch() -> Any:
    import sys

    return sys.modules.get("torch")


def _strided(x: Any) -> tuple[int, tuple[int, ...], int] | None:
    """``(address, byte strides, itemsize)`` of a strided array in host or device memory, None where the library
    does not expose it (JAX is immutable; array-api-strict hides it)."""
    k = _kind(x)
    if k.numpy:
        return x.__array_interface__["data"][0], x.strides, x.itemsize
    if k.torch:
        if x.layout is not _torch().strided:
            return None
        size = x.element_size()
        return x.data_ptr(), tuple(s * size for s in x.stride()), size
    if type(x).__module__.startswith("cupy"):
        return x.data.ptr, x.strides, x.itemsize
    return None


def internal_overlap(x: Any) -> bool:
    """Whether two elements of ``x`` may share memory (a stride-0 ``expand``/``broadcast_to`` view, an
    ``as_strided`` overlap): dims sorted by stride must each step past everything the smaller ones span."""
    shape = tuple(x.shape)
    if math.prod(shape) <= 1:
        return False
    mem = _strided(x)
    if mem is None:
        return False
    span = mem[2]
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, mem[1]) if n > 1), key=lambda d: d[1]):
        if s < span:
            return True
        span = s * (n - 1) + span
    return False


def _unwriteable(x: Any) -> str:
    """Why ``x``'s own library refuses an in-place update ('' when it allows one); see also
    :func:`internal_overlap`."""
    k = _kind(x)
    if k.jax:
        return "a JAX array is immutable"
    if k.numpy:
        return "" if x.flags.writeable else "its writeable flag is off"
    if not is_writeable_array(x):
        return "immutable"
    if k.torch and x.is_inference() and not _torch().is_inference_mode_enabled():
        return "an inference tensor outside torch.inference_mode()"
    return ""


def _extent(x: Any) -> tuple[Any, int, int] | None:
    """``(device, first byte, one past the last byte)`` of the memory ``x`` spans, None when unknown or empty."""
    mem = _strided(x)
    if mem is None or math.prod(x.shape) == 0:
        return None
    addr, strides, size = mem
    lo = addr + sum((n - 1) * s for n, s in zip(x.shape, strides) if s < 0)
    hi = addr + sum((n - 1) * s for n, s in zip(x.shape, strides) if s > 0) + size
    dev = getattr(x, "device", None)
    return (type(x).__module__.split(".")[0], str(dev) if dev is not None else ""), lo, hi


def check_aliasing(written: list[tuple[str, Any]], read: list[tuple[str, Any]]) -> None:
    """Raise ``ValueError`` when an array a step writes in place has elements that share memory (a stride-0
    view) or shares memory with another array of the step (one it writes or one it reads: a grad). Memory ranges
    are sorted once and swept; ranges that overlap are then compared exactly where NumPy can (``shares_memory``:
    interleaved views of one buffer do not alias)."""
    for what, x in written:
        if internal_overlap(x):
            raise ValueError(f"copy=False but {what} is read-only (its elements share memory: a stride-0 or "
                             "overlapping view); use copy=None or True")
    spans = []
    for i, (what, x) in enumerate(written):
        e = _extent(x)
        if e is not None:
            spans.append((e[0], e[1], e[2], True, what, x))
    if not spans:
        return
    for what, x in read:
        e = _extent(x)
        if e is not None:
            spans.append((e[0], e[1], e[2], False, what, x))
    spans.sort(key=lambda s: (s[0], s[1]))
    open_: list[tuple] = []  # spans of the current device still reaching past the current start
    for s in spans:
        open_ = [o for o in open_ if o[0] == s[0] and o[2] > s[1]]
        for o in open_:
            if (o[3] or s[3]) and _shares(o[5], s[5]):
                a, b = (o, s) if o[3] else (s, o)
                raise ValueError(f"{a[4]} shares memory with {b[4]}: a step that writes in place (copy=False) "
                                 "needs separate arrays (pass copy=True, or separate copies)")
        open_.append(s)


def _shares(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if type(a).__module__ == "numpy" and type(b).__module__ == "numpy":
        import numpy as np

        try:
            return bool(np.shares_memory(a, b, max_work=10 ** 6))
        except np.exceptions.TooHardError:
            return True
    return True  # other libraries: overlapping ranges are taken as shared
