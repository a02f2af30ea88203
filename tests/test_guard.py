"""skip_nonfinite: validation first, then the finiteness decision over grads, step inputs and LBFGS's closure;
guarded optimizers save, load and convert like any other."""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import arrayoptim as ao
from arrayoptim.optimizers.adahessian import hessian_due


def _adam():
    opt = ao.skip_nonfinite(ao.create_optimizer("adam", lr=0.1))
    p = {"w": np.ones(3), "b": np.zeros(2)}
    return opt, p, opt.init(p)


NAN = {"w": np.array([1.0, np.nan, 0.0]), "b": np.ones(2)}


# ------------------------------------------------------------------------------------------------ validation first

@pytest.mark.parametrize("case", ["hyperparams", "unknown_override", "slot_shape", "foreign_slot", "keyword",
                                  "grad_shape", "stray_state", "copy"])
def test_invalid_steps_raise_even_when_the_grads_are_not_finite(case):
    opt, p, s = _adam()
    kw, state, grads = {}, s, NAN
    if case == "hyperparams":
        kw = {"hyperparams": {"lr": -1.0}}
    elif case == "unknown_override":
        kw = {"hyperparams": {"nope": 1.0}}
    elif case == "slot_shape":
        state = {**s, "w": {**s["w"], "exp_avg": np.zeros(5)}}
    elif case == "foreign_slot":
        state = {**s, "w": {**s["w"], "momentum_buffer": np.zeros(3)}}
    elif case == "keyword":
        kw = {"closure": lambda q: (0.0, q)}
    elif case == "grad_shape":
        grads = {**NAN, "b": np.array([np.nan])}
    elif case == "stray_state":
        state = {**s, "x": {}}
    else:
        kw = {"copy": "yes"}
    with pytest.raises((ValueError, TypeError)):
        opt.step(p, grads, state, **kw)
    opt.validate(p, {"w": np.ones(3)}, s)  # the guard's own validate: the wrapped optimizer's checks
    with pytest.raises((ValueError, TypeError)):
        opt.validate(p, grads, state, **kw)


def test_a_valid_nonfinite_step_is_skipped_and_a_finite_one_runs():
    opt, p, s = _adam()
    p2, s2 = opt.step(p, NAN, s, copy=False, hyperparams={"lr": 0.5})
    np.testing.assert_array_equal(p2["w"], np.ones(3))
    assert float(s2["w"]["step"]) == 0.0 and float(s["w"]["step"]) == 0.0
    p3, s3 = opt.step(p, {"w": np.ones(3), "b": None}, s)
    assert float(s3["w"]["step"]) == 1.0 and p3["w"][0] < 1.0


# ------------------------------------------------------------------------------------------------ step inputs

def _adahessian():
    opt = ao.skip_nonfinite(ao.create_optimizer("adahessian", lr=0.1))
    p = {"w": np.ones(3)}
    return opt, p, opt.init(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_hessian_is_skipped(bad):
    opt, p, s = _adahessian()
    h = {"w": np.array([1.0, bad, 1.0])}
    assert hessian_due(opt, s) == ["w"]  # helpers that take the optimizer accept the guard
    p2, s2 = opt.step(p, {"w": np.ones(3)}, s, hessian=h, copy=False)
    np.testing.assert_array_equal(p2["w"], np.ones(3))
    assert s2["w"].keys() == s["w"].keys() and s2["w"]["hessian step"] == 0
    p3, s3 = opt.step(p, {"w": np.ones(3)}, s, hessian={"w": np.ones(3)})
    assert p3["w"][0] < 1.0 and s3["w"]["hessian step"] == 1
    with pytest.raises(ValueError, match="hessian"):  # still validated: a missing estimate raises
        opt.step(p, {"w": np.full(3, np.nan)}, s, hessian={})


def test_nonfinite_number_input_is_skipped():
    opt = ao.skip_nonfinite(ao.create_optimizer("lamb", lr=0.1))
    p = {"w": np.ones(3)}
    s = opt.init(p)
    for norm in (float("nan"), np.array(np.inf)):
        p2, s2 = opt.step(p, {"w": np.ones(3)}, s, grad_norm=norm)
        np.testing.assert_array_equal(p2["w"], p["w"])
        assert float(s2["w"]["step"]) == 0.0
    p3, _ = opt.step(p, {"w": np.ones(3)}, s, grad_norm=2.0)
    assert p3["w"][0] < 1.0


def test_nonfinite_kron_draws_are_skipped():
    from arrayoptim.optimizers.kron import kron_draws

    opt = ao.skip_nonfinite(ao.create_optimizer("kron", lr=0.1))
    p, g = {"w": np.ones((3, 2))}, {"w": np.ones((3, 2))}
    s = opt.init(p)
    rng = np.random.default_rng(0)
    draws = kron_draws(opt, p, g, s, uniform=rng.random, normal=lambda shape, like: rng.standard_normal(shape))
    _, ok = opt.step(p, g, s, draws=draws)
    assert ok["w"]["step"] == 1
    v = next(k for k, x in draws["w"].items() if isinstance(x, np.ndarray))
    bad = {"w": {**draws["w"], v: np.full_like(draws["w"][v], np.nan)}}
    p2, s2 = opt.step(p, g, s, draws=bad, copy=False)
    np.testing.assert_array_equal(p2["w"], p["w"])
    assert s2["w"]["step"] == 0


# ------------------------------------------------------------------------------------------------ LBFGS closure

def _lbfgs(loss_at=None, grad_nan=False):
    target = np.array([1.0, -2.0])
    calls = []

    def closure(q):
        calls.append(1)
        r = q["x"] - target
        loss = 0.5 * float(np.sum(r * r))
        if loss_at is not None and len(calls) >= loss_at:
            loss = float("nan")
        g = np.where(np.arange(2) == 0, np.nan, r) if grad_nan else r
        return loss, {"x": g}

    opt = ao.skip_nonfinite(ao.create_optimizer("lbfgs", line_search_fn="strong_wolfe"))
    p = {"x": np.zeros(2)}
    return opt, p, opt.init(p), closure, calls


@pytest.mark.parametrize("kind", ["loss_first", "loss_later", "grads"])
def test_nonfinite_closure_skips_the_whole_step(kind):
    opt, p, s, closure, calls = _lbfgs(loss_at=1 if kind == "loss_first" else 3 if kind == "loss_later" else None,
                                       grad_nan=kind == "grads")
    p2, s2 = opt.step(p, {"x": np.zeros(2)}, s, closure=closure, copy=False)
    np.testing.assert_array_equal(p2["x"], np.zeros(2))
    np.testing.assert_array_equal(p["x"], np.zeros(2))
    assert s2 == s and len(calls) == (3 if kind == "loss_later" else 1)


def test_finite_closure_runs_and_bad_closure_still_raises():
    opt, p, s, closure, _ = _lbfgs()
    p2, s2 = opt.step(p, {"x": np.zeros(2)}, s, closure=closure)
    np.testing.assert_allclose(p2["x"], [1.0, -2.0])
    with pytest.raises(TypeError, match="closure"):
        opt.step(p, {"x": np.full(2, np.nan)}, s)
    with pytest.raises(TypeError, match="pair"):
        opt.step(p, {"x": np.zeros(2)}, s, closure=lambda q: 1.0)


# ------------------------------------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("name", ["adamw", "lookahead_adamw", "lbfgs", "adan"])
def test_guarded_optimizers_save_and_load(name, tmp_path):
    kw = {"line_search_fn": "strong_wolfe"} if name == "lbfgs" else {"lr": 0.01}
    opt = ao.skip_nonfinite(ao.create_optimizer(name, **kw))
    p = {"x": np.ones(2)}
    closure = (lambda q: (0.5 * float(np.sum(q["x"] ** 2)), {"x": q["x"]}))
    extra = {"closure": closure} if name == "lbfgs" else {}
    for _ in range(3):
        p, s = opt.step(p, {"x": p["x"].copy()}, opt.init(p) if _ == 0 else s, **extra)
    ao.save_checkpoint(tmp_path / "g.npz", opt, s)
    opt2, s2 = ao.load_checkpoint(tmp_path / "g.npz", p)
    assert type(opt2) is type(opt) and opt2.name == opt.name and repr(opt2) == repr(opt)
    assert s2.keys() == s.keys() and all(s2[n].keys() == s[n].keys() for n in s)
    # into the same optimizer, guarded or not (the guard is no part of the state)
    ao.load_checkpoint(tmp_path / "g.npz", p, opt=opt)
    ao.load_checkpoint(tmp_path / "g.npz", p, opt=opt.base)
    opt2.validate_state(p, s2) if name != "lbfgs" else None
    a, _ = opt.step(p, {"x": p["x"].copy()}, s, **extra)
    b, _ = opt2.step(p, {"x": p["x"].copy()}, s2, **extra)
    np.testing.assert_array_equal(a["x"], b["x"])
    sd = ao.to_state_dict(opt, s)
    assert sd["param_groups"][0]["param_names"] == ["x"]


def test_guard_copies_and_pickles_without_recursion():
    opt = ao.skip_nonfinite(ao.create_optimizer("adam", lr=0.1))
    for other in (copy.copy(opt), copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert repr(other) == repr(opt) and other.name == "adam"
    with pytest.raises(AttributeError):
        ao._guard.SkipNonFinite.__new__(ao._guard.SkipNonFinite).base  # noqa: B018
