"""Small array-API helpers shared by kernels. Standard functions only: no NumPy, torch or CuPy imports.

Conventions kernels follow (see ARCHITECTURE.md):

* Scalars enter as Python floats. A scalar that has to be an array (a bias correction computed from the ``step``
  slot) is cast to the param's dtype before it meets a param-sized array, so float32 stays float32 everywhere.
* Outputs are claimed by the driver before the kernel runs, so kernels update them with augmented operators
  (in place on NumPy/CuPy/torch/array-api-strict, rebinding on JAX) and store them back into the slot dict.
* No ``float(x)``, ``bool(x)`` or ``if x > 0`` on array values: no host syncs, and the step traces under jax.jit.
"""
from __future__ import annotations

import math
from typing import Any

from array_api_compat import device as _device
from array_api_compat import is_jax_array

__all__ = ["zeros_like", "step_dtype", "new_step", "increment_step", "like", "assign", "caution", "decay_scale",
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


def caution(xp: Any, update: Any, g: Any) -> Any:
    """Cautious-optimizer mask (arXiv 2411.16085) as timm applies it, returning the masked update.

    ``mask = (update * g > 0)``; ``mask /= max(mean(mask), 1e-3)``; ``update * mask``. The mean is over the whole
    tensor (per parameter), with timm's fixed floor of 1e-3.
    """
    if math.prod(g.shape) == 0:  # static shape: nothing to mask (and no mean of an empty array)
        return update
    mask = xp.astype(update * g > 0, g.dtype)
    mask /= xp.clip(xp.mean(mask), min=1e-3)
    return update * mask


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
