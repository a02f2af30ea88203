"""The accelerator seam (arrayoptim._accel): every accelerated kernel matches its reference kernel bitwise on NumPy,
in place and pure, float32 and float64; the reference in-place AdamW step allocates at most two param-sized
temporaries (tracemalloc)."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import arrayoptim as ao
from arrayoptim import _accel

CASES = [
    ("adamw", {}), ("adamw", {"maximize": True}), ("adam", {}), ("adam", {"weight_decay": 0.1}),
    ("adam", {"weight_decay": 0.1, "maximize": True}), ("adamw", {"amsgrad": True}),
    ("momentum", {"weight_decay": 1e-4}), ("momentum", {"dampening": 0.3, "maximize": True}),
    ("sgd", {"weight_decay": 1e-2}), ("sgd", {"momentum": 0.0, "nesterov": False, "maximize": True}),
    ("sgdw", {"weight_decay": 1e-2}), ("sgdc", {}), ("csgdw", {}),
    ("lion", {"weight_decay": 0.1}), ("lion", {"maximize": True}), ("lionc", {}), ("clion", {}),
]
ACCELS = ["numpy"] + [pytest.param("numba", marks=pytest.mark.skipif(not _accel.available("numba"),
                                                                      reason="numba not installed"))]


def _params(dtype):
    rng = np.random.default_rng(0)
    # larger than one chunk, tiny, 0-d, non-contiguous
    p = {k: rng.standard_normal(s).astype(dtype) for k, s in {"a": (70_001,), "b": (3, 4), "c": (), "d": (9, 5)}.items()}
    p["e"] = rng.standard_normal((40, 60)).astype(dtype)[:, ::2]
    return p


def _run(name, kw, dtype, accel, copy):
    opt = ao.create_optimizer(name, lr=0.01, **kw)
    p = {k: v.copy() for k, v in _params(dtype).items()}
    st = opt.init(p)
    rng = np.random.default_rng(1)
    with _accel.using(*accel):
        for i in range(4):
            g = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in p.items()}
            if i == 2:
                g["b"] = None  # a missing grad
            before = {k: v.copy() for k, v in g.items() if v is not None}
            p, st = opt.step(p, g, st, copy=copy)
            assert all(np.array_equal(before[k], g[k]) for k in before)  # grads never written
    return p, st


@pytest.mark.parametrize("accel", ACCELS)
@pytest.mark.parametrize("copy", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,kw", CASES, ids=[f"{n}-{'-'.join(map(str, k)) or 'default'}" for n, k in CASES])
def test_accelerated_kernel_matches_reference_bitwise(name, kw, dtype, copy, accel):
    ref_p, ref_s = _run(name, kw, dtype, (), copy)
    p, s = _run(name, kw, dtype, (accel,) if accel == "numpy" else (accel, "numpy"), copy)
    for k in ref_p:
        assert p[k].dtype == ref_p[k].dtype and p[k].shape == ref_p[k].shape
        np.testing.assert_array_equal(p[k], ref_p[k], err_msg=f"param {k}")
        assert set(s[k]) == set(ref_s[k])
        for slot in ref_s[k]:
            np.testing.assert_array_equal(s[k][slot], ref_s[k][slot], err_msg=f"state[{k!r}][{slot!r}]")


def test_select_falls_back_to_reference():
    from arrayoptim.optimizers.adam import adam_kernel

    import array_api_strict

    from array_api_compat import array_namespace
    xp_np = array_namespace(np.ones(1))
    assert _accel.select(adam_kernel, array_namespace(array_api_strict.ones(1))) is adam_kernel
    with _accel.using():
        assert _accel.select(adam_kernel, xp_np) is adam_kernel
    with _accel.using("numpy"):
        assert _accel.select(adam_kernel, xp_np) is not adam_kernel


def test_use_rejects_unknown_accelerator():
    with pytest.raises(ValueError, match="unknown accelerator name 'cuda-magic'"):
        _accel.use("cuda-magic")


@pytest.mark.parametrize("accel", [(), ("numpy",)], ids=["reference", "numpy"])
def test_inplace_adamw_peak_extra_memory(accel):
    n = 1 << 20
    rng = np.random.default_rng(0)
    p = {"w": rng.standard_normal(n, dtype=np.float32)}
    g = {"w": rng.standard_normal(n, dtype=np.float32)}
    opt = ao.create_optimizer("adamw")
    st = opt.init(p)
    with _accel.using(*accel):
        p, st = opt.step(p, g, st, copy=False)  # warm (scratch buffers)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            p, st = opt.step(p, g, st, copy=False)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    assert peak <= 2 * p["w"].nbytes + 64 * 1024, f"peak extra {peak} bytes > two param-sized temporaries"
    if accel:
        assert peak < p["w"].nbytes // 8  # the chunked path allocates nothing param-sized
