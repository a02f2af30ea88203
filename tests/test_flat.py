"""Flat multi-tensor mode (arrayoptim.flat): the same numbers as the per-tensor step, O(1) kernels per step."""
from __future__ import annotations

import numpy as np
import pytest

import arrayoptim as ao
from arrayoptim import _accel

CASES = [("adamw", {}), ("adam", {"weight_decay": 0.1, "maximize": True}), ("momentum", {"weight_decay": 1e-4}),
         ("sgd", {}), ("sgdw", {"weight_decay": 1e-2}), ("lion", {"weight_decay": 0.1})]
ACCELS = [(), ("numpy",)] + ([("numba", "numpy")] if _accel.available("numba") else [])


def _params(rng):
    p = {k: rng.standard_normal(s) for k, s in {"a": (5000,), "b": (3, 4), "c": (), "d": (9, 5, 2)}.items()}
    p["e"] = rng.standard_normal((40, 60))[:, ::2]  # non-contiguous: pack copies it
    p["h"] = rng.standard_normal((7,)).astype(np.float32)  # a second dtype: a second segment
    return p


@pytest.mark.parametrize("accel", ACCELS, ids=lambda a: "+".join(a) or "reference")
@pytest.mark.parametrize("name,kw", CASES, ids=[n for n, _ in CASES])
def test_flat_matches_per_tensor(name, kw, accel):
    rng = np.random.default_rng(0)
    params = _params(rng)
    groups = [{"params": ["d"], "lr": 0.03}]
    opt = ao.create_optimizer(name, lr=0.01, groups=groups, **kw)
    fo = ao.flat(opt)
    p, st = {k: v.copy() for k, v in params.items()}, None
    st = opt.init(p)
    fp = fo.pack(params)
    assert len(fp.segments) == 3  # float64 top-level, float64 group, float32
    fst = fo.init(fp)
    with _accel.using(*accel):
        for i in range(4):
            g = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
            over = {"lr": 0.02} if i == 3 else None
            p, st = opt.step(p, g, st, copy=False, hyperparams=over)
            grads = g if i % 2 else fo.pack(g, like=fp)
            fp, fst = fo.step(fp, grads, fst, copy=False, hyperparams=over)
    views = fo.unpack(fp)
    fstate = fo.unpack_state(fp, fst)
    for k in params:
        np.testing.assert_array_equal(views[k], p[k], err_msg=k)
        assert views[k].dtype == p[k].dtype and views[k].shape == p[k].shape
        assert set(fstate[k]) == set(st[k])
        for slot in st[k]:
            np.testing.assert_array_equal(fstate[k][slot], st[k][slot], err_msg=f"{k}/{slot}")


def test_flat_views_share_the_buffer_and_copy_true_is_pure():
    fo = ao.flat(ao.create_optimizer("adamw", lr=0.1))
    fp = fo.pack({"w": np.ones((2, 3)), "b": np.zeros(3)})
    v = fo.unpack(fp)
    assert np.shares_memory(v["w"], fp.buffers[0]) and np.shares_memory(v["b"], fp.buffers[0])
    st = fo.init(fp)
    before = fp.buffers[0].copy()
    fp2, st2 = fo.step(fp, {"w": np.ones((2, 3)), "b": np.ones(3)}, st)
    np.testing.assert_array_equal(fp.buffers[0], before)
    assert float(st[0]["step"]) == 0 and float(st2[0]["step"]) == 1
    fp3, _ = fo.step(fp, fo.pack({"w": np.ones((2, 3)), "b": np.ones(3)}, like=fp), st, copy=False)
    assert fp3.buffers[0] is fp.buffers[0] and not np.array_equal(fp.buffers[0], before)


def test_flat_many_tensors_makes_one_kernel_call(monkeypatch):
    calls = []
    fo = ao.flat(ao.create_optimizer("adamw"))
    real = _accel.select

    def counting(kernel, xp):
        k = real(kernel, xp)
        return lambda *a: (calls.append(1), k(*a))[1]
    monkeypatch.setattr(_accel, "select", counting)
    fp = fo.pack({f"p{i}": np.ones(4, dtype=np.float32) for i in range(500)})
    fo.step(fp, fo.pack({f"p{i}": np.ones(4, dtype=np.float32) for i in range(500)}, like=fp), fo.init(fp),
            copy=False)
    assert len(calls) == 1


@pytest.mark.parametrize("name,kw,match", [
    ("lamb", {}, "'lamb' is not elementwise"),
    ("clion", {}, "caution=True"),
    ("adamw", {"caution": True}, None),  # adamw has no caution field: TypeError from create_optimizer
])
def test_flat_refuses_non_elementwise(name, kw, match):
    if match is None:
        with pytest.raises(TypeError):
            ao.flat(ao.create_optimizer(name, **kw))
        return
    with pytest.raises(ValueError, match=match):
        ao.flat(ao.create_optimizer(name, **kw))


def test_flat_step_errors_name_the_problem():
    fo = ao.flat(ao.create_optimizer("sgd", lr=0.1))
    fp = fo.pack({"w": np.ones(3), "b": np.ones(2)})
    st = fo.init(fp)
    with pytest.raises(ValueError, match=r"grads missing or None for \['b'\]"):
        fo.step(fp, {"w": np.ones(3), "b": None}, st)
    with pytest.raises(ValueError, match=r"arrays\['w'\] has shape \(4,\), the layout \(3,\)"):
        fo.step(fp, {"w": np.ones(4), "b": np.ones(2)}, st)
    with pytest.raises(ValueError, match="copy must be True, False or None, got 'yes'"):
        fo.step(fp, {"w": np.ones(3), "b": np.ones(2)}, st, copy="yes")
    ro = fo.pack({"w": np.ones(3), "b": np.ones(2)})
    ro.buffers[0].flags.writeable = False
    with pytest.raises(ValueError, match=r"copy=False but params\['segment 0 \(w, b\)'\] is read-only"):
        fo.step(ro, {"w": np.ones(3), "b": np.ones(2)}, st, copy=False)
