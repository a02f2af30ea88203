"""NumPy accelerator: the reference kernels' exact arithmetic as ``ufunc(..., out=)`` chains over cache-sized chunks.

Why it is faster than the array-API kernel on the same arrays: every ufunc writes into a preallocated output
(no temporaries, no page faults), and the chain runs over blocks of :data:`CHUNK_BYTES` per array, so the scratch
and the touched blocks of ``p``, ``g`` and the slots stay in L2 while the ~14 passes of AdamW run; DRAM sees about
one read (and one write) of each array per step. Each operation is the reference kernel's own, in the same order
and dtype, so the results are bitwise those of the reference kernel (``tests/test_accel.py``).

Registered through :mod:`arrayoptim._accel` for NumPy namespaces; configurations not handled here (AMSGrad,
cautious variants, SGD's first step, non-ndarray inputs) run the reference kernel.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
from array_api_compat import is_numpy_namespace

from . import _accel
from ._xp import increment_step, like
from .optimizers.adam import adam_kernel
from .optimizers.lion import lion_kernel
from .optimizers.sgd import SGDWHyperparams, sgd_kernel

__all__ = ["CHUNK_BYTES", "adam_numpy", "sgd_numpy", "lion_numpy"]

#: bytes per array per chunk: 5-6 arrays of this size stay within a 1 MiB L2
CHUNK_BYTES = 128 * 1024

_local = threading.local()


def _scratch(dtype: Any, k: int) -> np.ndarray:
    """The calling thread's k-th chunk-sized scratch buffer of ``dtype`` (allocated once)."""
    cache = getattr(_local, "buffers", None)
    if cache is None:
        cache = _local.buffers = {}
    key = (np.dtype(dtype), k)
    buf = cache.get(key)
    if buf is None:
        buf = cache[key] = np.empty(CHUNK_BYTES // np.dtype(dtype).itemsize, dtype=dtype)
    return buf


def _chunks(arrays: list[np.ndarray], n_scratch: int):
    """Yield ``(views..., scratch...)`` blocks over the arrays (flattened when all are C-contiguous, else whole)."""
    p = arrays[0]
    if all(a.flags.c_contiguous for a in arrays):
        flat = [a.reshape(-1) for a in arrays]
        n = flat[0].shape[0]
        scratch = [_scratch(p.dtype, k) for k in range(n_scratch)]
        c = scratch[0].shape[0] if scratch else n
        if n <= c:
            yield (*flat, *(s[:n] for s in scratch))
            return
        for i in range(0, n, c):
            j = min(i + c, n)
            yield (*(f[i:j] for f in flat), *(s[: j - i] for s in scratch))
    else:  # non-contiguous views: one whole-array pass with full-size scratch
        yield (*arrays, *(np.empty_like(p) for _ in range(n_scratch)))


def _ok(*arrays: Any) -> bool:
    return all(type(a) is np.ndarray for a in arrays)


def _dt(x: Any, dtype: Any) -> Any:
    """A Python float as a NumPy scalar of ``dtype`` (the same cast NumPy applies to a weak Python scalar)."""
    return np.dtype(dtype).type(x)


def adam_numpy(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.adam.adam_kernel` as chunked ufunc chains (AMSGrad: reference kernel)."""
    m, v = s.get("exp_avg"), s.get("exp_avg_sq")
    if hp.amsgrad or not _ok(p, g, m, v):
        return adam_kernel(xp, p, g, s, hp, ctx)
    beta1, beta2 = hp.betas
    dt = p.dtype
    t = increment_step(s)
    step_size = like(xp, hp.lr / (1 - beta1 ** t), p)
    bc2_sqrt = like(xp, xp.sqrt(1 - beta2 ** t), p)
    eps_c = (hp.eps * bc2_sqrt)[()]
    scale = (step_size * bc2_sqrt)[()]
    decay = hp.weight_decay != 0 and hp.decoupled_weight_decay
    l2 = hp.weight_decay != 0 and not hp.decoupled_weight_decay
    cw, wd = _dt(1 - hp.lr * hp.weight_decay, dt), _dt(hp.weight_decay, dt)
    w1, w2, b2 = _dt(1 - beta1, dt), _dt(1 - beta2, dt), _dt(beta2, dt)
    neg = hp.maximize
    mul, add, sub, div, sqrt = np.multiply, np.add, np.subtract, np.divide, np.sqrt
    for P, G, M, V, S, S2 in _chunks([p, g, m, v], 2):
        if decay:
            mul(P, cw, out=P)
        elif l2:  # g = (-g if maximize) + wd * p
            mul(P, wd, out=S2)
            (sub if neg else add)(S2, G, out=S2)
            G, neg_g = S2, False
        if not l2:
            neg_g = neg
        if neg_g:  # (-g) - m == -(g + m)
            add(G, M, out=S)
            mul(S, -w1, out=S)
        else:
            sub(G, M, out=S)
            mul(S, w1, out=S)
        add(M, S, out=M)
        mul(G, G, out=S)
        mul(S, w2, out=S)
        mul(V, b2, out=V)
        add(V, S, out=V)
        sqrt(V, out=S)
        add(S, eps_c, out=S)
        div(M, S, out=S)
        mul(S, scale, out=S)
        sub(P, S, out=P)
    return p


def sgd_numpy(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.sgd.sgd_kernel` as chunked ufunc chains (first step, caution: reference)."""
    buf = s.get("momentum_buffer")
    decoupled = isinstance(hp, SGDWHyperparams)
    slots = [buf] if buf is not None else []
    if (hp.momentum != 0 and buf is None) or (decoupled and hp.caution) or not _ok(p, g, *slots):
        return sgd_kernel(xp, p, g, s, hp, ctx)
    dt = p.dtype
    scale = hp.lr if not (decoupled and hp.corrected_weight_decay) else hp.lr ** 2 / hp.max_lr_snapshot
    cw = _dt(1.0 - scale * hp.weight_decay, dt)
    l2 = not decoupled and hp.weight_decay != 0
    wd, lr, mu, damp = _dt(hp.weight_decay, dt), _dt(hp.lr, dt), _dt(hp.momentum, dt), _dt(1 - hp.dampening, dt)
    neg = hp.maximize
    mul, add, sub = np.multiply, np.add, np.subtract
    arrays = [p, g] + ([buf] if hp.momentum != 0 else [])
    for blk in _chunks(arrays, 2):
        if hp.momentum != 0:
            P, G, B, S, S2 = blk
        else:
            (P, G, S, S2), B = blk, None
        if decoupled:
            mul(P, cw, out=P)
        if l2:
            mul(P, wd, out=S2)
            (sub if neg else add)(S2, G, out=S2)
            G = S2
        elif neg:
            np.negative(G, out=S2)
            G = S2
        if B is None:
            mul(G, lr, out=S)
        else:
            mul(B, mu, out=B)
            if hp.dampening != 0:
                mul(G, damp, out=S)
                add(B, S, out=B)
            else:
                add(B, G, out=B)
            if hp.nesterov:
                mul(B, mu, out=S)
                add(S, G, out=S)
                mul(S, lr, out=S)
            else:
                mul(B, lr, out=S)
        sub(P, S, out=P)
    return p


def lion_numpy(xp, p, g, s, hp, ctx):
    """:func:`arrayoptim.optimizers.lion.lion_kernel` as chunked ufunc chains (cautious Lion: reference)."""
    m = s.get("exp_avg")
    if hp.caution or not _ok(p, g, m):
        return lion_kernel(xp, p, g, s, hp, ctx)
    beta1, beta2 = hp.betas
    dt = p.dtype
    scale = hp.lr if not hp.corrected_weight_decay else hp.lr ** 2 / hp.max_lr_snapshot
    cw = _dt(1.0 - scale * hp.weight_decay, dt)
    lr = _dt(hp.lr, dt)
    sgn = -1 if hp.maximize else 1
    w1, w2 = _dt(sgn * (1 - beta1), dt), _dt(sgn * (1 - beta2), dt)
    # maximize: (-g) - m == -(g + m), so the difference becomes a sum and the weight flips sign
    diff = np.add if hp.maximize else np.subtract
    mul, add, sub = np.multiply, np.add, np.subtract
    for P, G, M, S, S2 in _chunks([p, g, m], 2):
        mul(P, cw, out=P)
        diff(G, M, out=S)
        mul(S, w1, out=S)
        add(S, M, out=S)
        np.sign(S, out=S2)  # not aliased: an aliased np.sign is an order of magnitude slower
        mul(S2, lr, out=S2)
        sub(P, S2, out=P)
        diff(G, M, out=S)
        mul(S, w2, out=S)
        add(M, S, out=M)
    return p


for _ref, _fast in ((adam_kernel, adam_numpy), (sgd_kernel, sgd_numpy), (lion_kernel, lion_numpy)):
    _accel.register(_ref, "numpy", is_numpy_namespace, _fast)
