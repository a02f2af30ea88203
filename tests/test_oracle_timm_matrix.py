"""timm's matrix and second-order optimizers (Muon, Adahessian, Kron) against timm, in float64, step by step.

Where timm is not deterministic in float64 by itself, the difference is made equal first:

* Muon: timm always runs Newton-Schulz in bfloat16. Parity is checked with timm's own
  ``zeropower_via_newtonschulz`` forced to float64 (monkeypatched for the test) against ``ns_dtype=None``; the gap
  between our bfloat16 emulation and timm's real bfloat16 is measured and bounded.
* Adahessian: timm draws Rademacher vectors from its own generator and takes Hessian-vector products with autograd;
  the test computes timm's estimate with timm's generator and feeds the same estimate to ours.
* Kron: timm's Python RNG and torch draws are replayed through the explicit ``draws=`` input.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import arrayoptim as ao
from oracles import assert_close, check_parity, grad_schedule, make_params, torch_default_dtype, torch_groups

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

pytestmark = pytest.mark.oracle

from arrayoptim.optimizers import muon as ao_muon  # noqa: E402


# ========================================================================================================== Muon
@pytest.fixture
def timm_ns_float64(monkeypatch):
    """timm's Muon with its Newton-Schulz run in float64 (timm hard-codes bfloat16 at the call site)."""
    from timm.optim import muon as tm

    monkeypatch.setattr(tm, "zeropower_via_newtonschulz",
                        functools.partial(tm.zeropower_via_newtonschulz, dtype=torch.float64))
    return tm


NS_SHAPES = [(5, 7), (7, 5), (16, 16), (3, 6, 4), (2, 9, 5)]


@pytest.mark.parametrize("scale_eps, safety", [(False, 1.0), (True, 1.02)], ids=["clamp", "scale_eps"])
@pytest.mark.parametrize("preset", sorted(ao_muon.NS_COEFFICIENTS))
@pytest.mark.parametrize("steps", [3, 5, 10])
def test_newton_schulz_float64_matches_timm_float64(preset, steps, scale_eps, safety):
    from timm.optim import muon as tm

    rng = np.random.default_rng(steps)
    coeffs = tm.resolve_ns_coefficients(preset, tm._COEFFICIENTS)
    assert [tuple(c) for c in coeffs] == list(ao_muon.NS_COEFFICIENTS[preset])
    for shape in NS_SHAPES:
        G = rng.standard_normal(shape) * 3.0
        ours = ao_muon.zeropower_via_newtonschulz(np, G, steps, preset, eps=1e-7, safety_factor=safety,
                                                  scale_eps=scale_eps, ns_dtype=None)
        theirs = tm.zeropower_via_newtonschulz(torch.tensor(G), steps, coeffs, eps=1e-7, safety_factor=safety,
                                               dtype=torch.float64, scale_eps=scale_eps).numpy()
        assert ours.dtype == np.float64
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12, err_msg=f"{preset} {shape}")


def test_newton_schulz_float64_matches_an_independent_reference():
    """A plain NumPy transcription of the iteration (no shared code), and orthogonality after many steps."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 9))
    X = G / max(np.linalg.norm(G), 1e-7)
    for a, b, c in ao_muon.NS_COEFFICIENTS["quintic"]:
        A = X @ X.T
        X = a * X + (b * A + c * A @ A) @ X
    np.testing.assert_allclose(ao_muon.zeropower_via_newtonschulz(np, G, 5, "quintic", ns_dtype=None), X,
                               rtol=0, atol=1e-12)
    O = ao_muon.zeropower_via_newtonschulz(np, G, 40, [(1.5, -0.5, 0.0)], ns_dtype=None)  # cubic NS converges
    U, _, Vt = np.linalg.svd(G, full_matrices=False)
    np.testing.assert_allclose(O, U @ Vt, atol=1e-12)


def test_round_to_bfloat16_is_torch_bfloat16():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(200_000) * 10.0 ** rng.integers(-38, 38, 200_000)).astype(np.float32)
    ties = (np.arange(1, 2 ** 12, dtype=np.float32) * 2.0 ** -8 + 2.0 ** -9).astype(np.float32)  # exact halves
    x = np.concatenate([x, ties, -ties, np.float32([0.0, -0.0, np.inf, -np.inf, 1e-40, 3.3e38])])
    with np.errstate(over="ignore"):  # 3.3e38 rounds up to inf in bfloat16, as torch does
        ours = ao_muon.round_to_bfloat16(np, x)
    theirs = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("preset", sorted(ao_muon.NS_COEFFICIENTS))
def test_newton_schulz_bfloat16_emulation_vs_timm_bfloat16(preset):
    """Our bfloat16 emulation against timm's real bfloat16 NS (CPU): measured, bounded; float64 NS is far."""
    from timm.optim import muon as tm

    rng = np.random.default_rng(1)
    coeffs = tm.resolve_ns_coefficients(preset, tm._COEFFICIENTS)
    for shape in [(6, 27), (64, 32), (256, 128), (9, 6, 3)]:
        G = rng.standard_normal(shape).astype(np.float32)
        theirs = tm.zeropower_via_newtonschulz(torch.from_numpy(G), 5, coeffs).float().numpy()
        emul = ao_muon.zeropower_via_newtonschulz(np, G, 5, preset, ns_dtype="bfloat16")
        exact = ao_muon.zeropower_via_newtonschulz(np, G.astype(np.float64), 5, preset, ns_dtype=None)
        gap_emul = np.linalg.norm(emul - theirs) / np.linalg.norm(theirs)
        gap_exact = np.linalg.norm(exact - theirs) / np.linalg.norm(theirs)
        print(f"NS {preset} {shape}: bf16 emulation vs timm {gap_emul:.2e}, float64 vs timm {gap_exact:.2e}")
        assert gap_emul <= 2e-2, (shape, gap_emul)
        assert gap_emul <= gap_exact, (shape, gap_emul, gap_exact)


def test_newton_schulz_of_zero_is_zero_without_warnings():
    with np.errstate(all="raise"):
        for dt in (None, "bfloat16"):
            for se in (False, True):
                out = ao_muon.zeropower_via_newtonschulz(np, np.zeros((4, 6)), 5, "quintic", scale_eps=se,
                                                         ns_dtype=dt)
                np.testing.assert_array_equal(out, 0.0)


MUON_CONFIGS = [
    pytest.param("muon", {}, id="muon-defaults"),
    pytest.param("muon", {"weight_decay": 0.1, "nesterov": True}, id="muon-nesterov-wd-nadamw-fallback"),
    pytest.param("nmuon", {"ns_coefficients": "original", "adjust_lr_fn": "original"}, id="nmuon-original"),
    pytest.param("muon", {"adjust_lr_fn": "rms_to_rms", "conv_mode": "batched", "ns_coefficients": "polar_express"},
                 id="muon-batched-rms_to_rms-polar"),
    pytest.param("muon", {"adjust_lr_fn": None, "conv_mode": "batched", "normalize_spatial": False,
                          "ns_coefficients": "polar_express_safer", "ns_steps": 8}, id="muon-batched-nonorm"),
    pytest.param("muon", {"safety_factor": 1.05, "scale_eps": True, "fallback_lr_scale": 0.3,
                          "betas": (0.8, 0.99), "eps": 1e-6, "lr": 0.05}, id="muon-safety-scale_eps-fallback"),
    pytest.param("adamuon", {}, id="adamuon-defaults"),
    pytest.param("adamuon", {"adjust_lr_fn": "rms_to_rms", "weight_decay": 0.05}, id="adamuon-rms_to_rms"),
    pytest.param("nadamuon", {"adjust_lr_fn": "rsqrt_in", "conv_mode": "batched"}, id="nadamuon-rsqrt_in-batched"),
    pytest.param("nadamuon", {"adjust_lr_fn": None, "conv_mode": "batched", "weight_decay": 0.01},
                 id="nadamuon-none-batched"),
    pytest.param("adamuon", {"adjust_lr_fn": "match_rms_adamw", "conv_mode": "batched"}, id="adamuon-batched"),
]


def _timm_kwargs(name, kwargs):
    info = timm_optim.get_optimizer_info(name)
    return {"momentum": 0.9, **(info.defaults or {}), **kwargs}  # timm's factory forces momentum=0.9


@pytest.mark.parametrize("name, kwargs", MUON_CONFIGS)
def test_muon_matches_timm_with_float64_newton_schulz(name, kwargs, timm_ns_float64):
    tk = _timm_kwargs(name, kwargs)
    check_parity(name, {**kwargs, "ns_dtype": None}, lambda groups: timm_ns_float64.Muon(groups, **tk))


def test_muon_routing_flags_in_groups_match_timm(timm_ns_float64):
    groups = [{"params": ["w"], "use_fallback": True, "lr": 0.01}, {"params": ["conv"], "use_muon": False},
              {"params": ["nc"], "lr": 0.03, "weight_decay": 0.1}]
    check_parity("nmuon", {"ns_dtype": None, "momentum": 0.9}, lambda g: timm_ns_float64.Muon(
        g, **_timm_kwargs("nmuon", {})), groups=groups)


def test_muon_grads_of_size_1e7_match_timm(timm_ns_float64):
    np_params, _ = make_params()
    check_parity("adamuon", {"ns_dtype": None, "adjust_lr_fn": "rms_to_rms"},
                 lambda g: timm_ns_float64.Muon(g, **_timm_kwargs("adamuon", {"adjust_lr_fn": "rms_to_rms"})),
                 grads=grad_schedule(np_params, 12, scale=1e-7))


def _muon_gap(name, ours_kwargs, timm_kwargs, steps=12):
    """Largest relative difference (max-abs scaled) in params and state over ``steps`` re-synced steps."""
    from timm.optim import muon as tm

    worst = {"muon params": 0.0, "fallback params": 0.0, "state": 0.0}
    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        oracle = tm.Muon(list(t_params.values()), **timm_kwargs)
        opt = ao.create_optimizer(name, **ours_kwargs)
        params, state = np_params, opt.init(np_params)
        for g in grad_schedule(np_params, steps):
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n])
            before = {n: p.detach().numpy().copy() for n, p in t_params.items()}
            oracle.step()
            params, state = opt.step(params, g, state)
            for n, p in t_params.items():
                theirs = p.detach().numpy()
                moved = np.max(np.abs(theirs - before[n])) if theirs.size else 0.0
                if moved == 0:
                    continue
                rel = np.max(np.abs(params[n] - theirs)) / moved  # relative to the step taken
                key = "muon params" if oracle.state[p]["use_muon"] else "fallback params"
                worst[key] = max(worst[key], float(rel))
                for k, v in oracle.state[p].items():
                    if isinstance(v, torch.Tensor) and v.ndim:
                        v = v.numpy()
                        worst["state"] = max(worst["state"], float(np.max(np.abs(state[n][k] - v))
                                                                   / max(np.max(np.abs(v)), 1e-300)))
                params[n] = theirs.copy().reshape(params[n].shape)
                state[n] = {k: (v.detach().numpy().copy() if isinstance(v, torch.Tensor) else v)
                            for k, v in oracle.state[p].items()}
    return worst


@pytest.mark.parametrize("name", ["muon", "adamuon"])
def test_muon_bfloat16_emulation_gap_to_timm(name):
    """Real timm (bfloat16 NS) vs ours with the bfloat16 emulation and with float64 NS: the gap, relative to the
    size of each step, is printed (README, Muon table) and bounded; fallback params match to 1e-10."""
    tk = _timm_kwargs(name, {})
    emul = _muon_gap(name, {}, tk)
    exact = _muon_gap(name, {"ns_dtype": None}, tk)
    print(f"{name}: bf16 emulation {emul}; float64 NS {exact}")
    assert emul["fallback params"] <= 1e-10 and exact["fallback params"] <= 1e-10
    assert emul["muon params"] <= 5e-2
    assert emul["muon params"] <= exact["muon params"]


@pytest.mark.parametrize("name", ["muon", "nmuon", "adamuon", "nadamuon"])
def test_muon_zero_weights_zero_grads_and_lr0_stay_finite_without_warnings(name):
    shapes = {"w": (6, 4), "conv": (5, 3, 2, 2), "b": (4,), "s": ()}
    for kwargs in ({}, {"lr": 0.0}, {"ns_dtype": None, "conv_mode": "batched", "scale_eps": True}):
        opt = ao.create_optimizer(name, **kwargs)
        params = {k: np.zeros(s) for k, s in shapes.items()}
        state = opt.init(params)
        with np.errstate(all="raise"):
            for _ in range(3):
                params, state = opt.step(params, {k: np.zeros(s) for k, s in shapes.items()}, state)
            ones = {k: np.ones(s) for k, s in shapes.items()}
            params, state = opt.step(params, ones, state)
        for n in shapes:
            assert np.all(np.isfinite(params[n])), (name, kwargs, n)
            for v in state[n].values():
                assert np.all(np.isfinite(np.asarray(v, dtype=float)))
        if kwargs.get("lr") == 0.0:
            for n in shapes:
                np.testing.assert_array_equal(params[n], 0.0)


def test_muon_forced_on_a_vector_raises_before_writing():
    opt = ao.create_optimizer("muon", groups=[{"params": ["b"], "use_muon": True}])
    params = {"w": np.ones((4, 4)), "b": np.ones(3)}
    state = opt.init({"w": params["w"], "b": params["b"]})
    snap = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ValueError, match=r"params\['b'\] has shape \(3,\): Muon needs at least 2 dimensions"):
        opt.step(params, {"w": np.ones((4, 4)), "b": np.ones(3)}, state, copy=False)
    for k in params:
        np.testing.assert_array_equal(params[k], snap[k])


def test_muon_adamw_lr_is_converted_once_with_timms_warning():
    with pytest.warns(FutureWarning, match="adamw_lr is deprecated"):
        opt = ao.create_optimizer("muon", lr=0.02, adamw_lr=0.004)
    assert opt.hyperparams.fallback_lr_scale == pytest.approx(0.2) and opt.hyperparams.adamw_lr is None


# ==================================================================================================== Adahessian
def _coupled_loss(rng, t_params):
    """L(x) = a.x + x'Mx/2 + sum(x^4)/100 over all params flattened together (cross-param curvature); M is
    positive definite with a dominant diagonal, so Hutchinson estimates stay positive and the run stays bounded."""
    size = sum(p.numel() for p in t_params.values())
    a = torch.tensor(rng.standard_normal(size))
    B = rng.standard_normal((size, size)) / size ** 0.5
    M = torch.tensor(4.0 * np.eye(size) + 0.25 * (B + B.T))

    def loss(params):
        x = torch.cat([p.reshape(-1) for p in params.values()])
        return a @ x + 0.5 * x @ (M @ x) + (x ** 4).sum() / 100

    return loss


def _adahessian_run(kwargs, *, groups=None, steps=12, missing=True, rtol=1e-10):
    """Step timm's Adahessian (true HVPs through autograd) and ours with timm's own estimate, compare each step."""
    from timm.optim import Adahessian

    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        names = list(t_params)
        loss = _coupled_loss(np.random.default_rng(5), t_params)
        t_groups = torch_groups(t_params, groups)
        oracle = Adahessian(t_groups, **kwargs)
        opt = ao.create_optimizer("adahessian", groups=groups, **kwargs)
        params, state = np_params, opt.init(np_params)
        n_samples, update_each = oracle.n_samples, oracle.update_each
        for t in range(steps):
            skip = {2: {"b"}, 4: {"scalar"}, 5: {"scalar", "conv"}}.get(t, set()) if missing else set()
            live = [n for n in names if n not in skip]
            gs = torch.autograd.grad(loss(t_params), [t_params[n] for n in live], create_graph=True)
            for n in names:
                t_params[n].grad = None
            for n, g in zip(live, gs):
                t_params[n].grad = g
            # timm's own estimate: its generator (cloned), its param order, its due rule
            name_of = {id(p): n for n, p in t_params.items()}
            in_order = [name_of[id(p)] for p in oracle.get_params() if name_of[id(p)] in live]  # timm's order
            due = [n for n in in_order if oracle.state[t_params[n]]["hessian step"] % update_each == 0
                   or isinstance(t_params[n].hess, float)]
            assert sorted(due) == sorted(ao.optimizers.adahessian.hessian_due(opt, state, live))
            gen = torch.Generator().set_state(oracle.generator.get_state())
            est = {n: 0.0 for n in due}
            if due:
                for _ in range(n_samples):
                    zs = [torch.randint(0, 2, t_params[n].size(), generator=gen) * 2.0 - 1.0 for n in due]
                    hzs = torch.autograd.grad([t_params[n].grad for n in due], [t_params[n] for n in due],
                                              grad_outputs=zs, retain_graph=True)
                    for n, z, hz in zip(due, zs, hzs):
                        est[n] = est[n] + (hz * z / n_samples).detach().numpy()
            grads = {n: (t_params[n].grad.detach().numpy().copy() if n in live else None) for n in names}
            oracle.step()
            params, state = opt.step(params, grads, state, hessian=est)
            for n in names:
                p = t_params[n]
                where = f"adahessian step {t + 1} param {n!r}"
                assert_close(params[n], p, rtol, where)
                theirs = dict(oracle.state[p])
                if n in live:
                    theirs["hess"] = p.hess
                else:
                    theirs.pop("hess", None)
                    assert set(state[n]) - {"hess"} == set(theirs), where
                for k, v in theirs.items():
                    assert_close(state[n][k], v, rtol, f"{where} slot {k!r}")
                params[n] = np.array(p.detach().numpy(), copy=True).reshape(params[n].shape)
                for k, v in theirs.items():
                    if isinstance(v, torch.Tensor):
                        state[n][k] = np.array(v.detach().numpy(), copy=True)
            for p in t_params.values():
                p.grad = None


ADAHESSIAN_CONFIGS = [
    pytest.param({}, id="defaults"),
    pytest.param({"lr": 0.05, "weight_decay": 0.1, "hessian_power": 0.5, "betas": (0.8, 0.95)}, id="wd-power"),
    pytest.param({"lr": 0.05, "update_each": 3, "n_samples": 2}, id="update_each-n_samples"),
    pytest.param({"lr": 0.05, "avg_conv_kernel": True, "hessian_power": 0.0, "eps": 1e-3}, id="avg_conv-power0"),
]


@pytest.mark.parametrize("kwargs", ADAHESSIAN_CONFIGS)
def test_adahessian_matches_timm_with_timms_estimate(kwargs):
    _adahessian_run(kwargs)


def test_adahessian_param_groups_match_timm():
    _adahessian_run({"lr": 0.05, "weight_decay": 0.01},
                    groups=[{"params": ["w", "nc"], "lr": 0.02, "weight_decay": 0.0}, {"params": ["scalar"],
                                                                                        "lr": 0.01}])


def test_adahessian_missing_estimate_raises_before_writing_and_reuse_ignores_it():
    opt = ao.create_optimizer("adahessian", update_each=2)
    params = {"w": np.ones((3, 2)), "b": np.ones(2)}
    state = opt.init(params)
    grads = {k: np.full(v.shape, 0.5) for k, v in params.items()}
    snap = {k: v.copy() for k, v in params.items()}
    with pytest.raises(ValueError, match=r"hessian\['b'\] is missing"):
        opt.step(params, grads, state, copy=False, hessian={"w": np.ones((3, 2))})
    for k in params:
        np.testing.assert_array_equal(params[k], snap[k])
    assert state == {"w": {"hessian step": 0}, "b": {"hessian step": 0}}
    with pytest.raises(ValueError, match=r"hessian\['w'\] must be an array of its param's shape"):
        opt.step(params, grads, state, hessian={"w": np.ones(2), "b": np.ones(2)})
    params, state = opt.step(params, grads, state, hessian={k: np.ones(v.shape) for k, v in params.items()})
    assert ao.optimizers.adahessian.hessian_due(opt, state) == []
    p2, s2 = opt.step(params, grads, state)  # step 2 reuses the stored estimate: none needed
    np.testing.assert_array_equal(s2["w"]["hess"], 1.0)
    assert ao.optimizers.adahessian.hessian_due(opt, s2) == ["w", "b"]


def test_adahessian_zero_weights_zero_grads_and_lr0_stay_finite_without_warnings():
    shapes = {"conv": (3, 2, 2, 2), "w": (4, 3), "b": (3,), "s": ()}
    for kwargs in ({}, {"lr": 0.0}, {"hessian_power": 0.0}, {"hessian_power": 0.5, "avg_conv_kernel": True}):
        opt = ao.create_optimizer("adahessian", **kwargs)
        params = {k: np.zeros(s) for k, s in shapes.items()}
        state = opt.init(params)
        zeros = {k: np.zeros(s) for k, s in shapes.items()}
        with np.errstate(all="raise"):
            for _ in range(3):
                params, state = opt.step(params, zeros, state, hessian=zeros)
        for n in shapes:
            assert np.all(np.isfinite(params[n])) and np.all(params[n] == 0.0), (kwargs, n)


# ========================================================================================================== Kron
class _Scripted:
    """A stand-in for timm's ``random.Random(1337)`` with scripted uniforms (to force preconditioner balancing)."""

    def __init__(self, values, seed=7):
        import random

        self.values, self.i, self.inner = list(values), 0, random.Random(seed)

    def random(self):
        v = self.values[self.i % len(self.values)]
        self.i += 1
        return v

    def randint(self, a, b):
        return self.inner.randint(a, b)


def _solve_float64(X, A):
    """timm's ``_solve_triangular_right`` without its float32 cast."""
    return torch.linalg.solve_triangular(A, X.reshape(-1, X.size(-1)), upper=True, left=False).reshape_as(X)


@pytest.fixture
def timm_kron(monkeypatch):
    from timm.optim import kron as tk

    monkeypatch.setattr(tk, "has_dynamo", False)  # plain functions (no torch.compile) for the oracle
    return tk


def _kron_run(tk, name, kwargs, *, groups=None, steps=12, deterministic=True, rtol=1e-10, script=None,
              measure=False):
    """Replay timm's draws (its Python RNG, its torch generator or global RNG) into ``draws=`` and compare."""
    import random

    from arrayoptim.optimizers.kron import kron_draws

    worst = 0.0
    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        t_groups = torch_groups(t_params, groups)
        info = timm_optim.get_optimizer_info(name)
        oracle = tk.Kron(t_groups, deterministic=deterministic, **{**(info.defaults or {}), **kwargs})
        name_of = {id(p): n for n, p in t_params.items()}
        order = [name_of[id(p)] for g in oracle.param_groups for p in g["params"]]
        rng = random.Random(1337) if script is None else _Scripted(script)
        if script is not None:
            oracle.rng = _Scripted(script)
        opt = ao.create_optimizer(name, groups=groups, deterministic=deterministic, **kwargs)
        params, state = np_params, opt.init(np_params)
        for t, g in enumerate(grad_schedule(np_params, steps)):
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n])
            if deterministic:
                def normal(shape, p):
                    gen = torch.Generator().manual_seed(rng.randint(0, 2 ** 31))
                    return torch.randn(shape, generator=gen, dtype=torch.float64).numpy()
            else:
                saved = torch.get_rng_state()

                def normal(shape, p):
                    return torch.randn(shape, dtype=torch.float64).numpy()
            draws = kron_draws(opt, params, g, state, uniform=rng.random, normal=normal, order=order)
            if not deterministic:
                torch.set_rng_state(saved)
            oracle.step()
            params, state = opt.step(params, g, state, draws=draws)
            for n, p in t_params.items():
                where = f"{name} step {t + 1} param {n!r}"
                theirs = oracle.state.get(p, {})
                pairs = [(params[n], p, "param")] + [(state[n]["momentum_buffer"], theirs["momentum_buffer"],
                                                      "momentum_buffer")] + [
                    (q, tq, f"Q[{k}]") for k, (q, tq) in enumerate(zip(state[n]["Q"], theirs["Q"]))]
                assert len(state[n]["Q"]) == len(theirs["Q"]), where
                assert (state[n]["step"], state[n]["update_counter"]) == (theirs["step"], theirs["update_counter"])
                for ours, ref, what in pairs:
                    if measure:
                        ref = ref.detach().numpy()
                        worst = max(worst, float(np.max(np.abs(ours - ref), initial=0.0)
                                                 / max(np.max(np.abs(ref), initial=0.0), 1e-300)))
                    else:
                        assert_close(ours, ref, rtol, f"{where} {what}")
                params[n] = np.array(p.detach().numpy(), copy=True).reshape(params[n].shape)
                state[n]["momentum_buffer"] = theirs["momentum_buffer"].numpy().copy()
                state[n]["Q"] = [q.numpy().copy() for q in theirs["Q"]]
    return worst


KRON_CONFIGS = [
    pytest.param("kron", {"lr": 0.01}, {}, id="kron"),
    pytest.param("kron", {"lr": 0.01, "weight_decay": 0.1, "momentum": 0.5, "precond_lr": 0.3,
                          "precond_init_scale": 2.0}, {}, id="kron-wd-knobs"),
    pytest.param("kronw", {"lr": 0.01, "weight_decay": 0.1, "stochastic_weight_decay": True}, {},
                 id="kronw-stochastic-wd"),
    pytest.param("kronc", {"lr": 0.01, "weight_decay": 0.1}, {}, id="kronc"),
    pytest.param("kron", {"lr": 0.01, "memory_save_mode": "one_diag", "momentum_into_precond_update": False}, {},
                 id="one_diag-raw-grad"),
    pytest.param("kron", {"lr": 0.01, "memory_save_mode": "smart_one_diag", "max_size_triangular": 5}, {},
                 id="smart_one_diag-max5"),
    pytest.param("kron", {"lr": 0.01, "memory_save_mode": "all_diag", "flatten": True}, {}, id="all_diag-flatten"),
    pytest.param("kron", {"lr": 0.01, "flatten": True, "flatten_start_dim": 1, "min_ndim_triangular": 3},
                 {}, id="flatten1-min_ndim3"),
    pytest.param("kron", {"lr": 0.01, "preconditioner_update_probability": 0.4}, {}, id="prob-0.4"),
    pytest.param("kron", {"lr": 0.01, "weight_decay": 0.05}, {"script": [0.5, 0.005, 0.9, 0.001]},
                 id="balancing"),
    pytest.param("kron", {"lr": 0.01}, {"deterministic": False}, id="global-torch-rng"),
]


@pytest.mark.parametrize("name, kwargs, run", KRON_CONFIGS[:4] + [
    pytest.param(*c.values, id=c.id, marks=pytest.mark.slow) for c in KRON_CONFIGS[4:8]] + KRON_CONFIGS[8:])
def test_kron_matches_timm_with_replayed_draws(timm_kron, monkeypatch, name, kwargs, run):
    monkeypatch.setattr(timm_kron, "_solve_triangular_right", _solve_float64)
    _kron_run(timm_kron, name, kwargs, **run)


def test_kron_param_groups_and_callable_probability_match_timm(timm_kron, monkeypatch):
    monkeypatch.setattr(timm_kron, "_solve_triangular_right", _solve_float64)
    prob = lambda step: 1.0 if step < 3 else 0.5  # noqa: E731
    _kron_run(timm_kron, "kronw", {"lr": 0.01, "weight_decay": 0.1, "preconditioner_update_probability": prob},
              groups=[{"params": ["w", "nc"], "lr": 0.02, "weight_decay": 0.0}, {"params": ["scalar"], "lr": 0.005}])


def test_kron_gap_to_timms_float32_triangular_solve(timm_kron):
    """Unpatched timm solves the triangular systems in float32: the gap, with the same draws, is measured."""
    gap = _kron_run(timm_kron, "kron", {"lr": 0.01}, measure=True)
    print(f"kron: float64 vs timm's float32 triangular solve, max relative gap over params/state: {gap:.2e}")
    assert 1e-12 < gap < 1e-5


def test_kron_probability_schedule_matches_timm():
    from timm.optim.kron import precond_update_prob_schedule as theirs

    from arrayoptim.optimizers.kron import precond_update_prob_schedule as ours

    for n in list(range(0, 6000, 3)) + [499, 500, 501, 4000]:
        t = theirs(n)
        assert ours(n) == pytest.approx(float(t), rel=2.5e-7, abs=0), n  # float32 exp: within 1 ulp of torch's
        for counter in range(1, 40):
            assert (counter >= 1 / ours(n)) == bool(counter >= 1 / t), (n, counter)


def test_kron_randomness_is_explicit():
    opt = ao.create_optimizer("kron")
    params = {"w": np.ones((4, 3))}
    state = opt.init(params)
    g = {"w": np.full((4, 3), 0.1)}
    with pytest.raises(TypeError, match="exactly one of seed=<int> or draws=<dict>"):
        opt.step(params, g, state)
    with pytest.raises(ValueError, match=r"draws\['w'\]\['V'\] must be a standard normal array of shape \(4, 3\)"):
        opt.step(params, g, state, draws={"w": {"balance": 0.5}})
    a = opt.step(params, g, state, seed=3)
    b = opt.step(params, g, state, seed=3)
    np.testing.assert_array_equal(a[0]["w"], b[0]["w"])
    assert not np.array_equal(a[0]["w"], opt.step(params, g, state, seed=4)[0]["w"])
    np.testing.assert_array_equal(params["w"], 1.0)  # copy=True: inputs untouched, Q included
    np.testing.assert_array_equal(state["w"]["Q"][0], np.eye(4))


@pytest.mark.parametrize("name", ["kron", "kronw", "kronc"])
def test_kron_zero_weights_zero_grads_and_lr0_stay_finite_without_warnings(name):
    shapes = {"w": (5, 4), "conv": (3, 2, 2, 2), "b": (4,), "s": (), "e": (0, 3)}
    for kwargs in ({}, {"lr": 0.0, "weight_decay": 0.1}, {"memory_save_mode": "all_diag", "weight_decay": 0.1}):
        if name == "kronc" and kwargs.get("lr") == 0.0:
            kwargs = {**kwargs, "max_lr_snapshot": 0.01}  # corrected decay needs a positive peak lr
        opt = ao.create_optimizer(name, **kwargs)
        params = {k: np.zeros(s) for k, s in shapes.items()}
        state = opt.init(params)
        with np.errstate(all="raise"):
            for t in range(3):
                params, state = opt.step(params, {k: np.zeros(s) for k, s in shapes.items()}, state, seed=t)
        for n in shapes:
            assert np.all(params[n] == 0.0), (name, kwargs, n)
            assert all(np.all(np.isfinite(q)) for q in state[n]["Q"])
