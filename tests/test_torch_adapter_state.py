"""``state_dict`` interop of ArrayOptimizer with torch.optim and timm, for every registered name they anchor.

Every case trains 5 steps, moves the state across with ``state_dict``/``load_state_dict`` (theirs into ours, ours
into theirs, ours into ours) and trains 5 more; params and the whole state_dict (in the anchor's layout: slot names,
Python numbers vs tensors, group counters) are compared with an uninterrupted run of the torch/timm class right
after loading and after every later step, in float64 (1e-9 relative unless a documented gap applies). A state_dict
for a different param layout (or of another optimizer) raises ``ValueError`` and changes nothing.
"""
from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

import arrayoptim as ao  # noqa: E402
import arrayoptim.torch as aot  # noqa: E402
from arrayoptim.torch import ArrayOptimizer  # noqa: E402
from oracles import hparams_from_torch, torch_default_dtype  # noqa: E402
from test_torch_adapter_support import (  # noqa: E402
    assert_close, grads_for, make_tensors, set_grads, step_takes, torch_anchored, twin,
)

pytestmark = pytest.mark.oracle
RTOL = 1e-9
#: documented gaps of the core to its anchor (see tests/test_torch_adapter.py and tests/test_torch_adapter_timm.py)
NAME_RTOL = {
    "torchmuon": 2e-3,  # torch runs Newton-Schulz in bfloat16
    "radamlegacy": 1e-6,  # timm computes RAdamLegacy in float32
    **{n: 1e-4 for n in ("muon", "nmuon", "adamuon", "nadamuon")},  # timm's bfloat16 Newton-Schulz matmuls
    **{n: 1e-6 for n in ("kron", "kronc", "kronw")},  # timm's float32 triangular solve
}
#: extra keywords per name: Kron draws from its state_dict's ``rng_state`` alone with ``deterministic=True``
#: (otherwise also from torch's global RNG, which no state_dict carries)
NAME_KWARGS = {n: {"deterministic": True} for n in ("kron", "kronc", "kronw")}
DIRECTIONS = ["theirs_into_ours", "ours_into_theirs", "ours_into_ours"]
#: group keys torch's classes default in ``__setstate__`` when a loaded group lacks them
TORCH_DEFAULTED = {"capturable", "differentiable", "fused"}
#: steps before the switch, steps after
BEFORE, AFTER = 5, 5


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """torch's intra-op threads cost ~7 ms per tiny bfloat16 matmul (timm's Muon) on 2 threads, 10 us on one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TORCH_ANCHORED = torch_anchored()
TORCH_DENSE = sorted(c for c, n in TORCH_ANCHORED.items() if not step_takes(n, "closure", "grad_mask"))
#: non-default kwargs that make the interesting slots exist
TORCH_KWARGS = {
    "SGD": {"momentum": 0.9, "nesterov": True}, "Adam": {"amsgrad": True}, "AdamW": {"weight_decay": 0.1},
    "RMSprop": {"momentum": 0.9, "centered": True}, "Adagrad": {"lr_decay": 0.01}, "NAdam": {"momentum_decay": 0.004},
    "RAdam": {"decoupled_weight_decay": True, "weight_decay": 0.1}, "ASGD": {"t0": 2.0}, "Rprop": {},
}


def _timm_names():
    """Registered names timm's factory builds, except the torch-anchored ones (tested against torch directly)."""
    timm_names = set(timm_optim.list_optimizers())
    own = set(TORCH_ANCHORED.values())
    out = []
    for name in ao.list_optimizers():
        if name in own or name not in timm_names or step_takes(name, "closure", "grad_mask"):
            continue
        if ao.get_optimizer_info(name).second_order:
            continue  # Adahessian: its own test below (timm's Hessian draws are not in its state_dict)
        out.append(name)
    return out


TIMM_NAMES = _timm_names()


# --------------------------------------------------------------------------------------------------- comparison

def _kind(v):
    if isinstance(v, torch.Tensor):
        return "tensor"
    if isinstance(v, (list, tuple)):
        return "list"
    return "none" if v is None else "number"


#: slots whose type in the anchor depends on the code path (torch's LBFGS ``t`` and ``H_diag``: numbers at first,
#: tensors after, or the other way round): compared by value only
ANY_KIND = {"'t'", "'H_diag'"}


def _close(a, b, rtol, what):
    if not any(k in what for k in ANY_KIND):
        assert _kind(a) == _kind(b), f"{what}: {type(a).__name__} != {type(b).__name__} (the anchor's layout)"
    if isinstance(b, (list, tuple)):
        assert len(a) == len(b), f"{what}: {len(a)} entries != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, rtol, f"{what}[{i}]")
    elif b is not None:
        assert_close(a, b, rtol, what)


def assert_state_dicts_close(ours, theirs, rtol, what, group_keys=True, drop=()):
    """Same groups (params, counters, the keys the anchor reads), same per-param slots (but ``drop``), values
    within rtol."""
    assert len(ours["param_groups"]) == len(theirs["param_groups"]), f"{what}: number of groups"
    for i, (x, y) in enumerate(zip(ours["param_groups"], theirs["param_groups"])):
        assert x["params"] == y["params"], f"{what} group {i} params"
        if group_keys:
            missing = set(y) - set(x) - TORCH_DEFAULTED
            assert not missing, f"{what} group {i}: keys the anchor keeps are missing: {sorted(missing)}"
        for k in ("step", "lookahead_step"):
            assert (k in x) == (k in y), f"{what} group {i}: {k!r} in one group only"
            if k in y:
                assert x[k] == y[k] and _kind(x[k]) == _kind(y[k]), f"{what} group {i}[{k!r}]: {x[k]} != {y[k]}"
    sa = {k: {s: x for s, x in v.items() if s not in drop} for k, v in ours["state"].items() if v}
    sb = {k: {s: x for s, x in v.items() if s not in drop} for k, v in theirs["state"].items() if v}
    assert set(sa) == set(sb), f"{what}: state for params {sorted(sa)} != {sorted(sb)}"
    for pid, slots in sb.items():
        assert set(sa[pid]) == set(slots), f"{what} state[{pid}]: slots {sorted(sa[pid])} != {sorted(slots)}"
        for k, v in slots.items():
            _close(sa[pid][k], v, rtol, f"{what} state[{pid}][{k!r}]")


def _params_close(ours, theirs, rtol, what):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a, b, rtol, f"{what} param {i}")


_REFERENCE: dict = {}


def _reference(key, make_theirs, tensors, grads, step):
    """The uninterrupted anchor run: (params, state_dict) copies before the first step and after each step (cached
    per ``key``: the three directions share it)."""
    if key not in _REFERENCE:
        ps = twin(tensors)
        opt = make_theirs(ps)
        out = [([p.detach().clone() for p in ps], copy.deepcopy(opt.state_dict()))]
        for g in grads:
            step(opt, ps, g)
            out.append(([p.detach().clone() for p in ps], copy.deepcopy(opt.state_dict())))
        _REFERENCE[key] = out
    return _REFERENCE[key]


def _default_step(opt, ps, g):
    set_grads(ps, g)
    opt.step()


def resume(key, make_theirs, make_ours, tensors, grads, direction, rtol, step=_default_step, switch=BEFORE):
    """Train ``switch`` steps with the first optimizer, load its state_dict into the second, train the rest;
    compare with an uninterrupted run of the anchor after loading and after every later step. Returns the
    largest relative difference seen (params and state)."""
    ref = _reference(key, make_theirs, tensors, grads, step)
    if direction == "theirs_into_ours":  # the anchor's first steps are the reference's
        start, saved = ref[switch]
    else:
        start = twin(tensors)
        o1 = make_ours(start)
        for g in grads[:switch]:
            step(o1, start, g)
        saved = copy.deepcopy(o1.state_dict())
    second = twin([p.detach() for p in start])
    for p in second:
        p.requires_grad_()
    o2 = make_theirs(second) if direction == "ours_into_theirs" else make_ours(second)
    o2.load_state_dict(copy.deepcopy(saved))
    assert_state_dicts_close(o2.state_dict(), ref[switch][1], rtol, f"{direction} after loading")
    for t, g in enumerate(grads[switch:], start=switch + 1):
        step(o2, second, g)
        _params_close(second, ref[t][0], rtol, f"{direction} step {t}")
        assert_state_dicts_close(o2.state_dict(), ref[t][1], rtol, f"{direction} step {t}")
    return saved


# ----------------------------------------------------------------------------------------------- torch.optim

def _torch_tensors(clsname):
    ts = make_tensors()
    return [t for t in ts if t.ndim == 2] if clsname == "Muon" else ts  # torch's Muon takes matrices only


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("clsname", TORCH_DENSE)
def test_torch_state_dict_resumes_exactly(clsname, direction):
    cls, name = getattr(torch.optim, clsname), TORCH_ANCHORED[clsname]
    kwargs = {"lr": 0.01, **TORCH_KWARGS.get(clsname, {})}
    with torch_default_dtype(torch.float64):
        hp = hparams_from_torch(cls([torch.zeros(2, 2, requires_grad=True)], **kwargs).defaults, name)
        ts = _torch_tensors(clsname)
        grads = grads_for(ts, BEFORE + AFTER, missing=len(ts) > 3)
        resume(("torch", clsname), lambda ps: cls(ps, **kwargs), lambda ps: ArrayOptimizer(ps, opt=name, **hp), ts,
               grads, direction, NAME_RTOL.get(name, RTOL))


def _closure(opt, ps, targets):
    def closure():
        opt.zero_grad()
        loss = sum(((p - c) ** 2).sum() + 0.1 * (p ** 4).sum() for p, c in zip(ps, targets))
        loss.backward()
        return loss
    return closure


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("kwargs", [{"lr": 0.5, "history_size": 5, "max_iter": 2},
                                    {"line_search_fn": "strong_wolfe", "history_size": 3, "max_iter": 4}],
                         ids=["partial_history", "strong_wolfe_full_history"])
def test_lbfgs_state_dict_resumes_exactly(kwargs, direction):
    """torch keeps the history as lists (``al`` with ``None`` for entries not filled yet); the core as fixed-shape
    arrays: both load into either, and the run continues exactly."""
    assert "LBFGS" in TORCH_ANCHORED, "lbfgs no longer maps to torch.optim.LBFGS"
    name = TORCH_ANCHORED["LBFGS"]
    with torch_default_dtype(torch.float64):
        ts = [t for t in make_tensors() if t.is_contiguous()]  # torch's LBFGS .view(-1)s the grads
        g = torch.Generator().manual_seed(4)
        targets = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in ts]
        hp = hparams_from_torch(torch.optim.LBFGS([torch.zeros(2, requires_grad=True)], **kwargs).defaults, name)
        def step(opt, ps, _):
            opt.step(_closure(opt, ps, targets))

        saved = resume(("lbfgs", str(kwargs)), lambda ps: torch.optim.LBFGS(ps, **kwargs),
                       lambda ps: ArrayOptimizer(ps, opt=name, **hp), ts, [None] * 5, direction, RTOL, step=step,
                       switch=2)["state"][0]
    if kwargs["max_iter"] == 2:  # 1 pair of 5 stored: torch's al has None entries (the core keeps zeros)
        assert len(saved["old_dirs"]) == 1 and saved["al"][1:] == [None] * 4


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_sparseadam_state_dict_resumes_exactly(direction):
    assert "SparseAdam" in TORCH_ANCHORED, "sparseadam no longer maps to torch.optim.SparseAdam"
    name = TORCH_ANCHORED["SparseAdam"]
    torch.manual_seed(0)
    weights = [torch.randn(10, 3, dtype=torch.float64, requires_grad=True)]

    def step(opt, ps, t):
        opt.zero_grad()
        idx = torch.tensor([[t % 10, 3, 3], [7, (2 * t) % 10, 1]])
        torch.nn.functional.embedding(idx, ps[0], sparse=True).square().sum().backward()
        opt.step()

    resume("sparseadam", lambda ps: torch.optim.SparseAdam(ps, lr=0.05),
           lambda ps: ArrayOptimizer(ps, opt=name, lr=0.05), weights, list(range(BEFORE + AFTER)), direction, RTOL,
           step=step)


# ------------------------------------------------------------------------------------------------------ timm

def _groups(ps):
    """Two param groups (group counters are per group), the second without weight decay."""
    return [{"params": ps[:2]}, {"params": ps[2:], "weight_decay": 0.0}]


def _timm(name, **kw):
    def make(ps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return timm_optim.create_optimizer_v2(_groups(ps), opt=name, lr=0.01, weight_decay=0.05, **kw)
    return make


def _ours(name, **kw):
    return lambda ps: aot.create_optimizer_v2(_groups(ps), opt=name, lr=0.01, weight_decay=0.05, **kw)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", TIMM_NAMES)
def test_timm_state_dict_resumes_exactly(name, direction):
    """Every timm-registered name, through both factories, two param groups, grads missing at some steps (timm's
    Adan/LAMB count steps per group: the counter moves between ``group['step']`` and the per-param slots)."""
    with torch_default_dtype(torch.float64):  # timm keeps some scalar state in the default dtype
        ts = make_tensors()
        kw = NAME_KWARGS.get(name, {})
        resume(("timm", name), _timm(name, **kw), _ours(name, **kw), ts,
               grads_for(ts, BEFORE + AFTER), direction, NAME_RTOL.get(name, RTOL))


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("base", ["adamw", "adan", "madgrad", "sgd"])
def test_lookahead_state_dict_resumes_exactly(base, direction):
    """timm's Lookahead counts ``lookahead_step`` per group (the core: per-param slots synced to the group's count),
    ``k=2`` so that the slow weights sync before and after the switch; grads missing at some steps."""
    def theirs(ps):
        return timm_optim.Lookahead(_timm(base)(ps), alpha=0.5, k=2)

    with torch_default_dtype(torch.float64):
        ts = make_tensors()
        resume(("lookahead", base), theirs, _ours(f"lookahead_{base}", lookahead_k=2), ts,
               grads_for(ts, BEFORE + AFTER), direction, RTOL)


@pytest.mark.parametrize("source", ["timm", "ours"])
def test_adahessian_state_dict_loads_both_ways(source):
    """timm keeps Adahessian's Hessian estimate on the param (``p.hess``) and its Rademacher generator on the
    optimizer, neither in its state_dict, so a resumed timm run draws from the seed again and differs from the
    uninterrupted one. Instead a fresh timm Adahessian and a fresh adapter load the same state_dict (timm's Python
    int ``step`` becomes the core's 0-d tensor and back) and continue side by side; the adapter's extra ``hess``
    slot (timm's ``p.hess``) is not compared."""
    g = torch.Generator().manual_seed(4)
    ts = make_tensors()
    targets = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in ts]

    def step(opt, ps):
        opt.zero_grad()
        loss = sum(((p - c) ** 2 * (1 + p ** 2)).sum() for p, c in zip(ps, targets))
        with warnings.catch_warnings():  # torch warns of the param <-> grad cycle; the grads are dropped below
            warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
            loss.backward(create_graph=True)
        opt.step()
        for p in ps:
            p.grad = None

    with torch_default_dtype(torch.float64):
        first = twin(ts)
        o1 = (_timm if source == "timm" else _ours)("adahessian")(first)
        for _ in range(BEFORE):
            step(o1, first)
        saved = copy.deepcopy(o1.state_dict())
        pt, pa = twin([p.detach() for p in first]), twin([p.detach() for p in first])
        for p in pt + pa:
            p.requires_grad_()
        ot, oa = _timm("adahessian")(pt), _ours("adahessian")(pa)
        ot.load_state_dict(copy.deepcopy(saved))
        oa.load_state_dict(copy.deepcopy(saved))
        assert all(isinstance(s["step"], torch.Tensor) for s in oa.state.values() if s)
        assert_state_dicts_close(oa.state_dict(), ot.state_dict(), RTOL, f"{source}'s loaded", drop={"hess"})
        for t in range(AFTER):
            step(ot, pt)
            step(oa, pa)
            _params_close(pa, pt, RTOL, f"step {BEFORE + t + 1}")
            assert_state_dicts_close(oa.state_dict(), ot.state_dict(), RTOL, f"step {BEFORE + t + 1}", drop={"hess"})


def test_state_dict_does_not_change_the_optimizer():
    """Saving converts copies (a Python-number ``step`` in the saved state, a tensor slot in ours); Adan's counter
    lives in the group, as timm's, and the next step goes on from it."""
    ts = make_tensors()
    opt = ArrayOptimizer(ts, opt="adabelief", lr=0.01)
    set_grads(ts, [torch.ones_like(p) for p in ts])
    opt.step()
    sd = opt.state_dict()
    assert all(type(s["step"]) is int for s in sd["state"].values())
    assert all(isinstance(opt.state[p]["step"], torch.Tensor) for p in ts)
    opt = ArrayOptimizer(ts, opt="adan", lr=0.01)
    opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["step"] == 1 and all("step" not in s for s in sd["state"].values())
    sd["param_groups"][0]["step"] = 5
    assert opt.param_groups[0]["step"] == 1
    opt.step()
    assert opt.state_dict()["param_groups"][0]["step"] == 2


# ------------------------------------------------------------------------------------------- layout errors

def _snapshot(opt):
    return copy.deepcopy(opt.state_dict()), [dict(g, params=None) for g in opt.param_groups]


def _assert_unchanged(opt, snap):
    sd, groups = snap
    assert [dict(g, params=None) for g in opt.param_groups] == groups
    assert_state_dicts_close(opt.state_dict(), sd, 0.0, "after a refused load")


def _trained(name, ts, steps=2, **kw):
    opt = ArrayOptimizer(ts, opt=name, **kw)
    for _ in range(steps):
        if opt._closure_driven():
            opt.step(_closure(opt, ts, [torch.zeros_like(p) for p in ts]))
        else:
            set_grads(ts, [torch.ones_like(p) for p in ts])
            opt.step()
    return opt


LAYOUT_NAMES = ["adamw", "momentum", "adan", "lamb", "adafactor", "torchadafactor", "rprop", "lbfgs",
                "lookahead_adamw", "nadamlegacy"]


@pytest.mark.parametrize("name", [n for n in LAYOUT_NAMES
                                  if ao.get_optimizer_info(n.replace("lookahead_", "")) is not None])
def test_another_param_layout_raises_and_changes_nothing(name):
    ts = [t for t in make_tensors() if t.is_contiguous()]
    opt = _trained(name, ts, lr=0.1)
    snap = _snapshot(opt)
    # same number of params, other shapes
    other = _trained(name, [torch.full((2, 2), 0.5, dtype=torch.float64, requires_grad=True) for _ in ts], lr=0.1)
    with pytest.raises(ValueError, match="shape|lacks the slots"):
        opt.load_state_dict(other.state_dict())
    _assert_unchanged(opt, snap)
    # fewer params in the group
    fewer = _trained(name, [torch.zeros(2, dtype=torch.float64, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(fewer.state_dict())
    # more groups
    sd = opt.state_dict()
    two = {"state": sd["state"], "param_groups": [dict(sd["param_groups"][0], params=[0]),
                                                  dict(sd["param_groups"][0], params=list(range(1, len(ts))))]}
    with pytest.raises(ValueError, match="number of parameter groups"):
        opt.load_state_dict(two)
    # hyperparameters this optimizer refuses
    bad = copy.deepcopy(opt.state_dict())
    bad["param_groups"][0]["lr"] = -1.0
    with pytest.raises(ValueError, match="refuses"):
        opt.load_state_dict(bad)
    _assert_unchanged(opt, snap)


@pytest.mark.parametrize("source, target, match", [
    ("momentum", "adamw", "lacks the slots"),
    ("adamw", "momentum", "does not use"),
    ("adamw", "adan", "refuses"),  # timm's Adan has three betas
    ("adan", "lamb", "refuses"),
    ("lookahead_adamw", "adamw", "does not use"),  # the slow weights (after k=6 steps)
    ("adamw", "lbfgs", "L-BFGS does not use"),
])
def test_another_optimizers_state_raises_and_changes_nothing(source, target, match):
    ts = [t for t in make_tensors() if t.is_contiguous()]
    src = _trained(source, twin(ts), steps=6, lr=0.1)
    opt = _trained(target, ts, lr=0.1)
    snap = _snapshot(opt)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(src.state_dict())
    _assert_unchanged(opt, snap)


def test_torch_state_of_another_layout_raises():
    ts = make_tensors()
    opt = _trained("adamw", ts, lr=0.1)
    snap = _snapshot(opt)
    other = [torch.zeros(2, 2, requires_grad=True) for _ in ts]
    o2 = torch.optim.AdamW(other, lr=0.5)
    set_grads(other, [torch.ones_like(p) for p in other])
    o2.step()
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(o2.state_dict())
    with pytest.raises(ValueError, match="state_dict must be a dict"):
        opt.load_state_dict([1, 2])
    _assert_unchanged(opt, snap)


# ---------------------------------------------------------------------------------------------------- copies

def test_loaded_state_does_not_alias_the_callers_dict():
    ts = make_tensors()
    a = _trained("adamw", ts, steps=1, lr=0.1)
    sd = a.state_dict()
    b = ArrayOptimizer(twin(ts), opt="adamw", lr=0.1)
    b.load_state_dict(sd)
    snapshot = sd["state"][0]["exp_avg"].clone()
    bp = b.param_groups[0]["params"]
    set_grads(bp, [torch.ones_like(p) for p in bp])
    b.step()
    assert torch.equal(sd["state"][0]["exp_avg"], snapshot)


def test_float32_step_counter_from_torch_becomes_float64_for_float64_params():
    ts = make_tensors()
    b = torch.optim.AdamW(twin(ts), lr=0.1)  # default dtype float32: torch's step counter is float32
    bp = b.param_groups[0]["params"]
    set_grads(bp, [torch.ones_like(p) for p in bp])
    b.step()
    assert b.state[bp[0]]["step"].dtype == torch.float32
    a = ArrayOptimizer(ts, opt="adamw", lr=0.1)
    a.load_state_dict(b.state_dict())
    assert a.state[ts[0]]["step"].dtype == torch.float64


def test_timm_python_int_step_becomes_a_tensor_and_goes_back():
    ts = make_tensors()
    with torch_default_dtype(torch.float64):
        b = _timm("madgrad")(twin(ts))
        bp = [p for g in b.param_groups for p in g["params"]]
        set_grads(bp, [torch.ones_like(p) for p in bp])
        b.step()
    a = _ours("madgrad")(ts)
    a.load_state_dict(b.state_dict())
    assert isinstance(a.state[ts[0]]["step"], torch.Tensor) and a.state[ts[0]]["step"].dtype == torch.float64
    assert type(a.state_dict()["state"][0]["step"]) is int


# ------------------------------------------------------------------------------------------ layout vs anchor

def _layout_names():
    """Every registered name, and its ``lookahead_`` name where timm's factory builds one (plain-grad steps)."""
    names = ao.list_optimizers()
    timm_names = set(timm_optim.list_optimizers())
    wrapped = [f"lookahead_{n}" for n in names if n in timm_names and not ao.get_optimizer_info(n).step_inputs
               and not ao.get_optimizer_info(n).second_order]
    return names + wrapped


def _layout_step(info, opt, ps, g):
    """One step of ``opt`` in which ``ps[1]`` has no grad (never), driven as its anchor takes inputs."""
    used = (ps[0], ps[2])

    def loss():
        return sum(((p - 0.5) ** 2 * (1 + p ** 2)).sum() for p in used)

    opt.zero_grad()
    if info.takes("closure"):
        def closure():
            opt.zero_grad()
            out = loss()
            out.backward()
            return out
        opt.step(closure)
        return
    if info.second_order:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
            loss().backward(create_graph=True)
    else:
        for p in used:
            grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            p.grad = grad.to_sparse() if info.takes("grad_mask") else grad
    opt.step()
    for p in ps:
        p.grad = None


@pytest.mark.parametrize("name", _layout_names())
def test_layout_mirrors_the_anchor(name):
    """After 3 steps in which one param never has a grad, ``state_dict()`` has the anchor's group keys (torch's
    ``foreach``/``capturable``/``differentiable``/``fused`` with the anchor's values, timm's counters, nothing the
    anchor lacks) and state entries for the stepped params only, as the anchor (torch.optim class or timm's
    factory, as ``arrayoptim verify`` builds it); ``opt.state`` has an entry for the param without a grad only
    where the anchor creates state at construction (torch's Adagrad, timm's Adahessian)."""
    from arrayoptim.testing import Skip, oracle_for

    info = ao.get_optimizer_info(name.removeprefix("lookahead_"))
    spec = oracle_for(name, lr=0.01)
    assert not isinstance(spec, Skip), spec.reason  # every registered name has an oracle: a broken mapping fails
    with torch_default_dtype(torch.float64), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = ([torch.randn(s, generator=torch.Generator().manual_seed(i), dtype=torch.float64)
                         .requires_grad_() for i, s in enumerate([(4, 3), (3, 2), (5, 2)])] for _ in range(2))
        a = ArrayOptimizer(ours, opt=name, **spec.ours_kwargs)
        b = spec.make_oracle([{"params": theirs}])
        b = getattr(b, "opt", b)
        for opt, ps in ((a, ours), (b, theirs)):
            g = torch.Generator().manual_seed(1)
            for _ in range(3):
                _layout_step(info, opt, ps, g)
        sa, sb = a.state_dict(), b.state_dict()
    ga, gb = sa["param_groups"][0], sb["param_groups"][0]
    assert set(ga) == set(gb), f"{name}: group keys: ours only {sorted(set(ga) - set(gb))}, the anchor's only " \
                               f"{sorted(set(gb) - set(ga))}"
    for k in ("foreach", "fused", "capturable", "differentiable"):
        if k in gb:
            assert ga[k] == gb[k], f"{name}: group[{k!r}] {ga[k]!r} != {gb[k]!r}"
    assert set(sa["state"]) == set(sb["state"]), f"{name}: state for {sorted(sa['state'])} != {sorted(sb['state'])}"
    their_state = getattr(b, "_base_optimizer", b).state
    assert (ours[1] in a.state) == bool(their_state.get(theirs[1])), f"{name}: opt.state of the param without grad"
