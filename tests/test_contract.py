"""The generic contract: every registered optimizer x configuration x backend x dtype, driven by ``optim_db``.

No test here names an optimizer; they branch on capability flags (fields of the hyperparameter record).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from array_api_compat import array_namespace, device, is_array_api_obj

import arrayoptim as ao
from arrayoptim.backends import BACKENDS
from optim_db import DEFAULT_SHAPES, OPTIM_DB, problem_shapes

CASES = [pytest.param(name, inp, id=f"{name}-{inp.desc.replace(' ', '_')}")
         for name in ao.list_optimizers() if name in OPTIM_DB for inp in OPTIM_DB[name].inputs]
#: the backend x dtype matrix runs each name's first configuration (the registry defaults); every configuration
#: runs on NumPy in the other tests. This keeps the suite linear in the number of names (and in JAX compiles).
MATRIX_CASES = [pytest.param(name, OPTIM_DB[name].inputs[0], id=name)
                for name in ao.list_optimizers() if name in OPTIM_DB]
COPY_CASES = [pytest.param(name, OPTIM_DB[name].inputs[-1], id=name)
              for name in ao.list_optimizers() if name in OPTIM_DB]
ERROR_CASES = [pytest.param(name, err, id=f"{name}-{err.desc.replace(' ', '_')}")
               for name in ao.list_optimizers() if name in OPTIM_DB for err in OPTIM_DB[name].errors]
NUMPY = BACKENDS["numpy"]


def test_every_registered_optimizer_has_db_entries():
    missing = [n for n in ao.list_optimizers() if n not in OPTIM_DB]
    assert not missing, f"add configurations to tests/optim_db.py for {missing}"


def make_problem(dtype, seed=0, steps=4, name=None):
    rng = np.random.default_rng(seed)
    shapes = problem_shapes(name) if name else dict(DEFAULT_SHAPES)
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()} for _ in range(max(4, steps))]
    return params, grads


def on(backend, tree):
    """A nested dict of NumPy arrays moved to ``backend`` (non-arrays kept)."""
    if isinstance(tree, dict):
        return {k: on(backend, v) for k, v in tree.items()}
    if isinstance(tree, list):  # list slots (Kron's per-dimension factors Q)
        return [on(backend, v) for v in tree]
    return backend.make(tree) if isinstance(tree, np.ndarray) else tree


def host(backend, tree):
    if isinstance(tree, dict):
        return {k: host(backend, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [host(backend, v) for v in tree]
    return np.array(backend.to_numpy(tree), copy=True) if is_array_api_obj(tree) else tree


def assert_tree_close(actual, expected, rtol, what="tree"):
    assert actual.keys() == expected.keys(), f"{what}: keys {sorted(actual)} != {sorted(expected)}"
    for k in expected:
        a, e = actual[k], expected[k]
        if isinstance(e, list):
            assert isinstance(a, list) and len(a) == len(e), f"{what}[{k!r}]"
            assert_tree_close(dict(enumerate(a)), dict(enumerate(e)), rtol, f"{what}[{k!r}]")
        elif isinstance(e, dict):
            assert_tree_close(a, e, rtol, f"{what}[{k!r}]")
        elif isinstance(e, np.ndarray):
            assert a.dtype == e.dtype and a.shape == e.shape, f"{what}[{k!r}]: {a.dtype}{a.shape} != {e.dtype}{e.shape}"
            np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * 1e-2, err_msg=f"{what}[{k!r}]")
        else:
            assert a == e, f"{what}[{k!r}]: {a!r} != {e!r}"


def assert_tree_equal(actual, expected, what="tree"):
    assert actual.keys() == expected.keys(), f"{what}: keys differ"
    for k in expected:
        if isinstance(expected[k], list):
            assert isinstance(actual[k], list) and len(actual[k]) == len(expected[k]), f"{what}[{k!r}]"
            assert_tree_equal(dict(enumerate(actual[k])), dict(enumerate(expected[k])), f"{what}[{k!r}]")
        elif isinstance(expected[k], dict):
            assert_tree_equal(actual[k], expected[k], f"{what}[{k!r}]")
        elif isinstance(expected[k], np.ndarray):
            np.testing.assert_array_equal(actual[k], expected[k], err_msg=f"{what}[{k!r}]")
            assert actual[k].dtype == expected[k].dtype
        else:
            assert actual[k] == expected[k]


def extra(opt, params, grads):
    """The step keywords an optimizer needs beyond grads (``DBEntry.step_kwargs``: closures, seeds, ...)."""
    make = OPTIM_DB[opt.name].step_kwargs
    return make(params, grads) if make else {}


def run(backend, opt, params, grads_seq, state=None, **kw):
    state = opt.init(params) if state is None else state
    for g in grads_seq:
        params, state = backend.run_step(opt, params, g, state, **kw, **extra(opt, params, g))
    return params, state


@pytest.mark.parametrize("name, inp", MATRIX_CASES)
def test_step_keeps_dtype_shape_device_and_matches_numpy(name, inp, backend, dtype):
    opt = ao.create_optimizer(name, **inp.kwargs)
    p0, gs = make_problem(dtype, steps=OPTIM_DB[name].steps, name=name)
    params, state = run(backend, opt, on(backend, p0), [on(backend, g) for g in gs])
    assert params.keys() == p0.keys() and state.keys() == p0.keys()
    for n, p in params.items():
        assert p.shape == p0[n].shape and backend.to_numpy(p).dtype == dtype
        dev = device(p)
        for slot, v in state[n].items():
            if is_array_api_obj(v):
                assert device(v) == dev, f"state[{n!r}][{slot!r}] left the param's device"
                if slot in opt.info.param_slots:
                    assert v.shape == p.shape and v.dtype == p.dtype, f"state[{n!r}][{slot!r}]"
                    assert array_namespace(v) is array_namespace(p)
    ref_p, ref_s = run(NUMPY, opt, on(NUMPY, p0), [on(NUMPY, g) for g in gs])
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    assert_tree_close(host(backend, params), host(NUMPY, ref_p), rtol, "params")
    assert_tree_close(host(backend, state), host(NUMPY, ref_s), rtol, "state")


@pytest.mark.parametrize("name, inp", CASES)
def test_goes_the_right_way_on_a_quadratic(name, inp):
    kwargs = dict(inp.kwargs)
    fields = ao.get_optimizer_info(name).hyperparams.field_names()
    if "lr" in fields and "lr" not in kwargs and OPTIM_DB[name].descent_lr is not None:
        kwargs["lr"] = OPTIM_DB[name].descent_lr
    opt = ao.create_optimizer(name, **kwargs)
    maximize = opt.hyperparams.as_dict().get("maximize", False)
    target = np.array([1.0, -2.0, 3.0])
    if OPTIM_DB[name].shapes:  # shape-restricted optimizers (2-D only) get a 1 x 3 matrix
        target = target[None, :]
    params = {"x": np.zeros(target.shape)}
    state = opt.init(params)
    loss0 = 0.5 * np.sum((params["x"] - target) ** 2)
    for _ in range(max(10, OPTIM_DB[name].steps)):
        grad = params["x"] - target  # d/dx of 0.5 |x - target|^2
        params, state = opt.step(params, {"x": grad}, state, **extra(opt, params, {"x": grad}))
    loss = 0.5 * np.sum((params["x"] - target) ** 2)
    assert (loss > loss0) if maximize else (loss < loss0), (loss0, loss)


@pytest.mark.parametrize("name, inp", COPY_CASES)
def test_copy_semantics(name, inp, backend):
    opt = ao.create_optimizer(name, **inp.kwargs)
    p0, gs = make_problem(np.float32, name=name)
    params, state = run(backend, opt, on(backend, p0), [on(backend, g) for g in gs[:2]])
    grads = on(backend, gs[2])
    before = host(backend, {"p": params, "g": grads, "s": state})

    # copy=True: nothing the caller holds changes
    new_p, new_s = opt.step(params, grads, state, copy=True, **extra(opt, params, grads))
    assert_tree_equal(host(backend, {"p": params, "g": grads, "s": state}), before, "inputs after copy=True")
    expected = host(backend, {"p": new_p, "s": new_s})

    # copy=None: same numbers; in place where writeable
    p_none, s_none = opt.step(params, grads, state, copy=None, **extra(opt, params, grads))
    assert_tree_close(host(backend, {"p": p_none, "s": s_none}), expected, 1e-6, "copy=None")

    params, state = on(backend, before["p"]), on(backend, before["s"])
    if not backend.writeable:
        with pytest.raises(ValueError, match="copy=False but .* is read-only"):
            opt.step(params, grads, state, copy=False, **extra(opt, params, grads))
        assert_tree_equal(host(backend, {"p": params, "g": grads, "s": state}), before, "inputs after refused step")
        return
    ids = {n: id(p) for n, p in params.items()}
    slot_ids = {(n, k): id(v) for n, s in state.items() for k, v in s.items() if is_array_api_obj(v)}
    p_false, s_false = opt.step(params, grads, state, copy=False, **extra(opt, params, grads))
    assert {n: id(p) for n, p in p_false.items()} == ids, "copy=False must update params in place"
    for (n, k), i in slot_ids.items():
        assert id(s_false[n][k]) == i, f"copy=False replaced state[{n!r}][{k!r}]"
    assert_tree_close(host(backend, {"p": p_false, "s": s_false}), expected, 1e-6, "copy=False")
    assert_tree_equal(host(backend, grads), before["g"], "grads after copy=False")


@pytest.mark.parametrize("name, inp", CASES)
def test_none_and_missing_grads_leave_param_and_state_untouched(name, inp):
    opt = ao.create_optimizer(name, **inp.kwargs)
    p0, gs = make_problem(np.float64, name=name)
    params, state = run(NUMPY, opt, p0, gs[:2])
    snap = host(NUMPY, {"p": params, "s": state})
    grads = dict(gs[2], b=None)
    del grads["scalar"]
    new_p, new_s = opt.step(params, grads, state, copy=False, **extra(opt, params, grads))
    for n in ("b", "scalar"):
        assert new_p[n] is params[n]
        if opt.info.counter == "group":  # timm's per-group counter advances on every step, grads or not
            assert float(new_s[n]["step"]) == float(snap["s"][n]["step"]) + 1
            snap["s"][n]["step"] = host(NUMPY, new_s[n]["step"])
        assert_tree_equal(host(NUMPY, new_s[n]), snap["s"][n], f"state[{n!r}]")
        np.testing.assert_array_equal(new_p[n], snap["p"][n])
    assert not np.array_equal(new_p["w"], snap["p"]["w"]) or opt.hyperparams.as_dict().get("lr", 1) == 0


@pytest.mark.parametrize("name, inp", CASES)
def test_non_contiguous_params_match_contiguous(name, inp):
    opt = ao.create_optimizer(name, **inp.kwargs)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((6, 8))
    strided = {"x": base[:, ::2], "t": rng.standard_normal((4, 5)).T, "neg": rng.standard_normal(7)[::-1]}
    if OPTIM_DB[name].shapes:  # shape-restricted (2-D only): a negative-stride matrix instead
        strided["neg"] = rng.standard_normal((3, 7))[:, ::-1]
    assert not any(v.flags.c_contiguous for v in strided.values())
    gs = [{k: rng.standard_normal(v.shape) for k, v in strided.items()} for _ in range(3)]
    contiguous = {k: np.ascontiguousarray(v) for k, v in strided.items()}
    a, sa = run(NUMPY, opt, contiguous, gs)
    b, sb = run(NUMPY, opt, dict(strided), gs, copy=False)
    assert_tree_close(b, a, 1e-14, "strided params")
    np.testing.assert_array_equal(base[:, ::2], b["x"])  # updated through the view


@pytest.mark.parametrize("name, err", ERROR_CASES)
def test_bad_hyperparameters_raise(name, err):
    with pytest.raises(err.error, match=err.match):
        ao.create_optimizer(name, **err.kwargs)


def _bad_grads(backend, grads, params):
    """(description, grads with one bad entry placed last, expected error)."""
    last = list(params)[-2]  # 'scalar' is last but one; 'empty' last
    w = backend.to_numpy(grads["w"])
    cases = [
        ("wrong shape", {**grads, "empty": backend.make(np.zeros((3, 0), dtype=w.dtype))}, ValueError, "shape"),
        ("integer grad", {**grads, "empty": backend.make(np.zeros((0, 3), dtype=np.int64))}, ValueError,
         "real floating"),
        ("grad for an unknown name", {**grads, "zzz": grads["w"]}, ValueError, "not params"),
        ("not an array", {**grads, "empty": [[0.0] * 3] * 0}, TypeError, "must be an array"),
    ]
    if backend.module != "numpy":
        cases.append(("mixed libraries", {**grads, last: np.zeros((), dtype=w.dtype)}, ValueError, "library"))
    return cases


@pytest.mark.parametrize("name, inp", COPY_CASES)
def test_failed_step_changes_nothing(name, inp, backend):
    opt = ao.create_optimizer(name, **inp.kwargs)
    p0, gs = make_problem(np.float32, name=name)
    params, state = run(backend, opt, on(backend, p0), [on(backend, g) for g in gs[:2]])
    grads = on(backend, gs[2])
    before = host(backend, {"p": params, "s": state})
    for desc, bad, error, match in _bad_grads(backend, grads, params):
        for copy in ((True, False) if backend.writeable else (True,)):
            with pytest.raises(error, match=match):
                opt.step(params, bad, state, copy=copy, **extra(opt, params, bad))
            assert_tree_equal(host(backend, {"p": params, "s": state}), before, f"after {desc} (copy={copy})")
    stray_state = {**state, "ghost": {}}
    with pytest.raises(ValueError, match="state has entries for names that are not params"):
        opt.step(params, grads, stray_state, copy=backend.writeable and False, **extra(opt, params, grads))
    for n in ("w",):
        for slot in opt.info.param_slots:
            if slot in state[n]:
                wrong = {**state, n: {**state[n], slot: on(backend, np.zeros((2, 2), np.float32))}}
                with pytest.raises(ValueError, match="does not belong to these params"):
                    opt.step(params, grads, wrong, **extra(opt, params, grads))
    assert_tree_equal(host(backend, {"p": params, "s": state}), before, "after all refused steps")


@pytest.mark.parametrize("name", [n for n in ao.list_optimizers() if n in OPTIM_DB])
def test_selectors_accepted_and_unknown_names_rejected(name):
    info = ao.get_optimizer_info(name)
    opt = ao.create_optimizer(name, foreach=True, fused=False, capturable=False, differentiable=False)
    assert opt.hyperparams == ao.create_optimizer(name).hyperparams
    assert dataclasses.is_dataclass(opt.hyperparams)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opt.hyperparams.lr = 1.0  # frozen
    expected = info.effective_defaults()
    if "max_lr_snapshot" in expected and expected["max_lr_snapshot"] is None:
        expected["max_lr_snapshot"] = expected["lr"]  # snapshot of the constructor lr, as timm takes it
    assert ao.create_optimizer(name).hyperparams.as_dict() == expected


def test_unknown_optimizer_name_suggests_close_matches():
    with pytest.raises(ValueError, match=r"Unknown optimizer name 'adamm'.*did you mean 'adam'"):
        ao.create_optimizer("adamm")
    with pytest.raises(ValueError, match="Unknown optimizer name 'lookahead_nope'|Unknown optimizer name 'nope'"):
        ao.create_optimizer("lookahead_nope")


@pytest.mark.parametrize("base", ["adamw", "adan"])
def test_lookahead_runs_under_jax_jit_like_numpy(base):
    """JAX params get Lookahead's traceable layout (an int32 counter, the slow buffer from ``init``): under
    ``jax.jit`` 14 steps with k=3 and missing grads give NumPy's eager result (1e-12), counter included."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    grads = [{"w": rng.standard_normal((4, 3)), "b": None if t in (4, 5) else rng.standard_normal(3)}
             for t in range(14)]
    opt = ao.create_optimizer(f"lookahead_{base}", lr=0.05, lookahead_k=3)
    p, s = params, opt.init(params)
    pj = {k: jnp.asarray(v) for k, v in params.items()}
    sj = opt.init(pj)
    step = jax.jit(lambda p, g, s: opt.step(p, g, s))
    for g in grads:
        p, s = opt.step(p, g, s)
        pj, sj = step(pj, {k: None if v is None else jnp.asarray(v) for k, v in g.items()}, sj)
    for k in params:
        np.testing.assert_allclose(np.asarray(pj[k]), p[k], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(np.asarray(sj[k]["lookahead_slow_buff"]), s[k]["lookahead_slow_buff"], rtol=1e-12)
        assert int(sj[k]["lookahead_step"]) == s[k]["lookahead_step"] == 14
