"""Per-group step counters are state, kept where timm keeps them, and reproduce timm in every case.

timm's Adan and LAMB count steps per param group (``group['step']``: a Python int in Adan, a 0-d tensor in LAMB)
and timm's Lookahead counts ``group['lookahead_step']``; every ``step()`` advances the counter of every group,
grads or not. Checked against the real timm/torch in float64, 1e-10 relative:

* the adapter: ``state_dict()`` equals timm's (group keys and values, ``step`` included with its type; state
  entries only for params that have stepped; every slot) after each of 20 steps in which one whole group has no
  grad at the start and again later, params miss grads and get their first grad late, also after
  ``param_groups.extend(param_groups)`` on both sides (each group visited twice per step: its counter advances
  twice, its params are stepped twice, LAMB's global clip counts their grads twice);
* the functional API: the same run with ``groups=[...]``, every param's ``step`` (``lookahead_step``) slot equal
  to its group's counter, also for params without a grad, and params without a grad untouched otherwise;
  ``to_state_dict`` puts the counters in the groups, with timm's values, and ``from_state_dict`` takes them back;
* ``jax.lax.scan`` carries the state of a step where a param has no grad (one state structure).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

import arrayoptim as ao  # noqa: E402
from arrayoptim.torch import ArrayOptimizer  # noqa: E402
from oracles import torch_default_dtype  # noqa: E402
from test_torch_adapter_support import assert_close  # noqa: E402

pytestmark = pytest.mark.oracle

RTOL = 1e-10
STEPS = 20
GROUP_COUNTED = [n for n in ao.list_optimizers() if ao.get_optimizer_info(n).counter == "group"]
NAMES = GROUP_COUNTED + ["lookahead_adamw", "lookahead_adan"]
KW = {"lr": 0.01, "weight_decay": 0.05}
SHAPES = [(4, 3), (3,), (5,), (2, 2), ()]
GROUP1 = (3, 4)  # the second group: its own lr and no weight decay


def test_names():
    assert {"adan", "adanw", "cadan", "lamb", "lambc", "clamb"} <= set(GROUP_COUNTED)


def _missing(i, t):
    """(param i, 0-based step t): the second group has no grad at all at steps 1-2 (its counter advances before
    any of its params has state) and 8-10; p0 misses step 5, p1 step 6 (Lookahead's first sync, k=6), p2 gets its
    first grad at step 4 (Adan: its previous-grad reset), p4 at step 12 (after its group-mate)."""
    return ((i in GROUP1 and t in (0, 1, 7, 8, 9)) or (i == 0 and t == 4) or (i == 1 and t == 5)
            or (i == 2 and t < 3) or (i == 4 and t < 11))


def _grads(steps=STEPS, seed=1):
    g = np.random.default_rng(seed)
    return [[None if _missing(i, t) else g.standard_normal(s) for i, s in enumerate(SHAPES)] for t in range(steps)]


def _values(seed=0):
    g = np.random.default_rng(seed)
    return [g.standard_normal(s) for s in SHAPES]


def _tensors():
    return [torch.tensor(v).requires_grad_() for v in _values()]


def _torch_groups(ts):
    return [{"params": [t for i, t in enumerate(ts) if i not in GROUP1]},
            {"params": [ts[i] for i in GROUP1], "lr": 0.02, "weight_decay": 0.0}]


def _timm(name, ts):
    return timm_optim.create_optimizer_v2(_torch_groups(ts), opt=name, **KW)


def _close(a, b, what):
    """Same kind (tensor, number, tuple, None) and value within RTOL."""
    assert isinstance(a, torch.Tensor) == isinstance(b, torch.Tensor), f"{what}: {a!r} vs {b!r}"
    if isinstance(b, torch.Tensor):
        assert a.dtype == b.dtype and a.device == b.device, f"{what}: {a.dtype} vs {b.dtype}"
        assert_close(a, b, RTOL, what)
    elif isinstance(b, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), f"{what}: {a!r} vs {b!r}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{what}[{i}]")
    elif isinstance(b, float):
        assert isinstance(a, float), f"{what}: {a!r} vs {b!r}"
        assert_close(a, b, RTOL, what)
    else:
        assert type(a) is type(b) and a == b, f"{what}: {a!r} vs {b!r}"


def assert_state_dicts_equal(ours, theirs, what):
    """Group keys and every value (``step`` with its type), state entries, slots and values."""
    assert len(ours["param_groups"]) == len(theirs["param_groups"]), f"{what}: number of groups"
    for i, (x, y) in enumerate(zip(ours["param_groups"], theirs["param_groups"])):
        assert set(x) == set(y), f"{what} group {i}: keys differ: ours only {sorted(set(x) - set(y))}, " \
                                 f"timm's only {sorted(set(y) - set(x))}"
        for k in y:
            _close(x[k], y[k], f"{what} group {i}[{k!r}]")
    assert set(ours["state"]) == set(theirs["state"]), f"{what}: state for {sorted(ours['state'])} != " \
                                                       f"{sorted(theirs['state'])}"
    for pid, slots in theirs["state"].items():
        assert set(ours["state"][pid]) == set(slots), f"{what} state[{pid}]: {sorted(ours['state'][pid])} != " \
                                                      f"{sorted(slots)}"
        for k, v in slots.items():
            _close(ours["state"][pid][k], v, f"{what} state[{pid}][{k!r}]")


@pytest.mark.parametrize("extend", [False, True], ids=["groups", "groups_listed_twice"])
@pytest.mark.parametrize("name", NAMES)
def test_adapter_state_dict_equals_timms(name, extend):
    with torch_default_dtype(torch.float64):
        ours, theirs = _tensors(), _tensors()
        a = ArrayOptimizer(_torch_groups(ours), opt=name, **KW)
        b = _timm(name, theirs)
        if extend:  # the same group dicts listed twice: visited twice per step
            a.param_groups.extend(a.param_groups)
            b.param_groups.extend(b.param_groups)
        for t, gs in enumerate(_grads()):
            for p, q, g in zip(ours, theirs, gs):
                p.grad = None if g is None else torch.tensor(g)
                q.grad = None if g is None else torch.tensor(g)
            a.step()
            b.step()
            for i, (p, q) in enumerate(zip(ours, theirs)):
                assert_close(p, q, RTOL, f"{name} step {t + 1} param {i}")
            assert_state_dicts_equal(a.state_dict(), b.state_dict(), f"{name} step {t + 1}")
        if extend:
            assert a.state_dict()["param_groups"][-1] == a.state_dict()["param_groups"][1]
        counter = "lookahead_step" if name.startswith("lookahead_") else "step"
        assert int(a.param_groups[1][counter]) == STEPS * (2 if extend else 1)


@pytest.mark.parametrize("name", NAMES)
def test_functional_counters_are_state_and_match_timm(name):
    """``ao.create_optimizer(name, groups=[...])``: every param's counter slot holds its group's count (also
    without a grad, also before its first grad), params without a grad are untouched, the rest equals timm."""
    with torch_default_dtype(torch.float64):
        names = [f"p{i}" for i in range(len(SHAPES))]
        theirs = _tensors()
        b = _timm(name, theirs)
        base = getattr(b, "_base_optimizer", b)
        opt = ao.create_optimizer(name, groups=[{"params": [names[i] for i in GROUP1], "lr": 0.02,
                                                 "weight_decay": 0.0}], **KW)
        params = dict(zip(names, _values()))
        state = opt.init(params)
        for t, gs in enumerate(_grads()):
            grads = dict(zip(names, gs))
            for q, g in zip(theirs, gs):
                q.grad = None if g is None else torch.tensor(g)
            b.step()
            before = {n: np.copy(p) for n, p in params.items()}
            params, state = opt.step(params, grads, state)
            for i, (n, q) in enumerate(zip(names, theirs)):
                where = f"{name} step {t + 1} {n}"
                assert_close(params[n], q, RTOL, where)
                if grads[n] is None:
                    np.testing.assert_array_equal(params[n], before[n])
                group = b.param_groups[1 if i in GROUP1 else 0]
                for counter in ("step", "lookahead_step"):
                    if counter in group:
                        assert float(state[n][counter]) == float(group[counter]) == t + 1, f"{where} {counter}"
                theirs_state = base.state.get(q, {})
                if "stepped" in state[n]:  # Adan: whether the param has had a grad (timm: whether it has state)
                    assert bool(state[n]["stepped"]) == bool(theirs_state), f"{where} stepped"
                for k, v in theirs_state.items():
                    assert_close(state[n][k], v, RTOL, f"{where} slot {k!r}")
        # torch's layout puts the counters in the groups, as timm's state_dict; the way back restores every slot
        sd = ao.to_state_dict(opt, state, order=[n for i, n in enumerate(names) if i not in GROUP1] +
                              [names[i] for i in GROUP1])
        for ours_g, theirs_g in zip(sd["param_groups"], b.state_dict()["param_groups"]):
            for counter in ("step", "lookahead_step"):
                assert (counter in ours_g) == (counter in theirs_g)
                if counter in theirs_g:
                    assert float(ours_g[counter]) == float(theirs_g[counter]) == STEPS
        assert all(c not in st for st in sd["state"].values() for c in ("step", "lookahead_step")
                   if c in sd["param_groups"][0])
        back = ao.from_state_dict(sd, params)
        for n in names:
            assert set(back[n]) == set(state[n]) and all(np.array_equal(back[n][k], v) for k, v in state[n].items())


@pytest.mark.parametrize("name", ["adan", "lamb"])
def test_jax_scan_carries_the_counter_of_a_param_without_grad(name):
    """One state structure across steps: ``jax.lax.scan`` over 5 steps in which ``b`` never has a grad; its
    ``step`` slot advances with its group's count, as the NumPy run's."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    opt = ao.create_optimizer(name, lr=0.01, weight_decay=0.05)
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    gs = rng.standard_normal((5, 3, 2))
    p, s = params, opt.init(params)
    for g in gs:
        p, s = opt.step(p, {"w": g, "b": None}, s)

    def body(carry, g):
        pj, sj = carry
        return opt.step(pj, {"w": g, "b": None}, sj), None

    pj = {k: jnp.asarray(v) for k, v in params.items()}
    (pj, sj), _ = jax.lax.scan(body, (pj, opt.init(pj)), jnp.asarray(gs))
    assert float(sj["b"]["step"]) == float(s["b"]["step"]) == 5
    for k in params:
        np.testing.assert_allclose(np.asarray(pj[k]), p[k], rtol=1e-12)
        for slot, v in s[k].items():
            np.testing.assert_allclose(np.asarray(sj[k][slot]), np.asarray(v), rtol=1e-12, err_msg=f"{k} {slot}")


def _run(opt, tensors, grads):
    for gs in grads:
        for p, g in zip(tensors, gs):
            p.grad = None if g is None else torch.tensor(g)
        opt.step()


@pytest.mark.parametrize("extend", [False, True], ids=["groups", "groups_listed_twice"])
@pytest.mark.parametrize("direction", ["theirs_into_ours", "ours_into_theirs"])
@pytest.mark.parametrize("name", ["adan", "lamb", "lookahead_adan", "lookahead_adamw"])
def test_state_dict_moves_the_counters_both_ways(name, direction, extend):
    """10 steps on one side, its ``state_dict()`` loaded into the other and into a fresh timm optimizer, 10 more
    side by side: equal state_dicts throughout (the switch comes after the second group's gradless steps, before
    p4's first grad). Without repeated groups the resumed run is timm's uninterrupted one, too. (torch's
    ``load_state_dict`` makes a group listed twice two dicts: both sides then count them apart.)"""
    grads = _grads()
    with torch_default_dtype(torch.float64):
        def make(kind, ts):
            opt = _timm(name, ts) if kind == "timm" else ArrayOptimizer(_torch_groups(ts), opt=name, **KW)
            if extend:
                opt.param_groups.extend(opt.param_groups)
            return opt

        first_ts = _tensors()
        first = make("timm" if direction == "theirs_into_ours" else "ours", first_ts)
        _run(first, first_ts, grads[:10])
        saved = first.state_dict()
        uninterrupted = None if extend else first if direction == "theirs_into_ours" else None
        if not extend and uninterrupted is None:
            uninterrupted_ts = _tensors()
            uninterrupted = make("timm", uninterrupted_ts)
            _run(uninterrupted, uninterrupted_ts, grads[:10])
        elif uninterrupted is not None:
            uninterrupted_ts = first_ts
        pairs = []
        for kind in ("ours" if direction == "theirs_into_ours" else "timm", "timm"):
            ts = [p.detach().clone().requires_grad_() for p in first_ts]
            opt = make(kind, ts)
            opt.load_state_dict(copy.deepcopy(saved))
            pairs.append((opt, ts))
        (second, second_ts), (ref, ref_ts) = pairs
        assert_state_dicts_equal(second.state_dict(), ref.state_dict(), f"{name} {direction} after loading")
        for t, gs in enumerate(grads[10:], start=11):
            for opt, ts in pairs:
                _run(opt, ts, [gs])
            for i, (p, q) in enumerate(zip(second_ts, ref_ts)):
                assert_close(p, q, RTOL, f"{name} {direction} step {t} param {i}")
            assert_state_dicts_equal(second.state_dict(), ref.state_dict(), f"{name} {direction} step {t}")
            if uninterrupted is not None:
                _run(uninterrupted, uninterrupted_ts, [gs])
                assert_state_dicts_equal(second.state_dict(), uninterrupted.state_dict(), f"{name} step {t}")


def test_float32_step_count_stalls_at_2_to_the_24_as_torchs():
    """A float32 ``step`` slot (float32 params) stops counting at 2**24 = 16,777,216, exactly as torch.optim's
    float32 ``state['step']`` tensor does (``step += 1`` rounds back); a float64 one counts on. timm's optimizers
    that keep a Python int (AdaBelief, Adafactor, AdamP, MADGRAD, MARS, NAdamLegacy, NvNovoGrad, RAdamLegacy,
    Adahessian) count on: there the two differ from step 2**24 on (README, "Counters")."""
    torch = pytest.importorskip("torch")
    for dtype, stalls in ((np.float32, True), (np.float64, False)):
        opt = ao.create_optimizer("adam")
        p = {"w": np.ones(3, dtype=dtype)}
        s = opt.init(p)
        s["w"]["step"] = np.asarray(2.0 ** 24, dtype=dtype)
        _, s = opt.step(p, {"w": np.ones(3, dtype=dtype)}, s)
        assert (float(s["w"]["step"]) == 2.0 ** 24) is stalls
    tp = torch.ones(3, requires_grad=True)
    t = torch.optim.Adam([tp])
    tp.grad = torch.ones(3)
    t.step()
    t.state[tp]["step"].fill_(2.0 ** 24)
    t.step()
    assert float(t.state[tp]["step"]) == 2.0 ** 24  # torch's own counter stalls the same way
