"""numba accelerator (optional extra ``accel``): one fused loop per array, each array read and written once.

Opt in with ``arrayoptim._accel.use('numba', 'numpy')`` or ``ARRAYOPTIM_ACCEL=numba,numpy``. The loops do the
reference kernels' operations in the same order and dtype, without ``fastmath`` (no reassociation, no FMA
contraction), so results match the reference kernels bitwise on NumPy (``tests/test_accel.py``). Single-threaded;
``numba`` is imported and the loops compiled at their first use (about a second per kernel and dtype), so importing
this module needs no numba. Configurations not handled (AMSGrad, cautious variants, SGD's first step,
non-contiguous or non-ndarray inputs) run the NumPy accelerator's or the reference kernel.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from array_api_compat import is_numpy_namespace

from . import _accel
from ._accel_numpy import adam_numpy, lion_numpy, sgd_numpy
from ._xp import increment_step, like
from .optimizers.adam import adam_kernel
from .optimizers.lion import lion_kernel
from .optimizers.sgd import SGDWHyperparams, sgd_kernel

__all__ = ["adam_numba", "sgd_numba", "lion_numba"]

_loops: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    if _loops:
        return _loops
    import numba

    jit = numba.njit(nogil=True, cache=False, fastmath=False, error_model="numpy")

    @jit
    def adam_loop(P, G, M, V, decay, l2, neg, cw, wd, w1, w2, b2, eps_c, scale):  # pragma: no cover (numba)
        for i in range(P.shape[0]):
            p = P[i]
            g = G[i]
            if neg:
                g = -g
            if decay:
                p = p * cw
            elif l2:
                g = g + wd * p
            m = M[i]
            m = m + (g - m) * w1
            v = V[i] * b2 + (g * g) * w2
            d = (m / (np.sqrt(v) + eps_c)) * scale
            P[i] = p - d
            M[i] = m
            V[i] = v

    @jit
    def sgd_loop(P, G, B, decoupled, l2, neg, has_buf, damped, nesterov, cw, wd, lr, mu, damp):  # pragma: no cover
        for i in range(P.shape[0]):
            p = P[i]
            g = G[i]
            if neg:
                g = -g
            if decoupled:
                p = p * cw
            elif l2:
                g = g + wd * p
            if has_buf:
                b = B[i] * mu
                if damped:
                    b = b + damp * g
                else:
                    b = b + g
                B[i] = b
                if nesterov:
                    d = (b * mu + g) * lr
                else:
                    d = b * lr
            else:
                d = g * lr
            P[i] = p - d

    @jit
    def lion_loop(P, G, M, neg, cw, lr, w1, w2):  # pragma: no cover (numba)
        for i in range(P.shape[0]):
            g = G[i]
            if neg:
                g = -g
            m = M[i]
            p = P[i] * cw
            u = (g - m) * w1 + m
            u = np.sign(u) * lr
            P[i] = p - u
            M[i] = m + (g - m) * w2

    _loops.update(adam=adam_loop, sgd=sgd_loop, lion=lion_loop)
    return _loops


def _flat(*arrays: Any):
    """1-D views when every array is a C-contiguous ndarray of the first one's dtype, else None."""
    if not all(type(a) is np.ndarray and a.flags.c_contiguous and a.dtype == arrays[0].dtype for a in arrays):
        return None
    return [a.reshape(-1) for a in arrays]


def _dt(x: Any, dtype: Any) -> Any:
    return np.dtype(dtype).type(x)


def adam_numba(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.adam.adam_kernel` as one fused loop."""
    m, v = s.get("exp_avg"), s.get("exp_avg_sq")
    flat = None if hp.amsgrad else _flat(p, g, m, v)
    if flat is None:
        return adam_numpy(xp, p, g, s, hp, ctx)
    beta1, beta2 = hp.betas
    dt = p.dtype
    t = increment_step(s)
    step_size = like(xp, hp.lr / (1 - beta1 ** t), p)
    bc2_sqrt = like(xp, xp.sqrt(1 - beta2 ** t), p)
    decay = hp.weight_decay != 0 and hp.decoupled_weight_decay
    l2 = hp.weight_decay != 0 and not hp.decoupled_weight_decay
    _compile()["adam"](*flat, decay, l2, bool(hp.maximize), _dt(1 - hp.lr * hp.weight_decay, dt),
                       _dt(hp.weight_decay, dt), _dt(1 - beta1, dt), _dt(1 - beta2, dt), _dt(beta2, dt),
                       _dt((hp.eps * bc2_sqrt)[()], dt), _dt((step_size * bc2_sqrt)[()], dt))
    return p


def sgd_numba(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.sgd.sgd_kernel` as one fused loop."""
    buf = s.get("momentum_buffer")
    decoupled = isinstance(hp, SGDWHyperparams)
    has_buf = hp.momentum != 0
    flat = _flat(p, g, buf) if has_buf and buf is not None else (_flat(p, g) if not has_buf else None)
    if flat is None or (decoupled and hp.caution):
        return sgd_numpy(xp, p, g, s, hp, ctx)
    if not has_buf:
        flat.append(flat[0][:0])
    dt = p.dtype
    scale = hp.lr if not (decoupled and hp.corrected_weight_decay) else hp.lr ** 2 / hp.max_lr_snapshot
    _compile()["sgd"](*flat, decoupled, (not decoupled) and hp.weight_decay != 0, bool(hp.maximize), has_buf,
                      hp.dampening != 0, bool(hp.nesterov), _dt(1.0 - scale * hp.weight_decay, dt),
                      _dt(hp.weight_decay, dt), _dt(hp.lr, dt), _dt(hp.momentum, dt), _dt(1 - hp.dampening, dt))
    return p


def lion_numba(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.lion.lion_kernel` as one fused loop."""
    flat = None if hp.caution else _flat(p, g, s.get("exp_avg"))
    if flat is None:
        return lion_numpy(xp, p, g, s, hp, ctx)
    beta1, beta2 = hp.betas
    dt = p.dtype
    scale = hp.lr if not hp.corrected_weight_decay else hp.lr ** 2 / hp.max_lr_snapshot
    _compile()["lion"](*flat, bool(hp.maximize), _dt(1.0 - scale * hp.weight_decay, dt), _dt(hp.lr, dt),
                       _dt(1 - beta1, dt), _dt(1 - beta2, dt))
    return p


for _ref, _fast in ((adam_kernel, adam_numba), (sgd_kernel, sgd_numba), (lion_kernel, lion_numba)):
    _accel.register(_ref, "numba", is_numpy_namespace, _fast)
