"""Parity with timm for LAMB, LARS, AdamP/SGDP, Adafactor and Adafactor Big Vision (every registered name).

Each name is built by ``timm.optim.create_optimizer_v2(groups, opt=name, **kwargs)`` exactly as a timm user would,
beside ``ao.create_optimizer(name, **same keywords)``, in float64 for 12 steps; params and every state slot must
agree within 1e-10 relative after every step (``oracles.check_parity``), with weight decay off and on and the
flags that change the math. The harness problem has a 4-D conv, a matrix, a vector, a 0-d and a transposed param.
Then: zero weights, zero grads and ``lr=0`` under ``np.errstate(all='raise')``.
"""
from __future__ import annotations

import numpy as np
import pytest

from oracles import check_parity, grad_schedule, make_params

timm_optim = pytest.importorskip("timm.optim")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.oracle

import arrayoptim as ao  # noqa: E402

PARAM_ORDER = ["conv", "w", "b", "scalar", "nc"]  # the order of oracles.make_params (torch groups follow it)

#: registry name -> (base keywords, extra flag configurations beyond the registry defaults)
NAMES = {
    "lamb": ({"lr": 0.01}, [{"always_adapt": True}, {"max_grad_norm": None}, {"bias_correction": False},
                            {"grad_averaging": False, "max_grad_norm": 0.5}, {"betas": (0.5, 0.9), "eps": 1e-3}]),
    "lambc": ({"lr": 0.01}, [{"always_adapt": True}]),
    "lambw": ({"lr": 0.01}, [{"always_adapt": True, "max_grad_norm": 100.0}]),
    "lambcw": ({"lr": 0.01}, []),
    "lambcd": ({"lr": 0.01}, [{"trust_clip": True}]),
    "clamb": ({"lr": 0.01}, [{"always_adapt": True}]),
    "clambw": ({"lr": 0.01}, [{"corrected_weight_decay": True}]),
    "lars": ({"lr": 0.1}, [{"always_adapt": True}, {"dampening": 0.3}, {"momentum": 0.0},
                           {"trust_coeff": 0.5, "eps": 1e-3}]),
    "larc": ({"lr": 0.1}, [{"always_adapt": True}, {"momentum": 0.0}]),
    "nlars": ({"lr": 0.1}, [{"always_adapt": True}]),
    "nlarc": ({"lr": 0.1}, [{"always_adapt": True, "trust_coeff": 0.5}]),
    "adamp": ({"lr": 0.003}, [{"nesterov": False}, {"delta": 5.0}, {"delta": 0.5, "wd_ratio": 0.3},
                              {"betas": (0.5, 0.9), "eps": 1e-3}]),
    "cadamp": ({"lr": 0.003}, [{"delta": 5.0}, {"nesterov": False, "delta": 0.5}]),
    "sgdp": ({"lr": 0.003}, [{"nesterov": False}, {"delta": 5.0, "dampening": 0.2, "nesterov": False},
                             {"momentum": 0.0, "nesterov": False}]),
    "csgdp": ({"lr": 0.003}, [{"delta": 5.0}, {"nesterov": False, "delta": 0.5}]),
    "adafactor": ({}, [{"lr": 0.01}, {"min_dim_size_to_factor": 2}, {"min_dim_size_to_factor": 4},
                       {"min_dim_size_to_factor": 2, "betas": (0.9, 0.999)}, {"warmup_init": True},
                       {"scale_parameter": False, "min_dim_size_to_factor": 2},
                       {"clip_threshold": 0.1, "decay_rate": -0.5, "eps_scale": 1e-1},
                       {"lr": 0.01, "betas": (0.5, 0.999), "min_dim_size_to_factor": 2}]),
    "cadafactor": ({}, [{"lr": 0.01}, {"min_dim_size_to_factor": 2}, {"betas": (0.5, 0.9), "eps": 1e-8}]),
    **{n: ({"lr": 0.05}, [{"min_dim_size_to_factor": 2}, {"min_dim_size_to_factor": 5, "clipping_threshold": 1.0},
                          {"decay_offset": 3, "beta2_cap": 0.9}, {"momentum": None}, {"momentum": 0.0},
                          {"unscaled_wd": True}, {"eps": 1e-3, "decay_rate": 0.5, "min_dim_size_to_factor": 2},
                          {"momentum_dtype": "float16"}, {"momentum_dtype": "float32"}, {"momentum_dtype": None}])
       for n in ("adafactorbv", "adafactorbvc", "cadafactorbv", "cadafactorbvc")},
}



def oracle_kwargs(kwargs):
    """timm's keywords for ours: Big Vision Adafactor's ``momentum_dtype=None`` (arrayoptim: unrounded, in the
    param dtype) is timm's ``momentum_dtype=torch.float64`` for these float64 runs (timm has no None)."""
    if "momentum_dtype" in kwargs and kwargs["momentum_dtype"] is None:
        return {**kwargs, "momentum_dtype": torch.float64}
    return kwargs

#: names whose update projects scale-invariant params: their grads are built to make the cosine test pass and fail
PROJECTED = {"adamp", "cadamp", "sgdp", "csgdp"}

#: timm keeps LAMB's step counter in the param group
GROUP_STEP = {"lamb", "lambc", "lambw", "lambcw", "lambcd", "clamb", "clambw"}


def _group_step_map(oracle_box, groups):
    """``slot_map`` for optimizers that count ``step`` per group: expose the group's counter as the per-param
    ``step`` slot arrayoptim keeps (every param's slot holds its group's count, with or without a grad)."""
    grouped = [n for g in (groups or []) for n in g["params"]]
    group_of = {n: 0 for n in PARAM_ORDER if n not in grouped}
    for i, g in enumerate(groups or []):
        group_of.update({n: i + 1 for n in g["params"]})

    def slot_map(name, theirs):
        if not theirs:
            return theirs
        return {**theirs, "step": oracle_box[0].param_groups[group_of[name]]["step"]}
    return slot_map


def _parity(name, kwargs, *, groups=None, grads=None, steps=12):
    box = []

    def make(t_groups):
        box.append(timm_optim.create_optimizer_v2(t_groups, opt=name, **oracle_kwargs(kwargs)))
        return box[0]
    slot_map = _group_step_map(box, groups) if name in GROUP_STEP else None
    if name in PROJECTED and grads is None:
        grads = projection_grads(steps)
    check_parity(name, kwargs, make, steps=steps, groups=groups, grads=grads, slot_map=slot_map)


def projection_grads(steps, seed=1, scale=1.0, missing=True):
    """Grads that exercise AdamP/SGDP's three outcomes: orthogonal to each channel of the initial param (channel
    projection), orthogonal to the whole param only (layer projection), and random (no projection)."""
    p0 = make_params()[0]
    out = []
    for t, g in enumerate(grad_schedule(p0, steps, seed=seed, scale=scale, missing=missing)):
        kind = t % 3
        new = {}
        for n, v in g.items():
            if v is None or v.ndim < 2 or kind == 2:
                new[n] = v
                continue
            p = p0[n]
            rows = p.shape[0] if kind == 0 else 1
            pv, gv = p.reshape(rows, -1), v.reshape(rows, -1)
            gv = gv - pv * (np.sum(pv * gv, axis=1, keepdims=True) / np.sum(pv * pv, axis=1, keepdims=True))
            if kind == 1:  # make the channel cosines large while the layer cosine stays 0
                pc = p.reshape(p.shape[0], -1)
                signs = np.where(np.arange(p.shape[0]) % 2 == 0, 1.0, -1.0)[:, None]
                nrm = np.sum(pc * pc, axis=1, keepdims=True)
                gv = (gv.reshape(pc.shape) + signs * pc * (np.sum(nrm) / nrm) / p.shape[0]).reshape(1, -1)
                gv = gv - pv * (np.sum(pv * gv, axis=1, keepdims=True) / np.sum(pv * pv, axis=1, keepdims=True))
            new[n] = gv.reshape(v.shape)
        out.append(new)
    return out


CASES = [pytest.param(name, {**base, "weight_decay": wd, **extra},
                      id=f"{name}-wd{wd}-" + ("-".join(f"{k}={v}" for k, v in extra.items()) or "defaults"))
         for name, (base, extras) in NAMES.items() for extra in [{}] + extras for wd in (0.0, 0.05)]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_matches_timm(name, kwargs):
    _parity(name, kwargs)


def _grads(name, scale, steps=12):
    if name in PROJECTED:
        return projection_grads(steps, scale=scale)
    return grad_schedule(make_params()[0], steps, scale=scale, missing=name not in GROUP_STEP)


@pytest.mark.parametrize("scale", [1e-7, 30.0], ids=["grads~1e-7", "grads~30"])
@pytest.mark.parametrize("name", sorted(NAMES))
def test_matches_timm_at_other_grad_scales(name, scale):
    """Tiny grads make eps placement visible; big grads make LAMB's global clip bite."""
    base, _ = NAMES[name]
    kwargs = {**base, "weight_decay": 0.05}
    grads = _grads(name, scale)
    _parity(name, kwargs, grads=grads)


@pytest.mark.parametrize("name", sorted(NAMES))
def test_matches_timm_with_param_groups(name):
    """Two extra groups with their own lr / weight decay; LAMB's clip stays global across all groups."""
    base, _ = NAMES[name]
    lr = base.get("lr")
    if lr is None:  # relative step size (Adafactor): vary the options that shape it instead
        groups = [{"params": ["w", "nc"], "scale_parameter": False, "weight_decay": 0.0},
                  {"params": ["scalar", "conv"], "min_dim_size_to_factor": 2, "weight_decay": 0.1}]
    else:
        groups = [{"params": ["w", "nc"], "lr": lr * 3, "weight_decay": 0.0},
                  {"params": ["scalar", "conv"], "lr": lr / 2, "weight_decay": 0.1}]
    grads = _grads(name, 5.0)
    _parity(name, {**base, "weight_decay": 0.05}, groups=groups, grads=grads)


def test_lamb_clip_is_global_across_groups():
    """Grads with a global norm of ~10 and max_grad_norm=1: every group's moments see g / clip with one clip."""
    params = {"a": np.ones(4), "b": np.ones(3)}
    grads = {"a": np.full(4, 3.0), "b": np.full(3, 4.0)}  # ||g|| = sqrt(36 + 48) = sqrt(84)
    opt = ao.create_optimizer("lamb", lr=0.1, groups=[{"params": ["b"], "weight_decay": 0.0}])
    _, state = opt.step(params, grads, opt.init(params))
    clip = np.sqrt(84.0)
    np.testing.assert_allclose(state["a"]["exp_avg"], 0.1 * grads["a"] / clip, rtol=1e-14)
    np.testing.assert_allclose(state["b"]["exp_avg"], 0.1 * grads["b"] / clip, rtol=1e-14)


# --------------------------------------------------------------------------------------------- degenerate inputs

DEGENERATE_NAMES = sorted(NAMES)


def _degenerate_run(name, kwargs, params, grads, steps=3, overrides=None):
    opt = ao.create_optimizer(name, **kwargs)
    state = opt.init(params)
    with np.errstate(all="raise"):
        for _ in range(steps):
            params, state = opt.step(params, grads, state, hyperparams=overrides)
    for n, p in params.items():
        assert np.all(np.isfinite(p)), (name, n, p)
        for k, v in state[n].items():
            assert np.all(np.isfinite(np.asarray(v, dtype=np.float64))), (name, n, k)
    return params, state


def _problem(fill_p, fill_g):
    shapes = {"conv": (4, 3, 2, 2), "w": (20, 18), "b": (5,), "scalar": (), "empty": (0, 3)}
    rng = np.random.default_rng(0)
    params = {k: (rng.standard_normal(s) if fill_p is None else np.full(s, fill_p)) for k, s in shapes.items()}
    grads = {k: (rng.standard_normal(s) if fill_g is None else np.full(s, fill_g)) for k, s in shapes.items()}
    return params, grads


@pytest.mark.parametrize("case", ["zero weights", "zero grads", "zero both", "lr=0"])
@pytest.mark.parametrize("name", DEGENERATE_NAMES)
def test_degenerate_inputs_produce_no_nan_and_no_fp_warnings(name, case):
    base = dict(NAMES[name][0]) if name in NAMES else {}
    kwargs = {**base, "weight_decay": 0.05}
    if "always_adapt" in ao.get_optimizer_info(name).hyperparams.field_names():
        kwargs["always_adapt"] = True
    fill_p, fill_g = {"zero weights": (0.0, None), "zero grads": (None, 0.0), "zero both": (0.0, 0.0),
                      "lr=0": (None, None)}[case]
    params, grads = _problem(fill_p, fill_g)
    # lr=0 as a scheduled lr (a constructor lr of 0 is refused with corrected weight decay, as in timm)
    out, _ = _degenerate_run(name, kwargs, params, grads, overrides={"lr": 0.0} if case == "lr=0" else None)
    if case == "lr=0":
        for n in params:
            np.testing.assert_array_equal(out[n], params[n])


# ------------------------------------------------------------------------------ factoring on other shapes

def _manual_parity(name, kwargs, shapes, steps=10):
    """Like ``check_parity`` on arbitrary shapes (the harness problem cannot reach every factoring rule)."""
    from oracles import assert_close, torch_default_dtype

    rng = np.random.default_rng(7)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    with torch_default_dtype(torch.float64):
        t_params = {k: torch.tensor(v).requires_grad_() for k, v in params.items()}
        oracle = timm_optim.create_optimizer_v2(list(t_params.values()), opt=name, **oracle_kwargs(kwargs))
        opt = ao.create_optimizer(name, **kwargs)
        state = opt.init(params)
        for t in range(steps):
            grads = {k: rng.standard_normal(s) for k, s in shapes.items()}
            for k, p in t_params.items():
                p.grad = torch.tensor(grads[k])
            oracle.step()
            params, state = opt.step(params, grads, state)
            for k, p in t_params.items():
                where = f"{name} step {t + 1} param {k!r}"
                assert_close(params[k], p, 1e-10, where)
                theirs = oracle.state[p]
                assert set(state[k]) == set(theirs), where
                for slot, v in theirs.items():
                    assert_close(state[k][slot], v, 1e-10, f"{where} slot {slot!r}")


@pytest.mark.parametrize("name", ["adafactor", "cadafactor"])
def test_adafactor_factoring_rules_match_timm(name):
    """Dims 0/1 of a conv, the trailing dims of an N-D weight whose dim 1 is small, and no factoring."""
    shapes = {"conv": (6, 5, 2, 2), "nd_trailing": (2, 3, 6, 5), "mat": (7, 4), "thin": (3, 20)}
    _manual_parity(name, {"weight_decay": 0.05, "min_dim_size_to_factor": 3}, shapes)
    _manual_parity(name, {"lr": 0.02, "min_dim_size_to_factor": 3}, shapes)


@pytest.mark.parametrize("momentum_dtype", ["bfloat16", "float16", None])
@pytest.mark.parametrize("name", ["adafactorbv", "cadafactorbvc"])
def test_adafactor_bv_factoring_rules_match_timm(name, momentum_dtype):
    """The two largest dims, wherever they are (non-adjacent, ties broken by index), with keepdim slots; a
    10-step trajectory with no re-sync, so the emulated bfloat16/float16 momentum must match timm's bit for bit."""
    shapes = {"a": (3, 8, 2, 5), "ties": (4, 6, 6), "vec": (9,), "mat": (5, 4)}
    _manual_parity(name, {"lr": 0.05, "weight_decay": 0.05, "min_dim_size_to_factor": 4,
                          "momentum_dtype": momentum_dtype}, shapes)


def test_adafactor_bv_momentum_dtype_is_not_a_no_op():
    """The bfloat16 momentum (timm's default) is a different trajectory from the unrounded one: the emulation
    test above could not tell them apart if the rounding did nothing."""
    shapes = {"conv": (6, 3, 3, 3), "w": (20, 18), "b": (5,)}
    rng = np.random.default_rng(3)
    params0 = {k: rng.standard_normal(s) for k, s in shapes.items()}
    runs = {}
    for md in ("bfloat16", None):
        opt = ao.create_optimizer("adafactorbv", lr=0.05, momentum_dtype=md)
        params, state = params0, opt.init(params0)
        g_rng = np.random.default_rng(4)
        for _ in range(12):
            params, state = opt.step(params, {k: g_rng.standard_normal(s) for k, s in shapes.items()}, state)
        runs[md] = params, state
    gap = max(float(np.max(np.abs(runs["bfloat16"][0][k] - runs[None][0][k])) /
                    np.max(np.abs(runs[None][0][k] - params0[k]))) for k in shapes)
    assert 1e-5 < gap < 2e-2, gap
    m = runs["bfloat16"][1]["w"]["exp_avg"]
    np.testing.assert_array_equal(m, torch.from_numpy(m).bfloat16().double().numpy())  # bfloat16 values
