"""Validate all, then write: adversarial inputs over every registered name, each asserting that the step raises
``ValueError``/``TypeError`` and leaves params and state byte-identical (same keys, dtypes, shapes, values), with
``copy=False``, the mode in which a half-done step would show.

Categories (``pytest --collect-only -q tests/test_step_contract.py`` counts the cases):

* ``slots``: every slot of a stepped state missing, replaced by a wrong shape, a wrong dtype, a Python number for
  an array (or an array for a number), a string; ``step`` of shape (5,); a foreign slot; another optimizer's
  state. The bad slot sits on the *last* param, so that earlier params would already be written.
* ``override``: step-time overrides of structural hyperparameters that change the layout.
* ``torch``: tensors torch cannot write in place (``expand()`` views, inference tensors) and ``requires_grad``
  leaves (stepped under ``no_grad`` as torch.optim steps them, never building a graph).
* ``alias``: the same array for two params, overlapping views, a grad that is its param or a slot, a slot that is
  the param, a stride-0 writeable param.
* ``flat``: a read-only slot in flat mode's second segment.
* ``lookahead``: malformed Lookahead slots.
"""
from __future__ import annotations

import numpy as np
import pytest

import arrayoptim as ao
from optim_db import OPTIM_DB

NAMES = [n for n in ao.list_optimizers() if n in OPTIM_DB]
PER_PARAM = [n for n in NAMES if ao.get_optimizer_info(n).locality != "step"]  # LBFGS keeps whole-step state


# ------------------------------------------------------------------------------------------------ snapshots

def snap(tree):
    """A byte-exact, library-independent copy of params or state."""
    if isinstance(tree, dict):
        return {k: snap(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [type(tree).__name__] + [snap(v) for v in tree]
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        a = tree.detach().cpu().numpy() if hasattr(tree, "detach") else np.asarray(tree)
        return ("array", str(tree.dtype), tuple(a.shape), np.ascontiguousarray(a).tobytes())
    return ("value", type(tree).__name__, repr(tree))


def assert_raises_untouched(fn, params, state, errors=(ValueError, TypeError), match=None):
    before = snap(params), snap(state)
    with pytest.raises(errors, match=match):
        fn()
    assert (snap(params), snap(state)) == before, "a step that raised changed params or state"


def problem(name, seed=0):
    shapes = {"a": (6, 5), "z": (4, 3)}
    if name == "torchmuon":
        shapes = {"a": (6, 5), "z": (4, 3)}
    rng = np.random.default_rng(seed)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
    return params, grads


def kwargs_for(opt, params, grads):
    make = OPTIM_DB[opt.name.removeprefix("lookahead_")].step_kwargs
    return make(params, grads) if make else {}


def stepped(name):
    """An optimizer, params, grads and a state after two steps (lazy slots exist), all float64 NumPy."""
    opt = ao.create_optimizer(name)
    params, grads = problem(name)
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.step(params, grads, state, **kwargs_for(opt, params, grads))
    return opt, params, grads, state


# ------------------------------------------------------------------------------------------------ slots

def _bad_values(v, slot):
    """(description, bad value) pairs for the value ``v`` of ``slot``."""
    out = [("a string", "oops")]
    if isinstance(v, np.ndarray):
        out += [("a Python float", 1.0), ("another shape", np.zeros(v.shape + (2,), dtype=v.dtype)),
                ("another dtype", v.astype(np.float32) if v.dtype != np.float32 else v.astype(np.float64))]
        if v.ndim == 0:
            out.append(("shape (5,)", np.zeros(5, dtype=v.dtype)))
            if slot == "step" and np.issubdtype(v.dtype, np.floating):  # counts are checked by value
                out += [("a NaN count", np.full((), np.nan, dtype=v.dtype)),
                        ("a negative count", np.full((), -2, dtype=v.dtype))]
        else:
            out.append(("a 0-d array", np.zeros((), dtype=v.dtype)))
    elif isinstance(v, list):
        out += [("a shorter list", v[:-1]), ("an array", np.zeros(3))]
    elif isinstance(v, bool):
        out += [("an array", np.zeros(3))]
    elif isinstance(v, int):
        out += [("a negative counter", -1), ("an array", np.zeros(3))]
    elif isinstance(v, float):
        out += [("NaN", float("nan")), ("an array", np.zeros(3))]
    return out


def _slot_cases():
    cases = []
    for name in PER_PARAM:
        opt, params, grads, state = stepped(name)
        last = list(params)[-1]
        initial = opt.init(params)[last]
        for slot, v in state[last].items():
            if slot in initial:  # slots made lazily at the first step may be absent (torch: a fresh buffer)
                cases.append(pytest.param(name, slot, "missing", id=f"{name}-{slot}-missing"))
            for desc, _ in _bad_values(v, slot):
                cases.append(pytest.param(name, slot, desc, id=f"{name}-{slot}-{desc.replace(' ', '_')}"))
        cases.append(pytest.param(name, "foreign_slot", "extra", id=f"{name}-foreign_slot"))
    return cases


@pytest.mark.parametrize("name,slot,desc", _slot_cases())
def test_slots_are_checked_before_anything_is_written(name, slot, desc):
    opt, params, grads, state = stepped(name)
    last = list(params)[-1]
    bad = {n: dict(s) for n, s in state.items()}
    if desc == "missing":
        del bad[last][slot]
    elif desc == "extra":
        bad[last]["not_a_slot_of_anything"] = np.zeros(3)
    else:
        bad[last][slot] = dict(_bad_values(state[last][slot], slot))[desc]
    kw = kwargs_for(opt, params, grads)
    assert_raises_untouched(lambda: opt.step(params, grads, bad, copy=False, **kw), params, bad)


def _slot_names(name):
    return {k: sorted(v) for k, v in stepped(name)[3].items()}


def _foreign_pairs():
    out = []
    candidates = ("sgd", "adam", "adafactor", "lion", "kron", "adagrad", "rprop")
    for name in PER_PARAM:
        own = _slot_names(name)
        others = [o for o in candidates if o != name and _slot_names(o) != own]
        out += [pytest.param(name, other, id=f"{name}-state_of_{other}") for other in others[:2]]
    return out


@pytest.mark.parametrize("name,other", _foreign_pairs())
def test_another_optimizers_state_is_refused(name, other):
    opt, params, grads, _ = stepped(name)
    theirs = stepped(other)[3]
    kw = kwargs_for(opt, params, grads)
    assert_raises_untouched(lambda: opt.step(params, grads, theirs, copy=False, **kw), params, theirs)


def test_validate_state_names_param_and_slot():
    opt, params, grads, state = stepped("adamw")
    del state["z"]["exp_avg"]
    with pytest.raises(ValueError, match=r"state\['z'\] lacks \['exp_avg'\]"):
        opt.validate_state(params, state)
    state["z"]["exp_avg"] = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"state\['z'\]\['exp_avg'\] has shape \(4, 3\) and dtype float32"):
        opt.validate_state(params, state)


# ------------------------------------------------------------------------------------------------ overrides

@pytest.mark.parametrize("name,override", [
    ("adafactor", {"min_dim_size_to_factor": 2}),
    ("adafactorbv", {"min_dim_size_to_factor": 2}),
    ("adam", {"amsgrad": True}),
    ("adamw", {"amsgrad": True}),
    ("adafactor", {"betas": (0.9, 0.999)}),
])
def test_structural_overrides_that_change_the_layout_raise_first(name, override):
    opt, params, grads, state = stepped(name)
    if name.startswith("adafactor"):
        params = {k: np.ones((6, 5)) for k in params}
        grads = {k: np.ones((6, 5)) for k in params}
        state = opt.init(params)
        params, state = opt.step(params, grads, state)
    assert_raises_untouched(lambda: opt.step(params, grads, state, copy=False, hyperparams=override), params, state)


def test_validate_runs_every_check_and_writes_nothing():
    opt, params, grads, state = stepped("adamw")
    before = snap(params), snap(state)
    assert opt.validate(params, grads, state, copy=False, hyperparams={"lr": 0.5}) is None
    assert (snap(params), snap(state)) == before
    with pytest.raises(ValueError):
        opt.validate(params, grads, state, hyperparams={"lr": -1.0})


# ------------------------------------------------------------------------------------------------ aliasing

def _alias_cases():
    """(description, params, grads, state) builders: each shares memory the step would write."""
    def same_array_twice(opt):
        w = np.ones((3, 4))
        return {"a": w, "z": w}, {"a": np.ones((3, 4)), "z": np.ones((3, 4))}

    def overlapping_views(opt):
        buf = np.ones(20)
        return {"a": buf[:12].reshape(3, 4), "z": buf[8:20].reshape(3, 4)}, \
            {"a": np.ones((3, 4)), "z": np.ones((3, 4))}

    def grad_is_param(opt):
        a, z = np.ones((3, 4)), np.ones((3, 4))
        return {"a": a, "z": z}, {"a": np.ones((3, 4)), "z": z}

    def grad_is_other_param(opt):
        a, z = np.ones((3, 4)), np.ones((3, 4))
        return {"a": a, "z": z}, {"a": z, "z": np.ones((3, 4))}

    def stride0_param(opt):
        z = np.lib.stride_tricks.as_strided(np.ones(4), shape=(3, 4), strides=(0, 8), writeable=True)
        return {"a": np.ones((3, 4)), "z": z}, {"a": np.ones((3, 4)), "z": np.ones((3, 4))}

    return {"same_array_for_two_params": same_array_twice, "overlapping_views": overlapping_views,
            "grad_is_its_param": grad_is_param, "grad_is_another_param": grad_is_other_param,
            "stride0_writeable_param": stride0_param}


ALIAS = _alias_cases()


@pytest.mark.parametrize("case", list(ALIAS))
@pytest.mark.parametrize("name", PER_PARAM)
def test_aliasing_is_refused_with_copy_false(name, case):
    opt = ao.create_optimizer(name)
    params, grads = ALIAS[case](opt)
    state = opt.init(params)
    kw = kwargs_for(opt, params, grads)
    assert_raises_untouched(lambda: opt.step(params, grads, state, copy=False, **kw), params, state,
                            match="shares memory|read-only")


@pytest.mark.parametrize("what", ["grad_is_a_slot", "slot_is_the_param", "slot_is_another_param"])
@pytest.mark.parametrize("name", [n for n in PER_PARAM if n in ("adam", "adamw", "sgd", "lion", "adan", "rmsprop",
                                                                 "adagrad", "madgrad", "adafactor", "nadamw")])
def test_slot_aliasing_is_refused(name, what):
    opt, params, grads, state = stepped(name)
    arrays = [k for k, v in state["z"].items() if isinstance(v, np.ndarray) and v.shape == params["z"].shape]
    assert arrays, f"{name} keeps no param-shaped slot"
    state = {n: dict(s) for n, s in state.items()}
    grads = dict(grads)
    if what == "grad_is_a_slot":
        grads["z"] = state["z"][arrays[0]]
    elif what == "slot_is_the_param":
        state["z"][arrays[0]] = params["z"]
    else:
        state["z"][arrays[0]] = params["a"][:4, :3] if params["a"].shape[0] >= 4 else params["a"]
    kw = kwargs_for(opt, params, grads)
    assert_raises_untouched(lambda: opt.step(params, grads, state, copy=False, **kw), params, state)


def test_interleaved_views_of_one_buffer_are_not_aliases():
    buf = np.arange(24.0)
    params = {"even": buf[0::2], "odd": buf[1::2]}
    opt = ao.create_optimizer("adamw")
    state = opt.init(params)
    grads = {k: np.ones(12) for k in params}
    new, _ = opt.step(params, grads, state, copy=False)
    assert new["even"] is params["even"] and np.all(buf != np.arange(24.0))


def test_copy_true_accepts_shared_inputs():
    w = np.ones(3)
    opt = ao.create_optimizer("adam")
    params = {"a": w, "z": w}
    new, _ = opt.step(params, {"a": w, "z": w}, opt.init(params))
    assert np.all(w == 1) and new["a"] is not w


# ------------------------------------------------------------------------------------------------ torch

torch_cases = ["expand_view", "inference_tensor"]


@pytest.mark.parametrize("case", torch_cases)
@pytest.mark.parametrize("name", PER_PARAM)
def test_torch_tensors_that_cannot_be_written_in_place(name, case):
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer(name)
    if case == "expand_view":
        z = torch.ones(1, 3, dtype=torch.float64).expand(4, 3)
    else:
        with torch.inference_mode():
            z = torch.ones(4, 3, dtype=torch.float64)
    params = {"a": torch.ones(6, 5, dtype=torch.float64), "z": z}
    grads = {k: torch.full(v.shape, 0.5, dtype=torch.float64) for k, v in params.items()}
    state = opt.init({k: v.clone() for k, v in params.items()})
    kw = kwargs_for(opt, params, grads)
    assert_raises_untouched(lambda: opt.step(params, grads, state, copy=False, **kw), params, state,
                            match="read-only")


@pytest.mark.parametrize("name", ["adamw", "sgd", "adafactor", "lamb", "kron", "muon", "adahessian", "lbfgs"])
def test_requires_grad_leaves_step_like_torch_optim_without_a_graph(name):
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer(name)
    params = {"a": torch.ones(6, 5, dtype=torch.float64, requires_grad=True),
              "z": torch.ones(4, 3, dtype=torch.float64, requires_grad=True)}
    grads = {k: torch.full(v.shape, 0.5, dtype=torch.float64) for k, v in params.items()}
    kw = kwargs_for(opt, params, grads)
    state = opt.init(params)
    new, state = opt.step(params, grads, state, copy=True, **kw)
    assert all(v.grad_fn is None for v in new.values())
    new2, _ = opt.step(params, grads, opt.init(params), copy=False, **kw)
    assert new2["a"] is params["a"] and params["a"].grad_fn is None and params["a"].requires_grad


# ------------------------------------------------------------------------------------------------ flat, lookahead

def _flat_names():
    out = []
    for n in NAMES:
        if ao.get_optimizer_info(n).locality != "element" or ao.get_optimizer_info(n).step_inputs:
            continue  # flat mode is for element-wise kernels without step inputs
        try:
            ao.flat(ao.create_optimizer(n))
        except ValueError:  # caution's per-tensor mean is refused in flat mode
            continue
        out.append(n)
    assert len(out) >= 8, out
    return out


@pytest.mark.parametrize("name", _flat_names())
def test_flat_mode_checks_every_segment_before_the_first(name):
    opt = ao.create_optimizer(name, groups=[{"params": ["z"], "lr": 0.5}])
    fo = ao.flat(opt)
    params = fo.pack({"a": np.ones((3, 4)), "z": np.ones(5)})
    assert len(params.segments) == 2
    grads = fo.pack({"a": np.ones((3, 4)), "z": np.ones(5)}, like=params)
    state = fo.init(params)
    params, state = fo.step(params, grads, state)
    slot = next(k for k, v in state[1].items() if getattr(v, "ndim", 0) == 1)
    state[1][slot].flags.writeable = False
    before = snap(list(params.buffers)), snap(state)
    with pytest.raises(ValueError, match="read-only"):
        fo.step(params, grads, state, copy=False)
    assert (snap(list(params.buffers)), snap(state)) == before


@pytest.mark.parametrize("bad", ["negative_counter", "string_counter", "slow_buff_shape", "slow_buff_dtype"])
@pytest.mark.parametrize("name", ["lookahead_adamw", "lookahead_sgd", "lookahead_lamb", "lookahead_adan"])
def test_lookahead_slots_are_checked_first(name, bad):
    opt = ao.create_optimizer(name, lookahead_k=2)
    params, grads = problem(name)
    state = opt.init(params)
    for _ in range(2):
        params, state = opt.step(params, grads, state)
    state = {n: dict(s) for n, s in state.items()}
    z = state["z"]
    if bad == "negative_counter":
        z["lookahead_step"] = -3
    elif bad == "string_counter":
        z["lookahead_step"] = "2"
    elif bad == "slow_buff_shape":
        z["lookahead_slow_buff"] = np.zeros(7)
    else:
        z["lookahead_slow_buff"] = z["lookahead_slow_buff"].astype(np.float32)
    assert_raises_untouched(lambda: opt.step(params, grads, state, copy=False), params, state)
