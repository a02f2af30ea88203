"""Public helpers for writing a kernel (``kernel(xp, p, g, s, hp, ctx) -> p``) or a whole-step function.

Everything here is written against the array API (``xp`` is the namespace the driver resolved) and follows the
kernel rules of ARCHITECTURE.md: scalars enter as Python floats, step-derived scalars are cast to the param's
dtype with :func:`like` before they meet param-sized arrays, claimed arrays are updated with augmented operators
or :func:`assign`, and nothing reads an array's value on the host.

========================  =======================================================================================
``zeros_like``            a zero slot with the param's shape, dtype and device
``new_step``              a fresh 0-d ``step`` slot (float64 for float64 params, float32 otherwise, as torch)
``increment_step``        ``s['step'] += 1`` on the claimed slot, returning the new count
``step_dtype``            the ``step`` slot's dtype for a param
``like``                  cast a step-derived 0-d array (``1 - beta ** t``) to the param's dtype
``assign``                write into a claimed array in place (rebind on immutable JAX arrays)
``claim``                 the array a whole-step function may update, by ``copy=`` (per-array kernels get theirs
                          claimed by the driver)
``lerp``, ``lerp_``       torch's ``lerp`` formula (switching at ``w = 0.5``), new array / in place
``l2_norm``               the Frobenius norm of a whole array, 0-d
``caution``               timm's cautious-update mask (arXiv 2411.16085)
``decay_scale``           the lr factor of decoupled weight decay, with timm's corrected decay (``lr**2/max_lr``)
``rms_clip_denom``        StableAdamW's per-tensor update clipping (arXiv 2304.13013)
``update_moments``        Adam's moments: ``exp_avg`` by torch's lerp, ``exp_avg_sq`` as an EMA of ``g * g``
``amsgrad_max``           AMSGrad's running max into its slot
``momentum_buffer``       torch SGD's momentum buffer (created as ``g`` at the first step, then ``mu b + (1 - d) g``)
``is_half``               whether a dtype is float16 or bfloat16
========================  =======================================================================================
"""
from ._xp import (amsgrad_max, assign, caution, claim, decay_scale, increment_step, is_half, l2_norm, lerp, lerp_, like,
                  momentum_buffer, new_step, rms_clip_denom, step_dtype, update_moments, zeros_like)

__all__ = ["amsgrad_max", "assign", "caution", "claim", "decay_scale", "increment_step", "is_half", "l2_norm", "lerp",
           "lerp_", "like", "momentum_buffer", "new_step", "rms_clip_denom", "step_dtype", "update_moments",
           "zeros_like"]
