"""Step inputs the adapter makes beyond grads (``arrayoptim.torch._inputs``), against timm in float64.

Adahessian: the Hessian-diagonal estimate through autograd from ``loss.backward(create_graph=True)``, drawing
timm's Rademacher vectors from its seeded generator. Kron: the random draws replayed from timm's streams (its
``random.Random(1337)`` and torch's global RNG or, ``deterministic=True``, a generator seeded from it).
Params and every state slot are compared after each step; the parity is shown to fail when the stream differs.
"""
from __future__ import annotations

import copy
import random
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

from arrayoptim.torch import ArrayOptimizer  # noqa: E402
from oracles import torch_default_dtype  # noqa: E402
from test_torch_adapter_support import assert_close, grads_for, make_net, make_tensors, set_grads, twin  # noqa: E402

pytestmark = [pytest.mark.oracle,
              pytest.mark.filterwarnings(r"ignore:Using backward\(\) with create_graph=True:UserWarning")]
RTOL = 1e-9
#: Kron against timm's own float32 triangular solve (same draws): the measured gap is ~1e-8 on these params
KRON_FLOAT32_SOLVE_RTOL = 1e-6


@pytest.fixture(autouse=True)
def _float64():
    with torch_default_dtype(torch.float64):
        yield


def _rel(ours, theirs) -> float:
    a = torch.as_tensor(ours).detach().double()
    b = torch.as_tensor(theirs).detach().double()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1e-300)) if b.numel() else 0.0


# ---------------------------------------------------------------------------------------------------- Adahessian

def _ah_compare(oa, ot, pa, pt, rtol, where, drop=()):
    """Params and state (timm keeps the estimate on ``p.hess``, here in the ``hess`` slot); the worst relative gap.

    timm zeroes ``p.hess`` of a param without a grad at a due step (recomputed before its next use); here it is
    kept: not compared on such steps."""
    worst = 0.0
    for i, (a, b) in enumerate(zip(pa, pt)):
        pairs = [(a, b, "param")]
        sa, sb = oa.state[a], ot.state[b]
        if "step" in sb:  # has had a step
            assert set(sa) == set(sb) | {"hess"}, f"{where} param {i}: {sorted(sa)} vs {sorted(sb)}"
            pairs += [(sa[k], sb[k], k) for k in sb] + ([(sa["hess"], b.hess, "hess")] if i not in drop else [])
        for x, y, what in pairs:
            assert_close(x, y, rtol, f"{where} param {i} {what}")
            if isinstance(y, torch.Tensor):
                worst = max(worst, _rel(x, y))
    return worst


def _ah_pair(kwargs, groups=None, **ours):
    """A model and its copy, timm's Adahessian on one and ArrayOptimizer's on the other (same groups)."""
    from timm.optim import Adahessian

    mt = make_net()
    ma = copy.deepcopy(mt)

    def grouped(m):
        ps = [p for p in m.parameters() if p.requires_grad]
        if not groups:
            return ps
        return [{"params": ps[:3], **groups}, {"params": ps[3:]}]

    return mt, ma, Adahessian(grouped(mt), **kwargs), ArrayOptimizer(grouped(ma), opt="adahessian", **kwargs, **ours)


def _ah_step(model, opt, x, drop=()):
    opt.zero_grad()
    model(x).square().mean().backward(create_graph=True)
    params = [p for p in model.parameters() if p.requires_grad]
    for i in drop:
        params[i].grad = None
    opt.step()


def _ah_lockstep(mt, ma, ot, oa, steps, rtol=RTOL, drops=None, seed=3):
    g = torch.Generator().manual_seed(seed)
    pt = [p for p in mt.parameters() if p.requires_grad]
    pa = [p for p in ma.parameters() if p.requires_grad]
    worst = 0.0
    for t in range(steps):
        x = torch.randn(5, 2, 6, 6, generator=g)
        drop = (drops or {}).get(t, ())
        _ah_step(mt, ot, x, drop)
        _ah_step(ma, oa, x, drop)
        worst = max(worst, _ah_compare(oa, ot, pa, pt, rtol, f"step {t + 1}", drop))
    return worst


AH_CONFIGS = [
    pytest.param({"lr": 0.05}, None, id="defaults"),
    pytest.param({"lr": 0.05, "update_each": 2, "n_samples": 3, "weight_decay": 0.01}, None,
                 id="update_each2-n_samples3"),
    pytest.param({"lr": 0.02, "update_each": 3, "n_samples": 2, "hessian_power": 0.5, "avg_conv_kernel": True,
                  "betas": (0.8, 0.95)}, {"lr": 0.05, "weight_decay": 0.1}, id="groups-avg_conv-power"),
]


@pytest.mark.parametrize("kwargs, groups", AH_CONFIGS)
def test_adahessian_matches_timm_through_autograd(kwargs, groups):
    mt, ma, ot, oa = _ah_pair(kwargs, groups)
    # a param without a grad on some steps (its "hessian step" then lags: due at different steps than the rest)
    worst = _ah_lockstep(mt, ma, ot, oa, steps=8, drops={2: (0,), 4: (3, 4), 5: (3,)})
    print(f"adahessian {kwargs}: max relative gap to timm over 8 steps {worst:.1e}")
    assert oa.generator.get_state().equal(ot.generator.get_state())  # the same number of draws


def test_adahessian_parity_fails_with_another_stream():
    """The parity above is sensitive to the draws: another seed gives another trajectory."""
    mt, ma, ot, oa = _ah_pair({"lr": 0.05})
    oa.seed = 2147483646
    with pytest.raises(AssertionError):
        _ah_lockstep(mt, ma, ot, oa, steps=2)


def test_adahessian_without_create_graph_raises_and_leaves_everything():
    model = make_net()
    opt = ArrayOptimizer(model.parameters(), opt="adahessian")
    assert opt.is_second_order and not ArrayOptimizer(model.parameters()).is_second_order
    before = [p.detach().clone() for p in model.parameters()]
    model(torch.randn(5, 2, 6, 6)).square().mean().backward()
    with pytest.raises(RuntimeError, match=r"backward\(create_graph=True\)"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(st == {"hessian step": 0} for st in opt.state.values())  # as timm creates it at construction


def test_adahessian_deepcopy_continues_the_stream_and_state_dict_resumes_like_timm():
    from timm.optim import Adahessian

    mt, ma, ot, oa = _ah_pair({"lr": 0.05, "n_samples": 2})
    g = torch.Generator().manual_seed(5)
    xs = [torch.randn(5, 2, 6, 6, generator=g) for _ in range(6)]
    for x in xs[:3]:
        _ah_step(mt, ot, x)
        _ah_step(ma, oa, x)
    ma.zero_grad()  # grads with a graph cannot be deep-copied
    mc, oc = copy.deepcopy((ma, oa))
    assert oc.generator is not oa.generator and oc.generator.get_state().equal(oa.generator.get_state())
    # a fresh optimizer loading the state dict: its generator starts at the seed again, as timm's does
    ot2 = Adahessian([p for p in mt.parameters() if p.requires_grad], lr=0.05, n_samples=2)
    ot2.load_state_dict(ot.state_dict())
    mr = copy.deepcopy(ma)
    orr = ArrayOptimizer([p for p in mr.parameters() if p.requires_grad], opt="adahessian", lr=0.05, n_samples=2)
    orr.load_state_dict(oa.state_dict())
    pt, pa, pc, pr = ([p for p in m.parameters() if p.requires_grad] for m in (mt, ma, mc, mr))
    for t, x in enumerate(xs[3:]):
        for m, o in ((ma, oa), (mc, oc), (mt, ot2), (mr, orr)):
            _ah_step(m, o, x)
        for a, c in zip(pa, pc):
            assert torch.equal(a, c), f"deepcopy step {t + 4}"
        _ah_compare(orr, ot2, pr, pt, RTOL, f"resumed step {t + 4}")


# ---------------------------------------------------------------------------------------------------------- Kron

def _solve_in_param_dtype(X, A):
    """timm's ``_solve_triangular_right`` (X @ inv(A), A upper triangular) without its float32 cast."""
    return torch.linalg.solve_triangular(A, X.reshape(-1, X.size(-1)), upper=True, left=False).reshape_as(X)


@pytest.fixture
def tk(monkeypatch):
    from timm.optim import kron

    monkeypatch.setattr(kron, "has_dynamo", False)  # timm's plain functions (no torch.compile) for the oracle
    return kron


def _kron_compare(oa, ot, pa, pt, rtol, where):
    worst = 0.0
    for i, (a, b) in enumerate(zip(pa, pt)):
        sa, sb = oa.state[a], ot.state[b]
        assert set(sa) == set(sb), f"{where} param {i}: {sorted(sa)} vs {sorted(sb)}"
        pairs = [(a, b, "param")]
        if sb:
            assert (sa["step"], sa["update_counter"]) == (sb["step"], sb["update_counter"]), where
            assert len(sa["Q"]) == len(sb["Q"]) and all(isinstance(q, torch.Tensor) for q in sa["Q"]), where
            pairs += [(sa["momentum_buffer"], sb["momentum_buffer"], "momentum_buffer")]
            pairs += [(q, r, f"Q[{k}]") for k, (q, r) in enumerate(zip(sa["Q"], sb["Q"]))]
        for x, y, what in pairs:
            assert x.dtype == y.dtype, f"{where} param {i} {what}: {x.dtype} vs {y.dtype}"
            if rtol is not None:
                assert_close(x, y, rtol, f"{where} param {i} {what}")
            worst = max(worst, _rel(x, y))
    return worst


def _kron_lockstep(oa, ot, pa, pt, grads, rtol=RTOL):
    """Step both with the same grads from the same torch global RNG state (forked: timm draws V there)."""
    worst = 0.0
    for t, gs in enumerate(grads):
        set_grads(pa, gs)
        set_grads(pt, gs)
        rng_state = torch.get_rng_state()
        oa.step()
        torch.set_rng_state(rng_state)
        ot.step()
        worst = max(worst, _kron_compare(oa, ot, pa, pt, rtol, f"step {t + 1}"))
    return worst


def _kron_pair(tk, name, kwargs, groups=None):
    info = timm_optim.get_optimizer_info(name)
    pt = make_tensors()
    pa = twin(pt)

    def grouped(ps):
        return ps if not groups else [{"params": ps[:2], **groups}, {"params": ps[2:]}]

    hp = {**(info.defaults or {}), **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm warns when opt_einsum is missing
        ot = tk.Kron(grouped(pt), **hp)
    return pt, pa, ot, ArrayOptimizer(grouped(pa), opt=name, **kwargs)


KRON_CONFIGS = [
    pytest.param("kron", {"lr": 0.01}, None, id="kron-global-rng"),
    pytest.param("kron", {"lr": 0.01, "deterministic": True, "weight_decay": 0.1, "momentum": 0.5,
                          "precond_lr": 0.3}, None, id="kron-deterministic"),
    pytest.param("kronw", {"lr": 0.01, "weight_decay": 0.1, "stochastic_weight_decay": True,
                           "preconditioner_update_probability": 0.5}, None, id="kronw-stochastic-wd-prob"),
    pytest.param("kronc", {"lr": 0.01, "weight_decay": 0.1},
                 {"lr": 0.02, "memory_save_mode": "one_diag", "flatten": True}, id="kronc-groups"),
]


@pytest.mark.parametrize("name, kwargs, groups", KRON_CONFIGS)
def test_kron_matches_timm_with_its_random_streams(tk, monkeypatch, name, kwargs, groups):
    monkeypatch.setattr(tk, "_solve_triangular_right", _solve_in_param_dtype)
    pt, pa, ot, oa = _kron_pair(tk, name, kwargs, groups)
    worst = _kron_lockstep(oa, ot, pa, pt, grads_for(pt, 8))
    print(f"{name} {kwargs}: max relative gap to timm (float64 solve) over 8 steps {worst:.1e}")
    assert oa.rng.getstate() == ot.rng.getstate()  # the same number of uniforms drawn


def test_kron_balancing_with_a_user_rng(tk, monkeypatch):
    """``optimizer.rng`` is replaceable as in timm (a seed of one's own); scripted uniforms force balancing."""
    monkeypatch.setattr(tk, "_solve_triangular_right", _solve_in_param_dtype)
    pt, pa, ot, oa = _kron_pair(tk, "kron", {"lr": 0.01, "deterministic": True})

    class Scripted(random.Random):
        def random(self):
            self.i = getattr(self, "i", -1) + 1
            return (0.5, 0.005, 0.9, 0.001)[self.i % 4]

    ot.rng, oa.rng = Scripted(7), Scripted(7)
    _kron_lockstep(oa, ot, pa, pt, grads_for(pt, 6))


def test_kron_parity_fails_with_another_stream(tk, monkeypatch):
    monkeypatch.setattr(tk, "_solve_triangular_right", _solve_in_param_dtype)
    pt, pa, ot, oa = _kron_pair(tk, "kron", {"lr": 0.01, "deterministic": True})
    oa.rng = random.Random(1338)
    with pytest.raises(AssertionError):
        _kron_lockstep(oa, ot, pa, pt, grads_for(pt, 3))


def test_kron_gap_to_timms_float32_triangular_solve(tk):
    """Unpatched timm solves the triangular systems in float32: with the same draws, the measured gap."""
    pt, pa, ot, oa = _kron_pair(tk, "kron", {"lr": 0.01})
    gap = _kron_lockstep(oa, ot, pa, pt, grads_for(pt, 8), rtol=None)
    print(f"kron via the adapter vs timm's float32 triangular solve: max relative gap {gap:.2e}")
    assert 1e-13 < gap < KRON_FLOAT32_SOLVE_RTOL


def test_kron_state_dict_interoperates_with_timm_and_deepcopy_continues(tk, monkeypatch):
    monkeypatch.setattr(tk, "_solve_triangular_right", _solve_in_param_dtype)
    kwargs = {"lr": 0.01, "deterministic": True, "weight_decay": 0.1, "stochastic_weight_decay": True}
    pt, pa, ot, oa = _kron_pair(tk, "kronw", kwargs)
    grads = grads_for(pt, 6, missing=False)
    _kron_lockstep(oa, ot, pa, pt, grads[:3])
    ca, co = copy.deepcopy((pa, oa))
    assert co.rng is not oa.rng and co.rng.getstate() == oa.rng.getstate()
    # timm's state dict (with its rng_state) into a fresh adapter, and the adapter's into a fresh timm Kron
    sd_t, sd_a = ot.state_dict(), oa.state_dict()
    assert sd_a["rng_state"] == sd_t["rng_state"]
    ra = twin(pa)
    oa2 = ArrayOptimizer(ra, opt="kronw", **kwargs)
    oa2.load_state_dict(sd_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rt = twin(pt)
        ot2 = tk.Kron(rt, **{**timm_optim.get_optimizer_info("kronw").defaults, **kwargs})
    ot2.load_state_dict(copy.deepcopy(sd_a))  # torch's load would alias (and timm then update) our tensors
    saved = [[q.clone() for q in s["Q"]] for s in sd_t["state"].values()]
    _kron_lockstep(oa2, ot2, ra, rt, grads[3:])
    for s, qs in zip(sd_t["state"].values(), saved):  # the loaded state dict was copied, not updated
        assert all(torch.equal(q, r) for q, r in zip(s["Q"], qs))
    for gs in grads[3:]:
        for ps, o in ((pa, oa), (ca, co)):
            set_grads(ps, gs)
            o.step()
        assert all(torch.equal(a, c) for a, c in zip(pa, ca))
    for i, (a, r) in enumerate(zip(pa, ra)):  # resumed from timm's checkpoint = uninterrupted
        assert_close(r, a, RTOL, f"resumed param {i}")
    assert oa2.rng.getstate() == oa.rng.getstate()


@pytest.mark.parametrize("name", ["lookahead_adahessian", "lookahead_kron"])
def test_lookahead_wrapped_step_inputs_match_timms_factory(tk, monkeypatch, name):
    """The inputs are made for the wrapped optimizer (``core.base``) under ``lookahead_``."""
    from test_torch_adapter_support import train_steps

    monkeypatch.setattr(tk, "_solve_triangular_right", _solve_in_param_dtype)
    mt = make_net()
    ma = copy.deepcopy(mt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ot = timm_optim.create_optimizer_v2(mt, opt=name, lr=0.01, weight_decay=0.05)
    import arrayoptim.torch as aot

    oa = aot.create_optimizer_v2(ma, opt=name, lr=0.01, weight_decay=0.05)
    second = oa.is_second_order
    traj_t = train_steps(mt, ot, 7, create_graph=second, torch_seed=0)
    traj_a = train_steps(ma, oa, 7, create_graph=second, torch_seed=0)
    for t, (a, b) in enumerate(zip(traj_a, traj_t)):
        assert_close(a, b, RTOL, f"{name} step {t + 1}")
    assert np.isfinite(traj_a[-1].numpy()).all()
