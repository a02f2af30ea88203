"""Property tests (hypothesis) over every registered optimizer: random shapes, dtypes and gradient scales.

Invariants: finite in -> finite out with no floating-point warnings; dtype and shape kept; lr=0 leaves params
unchanged where the math says so; maximize(g) == minimize(-g); copy=False equals copy=True.
Optimizers are selected by capability (the fields of their record), never by name.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import arrayoptim as ao
from optim_db import OPTIM_DB

NAMES = [n for n in ao.list_optimizers() if n in OPTIM_DB]
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes = st.sampled_from([(), (0,), (3,), (2, 3), (3, 1), (4, 1, 2), (0, 2)])
dtypes = st.sampled_from([np.float32, np.float64])
scales = st.sampled_from([0.0, 1e-30, 1e-8, 1.0, 1e4])


def _extra(opt, params, grads):
    make = OPTIM_DB[opt.name].step_kwargs
    return make(params, grads) if make else {}


def _allowed(name, shape):
    """Optimizers restricted to some shapes (DBEntry.shapes, e.g. 2-D only) get only the ndims they accept."""
    entry = OPTIM_DB[name]
    return entry.shapes is None or len(shape) in {len(s) for s in entry.shapes.values()}


def _problem(shape, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    params = {"p": rng.standard_normal(shape).astype(dtype)}
    grads = [{"p": (scale * rng.standard_normal(shape)).astype(dtype)} for _ in range(3)]
    return params, grads


def _run(opt, params, grads_seq, **kw):
    state = opt.init(params)
    for g in grads_seq:
        params, state = opt.step(params, g, state, **kw, **_extra(opt, params, g))
    return params, state


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(shape=shapes, dtype=dtypes, scale=scales, seed=st.integers(0, 2**16))
def test_finite_in_finite_out_no_fp_warnings(name, shape, dtype, scale, seed):
    assume(_allowed(name, shape))
    opt = ao.create_optimizer(name, **OPTIM_DB[name].inputs[0].kwargs)
    params, grads = _problem(shape, dtype, scale, seed)
    # underflow of g*g to a subnormal or zero at scale 1e-30 is what IEEE arithmetic (and torch) does: allowed
    with np.errstate(all="raise", under="ignore"):
        new, state = _run(opt, params, grads)
    assert new["p"].dtype == dtype and new["p"].shape == shape
    assert np.isfinite(new["p"]).all()
    for k, v in state["p"].items():
        if isinstance(v, np.ndarray):
            assert np.isfinite(v).all(), k


def _accepts_lr_zero(name):
    """Optimizers with an lr that may be 0 (torch's SparseAdam, for one, requires lr > 0)."""
    if "lr" not in ao.get_optimizer_info(name).hyperparams.field_names() or not OPTIM_DB[name].lr_zero_is_noop:
        return False
    try:
        ao.create_optimizer(name, **{**OPTIM_DB[name].inputs[0].kwargs, "lr": 0.0, "max_lr_snapshot": 1.0}
                            if "max_lr_snapshot" in ao.get_optimizer_info(name).hyperparams.field_names()
                            else {**OPTIM_DB[name].inputs[0].kwargs, "lr": 0.0})
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("name", [n for n in NAMES if _accepts_lr_zero(n)])
@SETTINGS
@given(shape=shapes, dtype=dtypes, scale=scales, seed=st.integers(0, 2**16))
def test_lr_zero_leaves_params_unchanged(name, shape, dtype, scale, seed):
    kwargs = dict(OPTIM_DB[name].inputs[0].kwargs, lr=0.0)
    if "corrected_weight_decay" in ao.get_optimizer_info(name).hyperparams.field_names():
        kwargs["max_lr_snapshot"] = 1.0  # corrected decay needs a positive peak lr; lr itself is 0 at this step
    assume(_allowed(name, shape))
    opt = ao.create_optimizer(name, **kwargs)
    params, grads = _problem(shape, dtype, scale, seed)
    with np.errstate(all="raise", under="ignore"):
        new, _ = _run(opt, params, grads)
    np.testing.assert_array_equal(new["p"], params["p"])


@pytest.mark.parametrize("name", [n for n in NAMES if "maximize" in ao.get_optimizer_info(n).hyperparams.field_names()
                                  and not OPTIM_DB[n].grads_from_closure])
@SETTINGS
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**16))
def test_maximize_equals_minimizing_the_negated_gradient(name, shape, dtype, seed):
    assume(_allowed(name, shape))
    base = dict(OPTIM_DB[name].inputs[0].kwargs)
    params, grads = _problem(shape, dtype, 1.0, seed)
    up_opt, down_opt = ao.create_optimizer(name, **base, maximize=True), ao.create_optimizer(name, **base)
    # step keywords derived from grads (e.g. SparseAdam's mask) come from the same grads in both runs
    down, s_down = params, down_opt.init(params)
    up, s_up = params, up_opt.init(params)
    for g in grads:
        kw = _extra(up_opt, up, g)
        up, s_up = up_opt.step(up, g, s_up, **kw)
        down, s_down = down_opt.step(down, {"p": -g["p"]}, s_down, **kw)
    np.testing.assert_array_equal(up["p"], down["p"])


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**16))
def test_in_place_equals_pure(name, shape, dtype, seed):
    assume(_allowed(name, shape))
    opt = ao.create_optimizer(name, **OPTIM_DB[name].inputs[-1].kwargs)
    params, grads = _problem(shape, dtype, 1.0, seed)
    pure, s_pure = _run(opt, params, grads)
    inplace, s_in = _run(opt, {"p": params["p"].copy()}, grads, copy=False)
    np.testing.assert_array_equal(inplace["p"], pure["p"])
