"""Checkpoints (safe to load, validated, bit-identical resume), torch state_dict layout, the non-finite guard."""
from __future__ import annotations

import numpy as np
import pytest

import arrayoptim as ao
from optim_db import OPTIM_DB

NAMES = [n for n in ao.list_optimizers() if n in OPTIM_DB]


def _extra(opt, params, grads):
    make = OPTIM_DB[opt.name.removeprefix("lookahead_")].step_kwargs
    return make(params, grads) if make else {}


def _problem(seed=0, steps=8, name=None):
    rng = np.random.default_rng(seed)
    shapes = {"w": (4, 3), "b": (3,), "s": ()}
    if name and OPTIM_DB[name.removeprefix("lookahead_")].shapes:  # optimizers that accept only some shapes
        shapes = {"w": (4, 3), "b": (2, 3), "s": (3, 2)}
    params = {k: rng.standard_normal(v) for k, v in shapes.items()}
    grads = [{k: rng.standard_normal(v) for k, v in shapes.items()} for _ in range(steps)]
    return params, grads


def _train(opt, params, state, grads):
    for g in grads:
        params, state = opt.step(params, g, state, **_extra(opt, params, g))
    return params, state


@pytest.mark.parametrize("name", NAMES + ["lookahead_adamw"])
def test_checkpoint_mid_training_resumes_bit_identically(name, tmp_path):
    kwargs = OPTIM_DB[name.removeprefix("lookahead_")].inputs[-1].kwargs
    try:  # with a param group of its own where the optimizer has groups at all (LBFGS has not)
        opt = ao.create_optimizer(name, groups=[{"params": ["b"], "weight_decay": 0.0}], **kwargs)
    except (ValueError, TypeError):
        opt = ao.create_optimizer(name, **kwargs)
    params, grads = _problem(name=name)
    p_mid, s_mid = _train(opt, params, opt.init(params), grads[:4])
    path = tmp_path / "ckpt.npz"
    ao.save_checkpoint(path, opt, s_mid)
    expected_p, expected_s = _train(opt, p_mid, s_mid, grads[4:])

    fresh = {k: v.copy() for k, v in p_mid.items()}
    opt2, s_loaded = ao.load_checkpoint(path, fresh)
    assert opt2.name == opt.name and opt2.hyperparams == opt.hyperparams
    got_p, got_s = _train(opt2, fresh, s_loaded, grads[4:])
    for n in params:
        np.testing.assert_array_equal(got_p[n], expected_p[n])
        assert got_s[n].keys() == expected_s[n].keys()
        for k, v in expected_s[n].items():
            got, want = got_s[n][k], v
            if isinstance(want, list):  # list slots (Kron's per-dimension factors Q)
                assert isinstance(got, list) and len(got) == len(want), (n, k)
            else:
                got, want = [got], [want]
            for a, b in zip(got, want):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
                assert np.asarray(a).dtype == np.asarray(b).dtype, (n, k)


def test_checkpoint_keeps_float32_state_and_loads_onto_the_params_library(tmp_path):
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer("adamw", lr=0.01)
    params = {"w": np.ones((2, 2), np.float32)}
    params, state = opt.step(params, {"w": np.ones((2, 2), np.float32)}, opt.init(params))
    ao.save_checkpoint(tmp_path / "c.npz", opt, state)
    tparams = {"w": torch.ones((2, 2))}
    _, tstate = ao.load_checkpoint(tmp_path / "c.npz", tparams, opt=opt)
    assert isinstance(tstate["w"]["exp_avg"], torch.Tensor) and tstate["w"]["exp_avg"].dtype == torch.float32
    assert tstate["w"]["step"].dtype == torch.float32 and float(tstate["w"]["step"]) == 1.0


def test_damaged_or_mismatched_checkpoints_raise(tmp_path):
    opt = ao.create_optimizer("adam", lr=0.01)
    params, grads = _problem()
    params, state = _train(opt, params, opt.init(params), grads[:2])
    path = tmp_path / "c.npz"
    ao.save_checkpoint(path, opt, state)
    raw = path.read_bytes()

    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ao.load_checkpoint(tmp_path / "trunc.npz", params)
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ao.load_checkpoint(tmp_path / "junk.npz", params)
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not an arrayoptim checkpoint"):
        ao.load_checkpoint(tmp_path / "other.npz", params)

    with pytest.raises(ValueError, match="params do not match"):
        ao.load_checkpoint(path, {**params, "extra": np.ones(2)})
    with pytest.raises(ValueError, match=r"state\['w'\]\['exp_avg'\] has shape"):
        ao.load_checkpoint(path, {**params, "w": np.ones((3, 4))})
    with pytest.raises(ValueError, match=r"has shape .* and dtype float64, its param .* float32"):
        ao.load_checkpoint(path, {**params, "w": params["w"].astype(np.float32)})
    with pytest.raises(ValueError, match="optimizer 'adam' does not match"):
        ao.load_checkpoint(path, params, opt=ao.create_optimizer("adamw"))
    with pytest.raises(ValueError, match="hyperparams"):
        ao.load_checkpoint(path, params, opt=ao.create_optimizer("adam", lr=0.02))


def test_checkpoint_never_unpickles(tmp_path):
    obj_arr = np.array([{"evil": 1}], dtype=object)
    np.savez(tmp_path / "pickled.npz", __arrayoptim_header__=np.frombuffer(b"{}", np.uint8), a0=obj_arr)
    with pytest.raises(ValueError):
        ao.load_checkpoint(tmp_path / "pickled.npz", {"w": np.ones(2)})


def test_state_dict_layout_round_trip_and_matches_torch():
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer("adamw", lr=0.01, groups=[{"params": ["b"], "weight_decay": 0.0}])
    params, grads = _problem()
    params, state = _train(opt, params, opt.init(params), grads[:3])
    sd = ao.to_state_dict(opt, state, order=["w", "s", "b"])
    assert [g["param_names"] for g in sd["param_groups"]] == [["w", "s"], ["b"]]
    assert sd["param_groups"][1]["weight_decay"] == 0.0 and sorted(sd["state"]) == [0, 1, 2]
    back = ao.from_state_dict(sd, params)
    for n in params:
        for k, v in state[n].items():
            np.testing.assert_array_equal(back[n][k], v)
    # the same layout torch produces for the same grouping (keys and slot names)
    t = {n: torch.tensor(v, requires_grad=True) for n, v in params.items()}
    topt = torch.optim.AdamW([{"params": [t["w"], t["s"]]}, {"params": [t["b"]], "weight_decay": 0.0}], lr=0.01)
    for n, p in t.items():
        p.grad = torch.ones_like(p)
    topt.step()
    tsd = topt.state_dict()
    assert set(tsd["state"]) == set(sd["state"])
    assert all(set(tsd["state"][i]) == set(sd["state"][i]) for i in tsd["state"])
    with pytest.raises(ValueError, match="holds 3 params, params has 2"):
        ao.from_state_dict(sd, {"w": params["w"], "b": params["b"]})


@pytest.mark.parametrize("name", NAMES)
def test_skip_nonfinite_guard_changes_nothing(name):
    opt = ao.skip_nonfinite(ao.create_optimizer(name, **OPTIM_DB[name].inputs[0].kwargs))
    params, grads = _problem(name=name)
    params, state = _train(opt, params, opt.init(params), grads[:2])
    snap_p = {k: v.copy() for k, v in params.items()}
    for bad_value in (np.nan, np.inf, -np.inf):
        bad_b = np.zeros(params["b"].shape)
        bad_b.flat[1] = bad_value
        bad = {**grads[2], "b": bad_b}
        new_p, new_s = opt.step(params, bad, state, copy=False, **_extra(opt, params, bad))
        for n in params:
            np.testing.assert_array_equal(new_p[n], snap_p[n])
        assert new_s.keys() == state.keys()
    ok_p, _ = opt.step(params, grads[2], state, **_extra(opt, params, grads[2]))
    assert not np.array_equal(ok_p["w"], snap_p["w"])


def test_nonfinite_grads_propagate_by_default_like_torch():
    opt = ao.create_optimizer("sgd", lr=0.1)
    p, s = opt.step({"w": np.ones(2)}, {"w": np.array([np.nan, 1.0])}, opt.init({"w": np.ones(2)}))
    assert np.isnan(p["w"][0]) and np.isfinite(p["w"][1])


def test_skip_nonfinite_under_jax_jit():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    opt = ao.skip_nonfinite(ao.create_optimizer("adam", lr=0.1))
    p = {"w": jnp.ones(2)}
    s = opt.init(p)
    step = jax.jit(lambda p, g, s: opt.step(p, g, s))
    p2, s2 = step(p, {"w": jnp.array([1.0, jnp.nan])}, s)
    np.testing.assert_array_equal(np.asarray(p2["w"]), [1.0, 1.0])
    assert float(s2["w"]["step"]) == 0.0
    p3, s3 = step(p, {"w": jnp.array([1.0, 1.0])}, s)
    assert float(s3["w"]["step"]) == 1.0 and float(p3["w"][0]) < 1.0


def test_group_lr_scale_acts_through_a_scheduled_lr_like_timm():
    opt = ao.create_optimizer("sgd", lr=0.1, momentum=0.0, nesterov=False,
                              groups=[{"params": ["b"], "lr_scale": 0.5}])
    params = {"w": np.ones(2), "b": np.ones(2)}
    g = {"w": np.ones(2), "b": np.ones(2)}
    p1, _ = opt.step(params, g, opt.init(params))  # no schedule: lr_scale has no effect (timm)
    np.testing.assert_allclose(p1["b"], 0.9)
    p2, _ = opt.step(params, g, opt.init(params), hyperparams={"lr": 0.2})
    np.testing.assert_allclose(p2["w"], 0.8)
    np.testing.assert_allclose(p2["b"], 0.9)
    with pytest.raises(ValueError, match=r"groups\[0\]\['lr_scale'\] must be a number >= 0, got -1"):
        ao.create_optimizer("sgd", groups=[{"params": ["b"], "lr_scale": -1}])
