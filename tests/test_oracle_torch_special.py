"""Parity with torch.optim's special classes over torch's own optim_db grid: LBFGS (closures, strong Wolfe),
SparseAdam (real sparse COO grads), Adafactor, Muon (bfloat16 Newton-Schulz: exact against torch's own code run in
float64, measured gap against real bfloat16).

Every CPU configuration of ``optim_db`` for the four classes, >= 10 steps, params and every state slot after each
step within 1e-10 relative (re-synced from torch after each comparison).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import arrayoptim as ao
from oracles import assert_close, check_parity, grad_schedule, hparams_from_torch, torch_default_dtype

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

pytestmark = [pytest.mark.oracle,
              # torch's LBFGS itself calls float() on the closure's loss
              pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")]

CLASSES = {"LBFGS": "lbfgs", "SparseAdam": "sparseadam", "Adafactor": "torchadafactor", "Muon": "torchmuon"}
RTOL = 1e-10
STEPS = 10


def _infos():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_optimizers import optim_db
    return {info.optim_cls.__name__: info for info in optim_db if info.optim_cls.__name__ in CLASSES}


INFOS = _infos()


def _grid(clsname):
    info = INFOS[clsname]
    return [pytest.param(dict(inp.kwargs), id=inp.desc.replace(" ", "_"))
            for inp in info.optim_inputs_func(device="cpu", dtype=torch.float64)]


def _ours(cls, kwargs, name, **extra):
    probe_param = torch.zeros(2, 2, requires_grad=True)
    probe = cls([probe_param], **kwargs)
    return {**hparams_from_torch(probe.defaults, name), **extra}


def _t(x):
    return torch.tensor(np.asarray(x), dtype=torch.float64)


def test_grid_sizes():
    assert {k: len(_grid(k)) for k in CLASSES} == {"LBFGS": 7, "SparseAdam": 4, "Adafactor": 5, "Muon": 9}


# ------------------------------------------------------------------------------------------------ Adafactor

@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["grads~1", "grads~1e-7"])
@pytest.mark.parametrize("kwargs", _grid("Adafactor"))
def test_adafactor_matches_torch(kwargs, scale):
    """4-D conv weight (factored over the last two dims), matrix, vector, 0-d and transposed params."""
    from oracles import make_params

    name = "torchadafactor"
    np_params, _ = make_params()
    check_parity(name, _ours(torch.optim.Adafactor, kwargs, name),
                 lambda groups: torch.optim.Adafactor(groups, **kwargs), steps=12,
                 grads=grad_schedule(np_params, 12, scale=scale))


def test_adafactor_param_groups():
    name = "torchadafactor"
    kwargs = {"lr": 0.02, "weight_decay": 0.05}
    groups = [{"params": ["w", "nc"], "lr": 0.03, "weight_decay": 0.0}, {"params": ["scalar"], "d": 2.0}]
    check_parity(name, _ours(torch.optim.Adafactor, kwargs, name), lambda g: torch.optim.Adafactor(g, **kwargs),
                 groups=groups)


# ---------------------------------------------------------------------------------------------- SparseAdam

def _sparse(g: np.ndarray, mask: np.ndarray):
    """torch's COO gradient with an entry exactly where ``mask`` is True (values may be 0: still present)."""
    idx = np.stack(np.nonzero(mask)) if g.ndim else np.zeros((0, int(mask)), dtype=np.int64)
    vals = g[mask] if g.ndim else g.reshape(1)[: int(mask)]
    return torch.sparse_coo_tensor(torch.tensor(idx, dtype=torch.int64), _t(vals), tuple(g.shape),
                                   check_invariants=True)


def _sparse_problem(seed=0):
    rng = np.random.default_rng(seed)
    base = {"emb": rng.standard_normal((10, 4)), "w": rng.standard_normal((5, 7)), "b": rng.standard_normal(6),
            "conv": rng.standard_normal((2, 3, 3, 3))}
    return base, rng


@pytest.mark.parametrize("use_mask", [True, False], ids=["grad_mask", "default_mask"])
@pytest.mark.parametrize("kwargs", _grid("SparseAdam"))
def test_sparseadam_matches_torch_with_sparse_grads(kwargs, use_mask):
    """Row-sparse (embedding-like) and element-sparse grads, an explicitly stored 0, a step with no entry at all,
    and a param without a grad on some steps."""
    name = "sparseadam"
    with torch_default_dtype(torch.float64):
        base, rng = _sparse_problem()
        t_params = {k: _t(v).requires_grad_() for k, v in base.items()}
        oracle = torch.optim.SparseAdam(list(t_params.values()), **kwargs)
        opt = ao.create_optimizer(name, **_ours(torch.optim.SparseAdam, kwargs, name))
        params = {k: v.copy() for k, v in base.items()}
        state = opt.init(params)
        for step in range(12):
            grads, masks = {}, {}
            for k, v in base.items():
                g = rng.standard_normal(v.shape)
                if k == "emb":  # a few rows present
                    m = np.zeros(v.shape, bool)
                    m[rng.choice(v.shape[0], 3, replace=False)] = True
                else:
                    m = rng.random(v.shape) < 0.4
                if step == 3 and k == "b":
                    m[:] = False  # a sparse grad with no entry: torch still counts the step
                g = np.where(m, g, 0.0)
                if use_mask and k == "w" and m.any():
                    g[np.argwhere(m)[0][0], np.argwhere(m)[0][1]] = 0.0  # an explicitly stored zero
                grads[k], masks[k] = g, m
            if step in (5, 6):
                grads["conv"] = None
            for k, p in t_params.items():
                p.grad = None if grads[k] is None else _sparse(grads[k], masks[k] if use_mask else grads[k] != 0)
            oracle.step()
            kw = {"grad_mask": {k: m for k, m in masks.items() if grads[k] is not None}} if use_mask else {}
            params, state = opt.step(params, grads, state, **kw)
            _compare(name, step, params, state, t_params, oracle)


def _compare(name, step, params, state, t_params, oracle, slot_map=None):
    for k, p in t_params.items():
        where = f"{name} step {step + 1} param {k!r}"
        assert_close(params[k], p, RTOL, where)
        theirs = dict(oracle.state.get(p, {}))
        if slot_map:
            theirs = slot_map(k, theirs)
        assert set(state[k]) == set(theirs), f"{where}: slots {sorted(state[k])} != {sorted(theirs)}"
        for s, v in theirs.items():
            assert_close(state[k][s], v, RTOL, f"{where} slot {s!r}")
        # re-sync from the oracle
        params[k] = np.array(p.detach().numpy(), copy=True)
        for s, v in theirs.items():
            if isinstance(state[k][s], np.ndarray):
                state[k][s] = np.array(v.detach().numpy() if isinstance(v, torch.Tensor) else v, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- Muon

def _muon_problem(seed=0):
    rng = np.random.default_rng(seed)
    base = {"w": rng.standard_normal((5, 7)), "tall": rng.standard_normal((9, 3)), "sq": rng.standard_normal((4, 4))}
    t_params = {k: _t(v).requires_grad_() for k, v in base.items()}
    nc = _t(rng.standard_normal((4, 6))).t().requires_grad_()  # non-contiguous, tall (6, 4)
    t_params["nc"] = nc
    base["nc"] = np.array(nc.detach().numpy().T, copy=True).T
    return base, t_params


@pytest.fixture
def float64_newton_schulz(monkeypatch):
    """torch's own Newton-Schulz code, run in float64: its ``grad.bfloat16()`` cast made a copy instead."""
    monkeypatch.setattr(torch.Tensor, "bfloat16", lambda self: self.clone())


def _run_muon(kwargs, ours_extra=None, rtol=RTOL, steps=STEPS, resync=True):
    """Step torch's Muon and ours side by side; returns the largest relative param/state difference seen."""
    name = "torchmuon"
    worst = 0.0
    with torch_default_dtype(torch.float64):
        base, t_params = _muon_problem()
        oracle = torch.optim.Muon(list(t_params.values()), **kwargs)
        opt = ao.create_optimizer(name, **_ours(torch.optim.Muon, kwargs, name, **(ours_extra or {})))
        params = {k: v.copy() for k, v in base.items()}
        state = opt.init(params)
        for step, grads in enumerate(grad_schedule(base, steps, missing=False)):
            if step == 2:
                grads["sq"] = None
            for k, p in t_params.items():
                p.grad = None if grads[k] is None else _t(grads[k])
            oracle.step()
            params, state = opt.step(params, grads, state)
            for k, p in t_params.items():
                theirs = p.detach().numpy()
                scale = max(1.0, float(np.max(np.abs(theirs))))
                worst = max(worst, float(np.max(np.abs(params[k] - theirs))) / scale)
                if rtol is not None:
                    assert_close(params[k], p, rtol, f"{name} step {step + 1} param {k!r}")
                    assert set(state[k]) == set(oracle.state[p]), (step, k)
                    assert_close(state[k]["momentum_buffer"], oracle.state[p]["momentum_buffer"], rtol,
                                 f"{name} step {step + 1} param {k!r} momentum_buffer")
                if resync:
                    params[k] = np.array(theirs, copy=True)
                    state[k]["momentum_buffer"] = oracle.state[p]["momentum_buffer"].numpy().copy()
    return worst


@pytest.mark.parametrize("kwargs", _grid("Muon"))
def test_muon_matches_torch_code_in_float64(kwargs, float64_newton_schulz):
    """Exact parity (1e-10) with torch's Muon whose Newton-Schulz runs in float64 instead of bfloat16.

    optim_db's ``lr=torch.tensor(0.001)`` is a float32 tensor, and Muon keeps it a tensor: torch then rounds
    ``lr * weight_decay`` and the adjusted lr to float32 (a documented difference; arrayoptim's lr is a Python
    float), so the oracle gets the same value as a float64 tensor.
    """
    if isinstance(kwargs.get("lr"), torch.Tensor):
        kwargs = {**kwargs, "lr": kwargs["lr"].double()}
    _run_muon(kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("kwargs", _grid("Muon"))
def test_muon_gap_to_real_bfloat16_torch(kwargs):
    """Against real torch (bfloat16 Newton-Schulz), largest param difference per step relative to max(1, |p|).

    Measured on this grid (matrices up to 9 x 3): the default (Newton-Schulz in float64) differs by 1e-5 to 3e-4,
    i.e. up to ~3% of the update ``lr * O(1)``; ``ns_dtype='bfloat16'`` reproduces torch bit for bit (0 difference).
    On large matrices (>= 256 x 128) torch's bfloat16 matmul kernel rounds differently: the emulation then differs
    from torch by about one bfloat16 ulp on most entries, still no more than the float64 iteration does
    (``test_bfloat16_emulated_newton_schulz_is_close_to_torch``).
    """
    if isinstance(kwargs.get("lr"), torch.Tensor):
        kwargs = {**kwargs, "lr": kwargs["lr"].double()}
    lr = float(kwargs.get("lr", 1e-3))
    gap = _run_muon(kwargs, rtol=None)
    assert 0 < gap < 0.05 * lr, gap
    assert _run_muon(kwargs, {"ns_dtype": "bfloat16"}, rtol=None) <= 1e-15


def _ns_reference(u: np.ndarray, coefficients, steps, eps):
    """Newton-Schulz in float64, written out independently: X <- a X + (b A + c A^2) X, A = X X^T."""
    a, b, c = coefficients
    x = u.T if u.shape[0] > u.shape[1] else u
    x = x / max(np.linalg.norm(x), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if u.shape[0] > u.shape[1] else x


@pytest.mark.parametrize("shape", [(5, 7), (9, 3), (4, 4), (1, 6), (6, 1)])
@pytest.mark.parametrize("coefficients, steps", [((3.4445, -4.7750, 2.0315), 5), ((3.4, -4.7, 2.0), 6)])
def test_newton_schulz_float64_matches_reference(shape, coefficients, steps):
    import array_api_compat.numpy as xp

    from arrayoptim.optimizers.torch_muon import TorchMuonHyperparams, newton_schulz

    u = np.random.default_rng(1).standard_normal(shape)
    hp = TorchMuonHyperparams(ns_coefficients=coefficients, ns_steps=steps)
    np.testing.assert_allclose(newton_schulz(xp, u, hp), _ns_reference(u, coefficients, steps, 1e-7),
                               rtol=1e-12, atol=1e-12)


def test_bfloat16_emulation_rounds_like_torch():
    import array_api_compat.numpy as xp

    from arrayoptim.optimizers.torch_muon import round_to_bfloat16

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(20000) * 10.0 ** rng.integers(-40, 38, 20000)).astype(np.float32)
    x = np.concatenate([x, np.array([0.0, -0.0, 1.0, 1.00390625, 1.01171875, 1e-40, np.inf, -np.inf], np.float32)])
    np.testing.assert_array_equal(round_to_bfloat16(xp, x), torch.tensor(x).bfloat16().float().numpy())


def test_bfloat16_emulated_newton_schulz_is_close_to_torch():
    import array_api_compat.numpy as xp

    from arrayoptim.optimizers.torch_muon import TorchMuonHyperparams, newton_schulz
    from torch.optim._muon import _zeropower_via_newtonschulz

    rng = np.random.default_rng(2)
    for shape in [(5, 7), (32, 16), (64, 64), (256, 128)]:
        u = rng.standard_normal(shape).astype(np.float32)
        theirs = _zeropower_via_newtonschulz(torch.tensor(u), (3.4445, -4.7750, 2.0315), 5, 1e-7).float().numpy()
        ours = newton_schulz(xp, u, TorchMuonHyperparams(ns_dtype="bfloat16"))
        exact = newton_schulz(xp, u.astype(np.float64), TorchMuonHyperparams())
        emu_gap = np.max(np.abs(ours - theirs))
        f64_gap = np.max(np.abs(exact - theirs))
        assert emu_gap <= max(f64_gap, 2 ** -6), (shape, emu_gap, f64_gap)


def test_muon_refuses_non_2d_params():
    opt = ao.create_optimizer("torchmuon")
    with pytest.raises(ValueError, match=r"Muon only supports 2D parameters"):
        opt.init({"w": np.ones((2, 2)), "b": np.ones(3)})
    p = {"w": np.ones((2, 2)), "b": np.ones(3)}
    with pytest.raises(ValueError, match=r"Muon only supports 2D parameters.*'b'"):
        opt.step(p, {"w": np.ones((2, 2))}, {"w": {"momentum_buffer": np.zeros((2, 2))}})
    assert (p["w"] == 1).all()


# --------------------------------------------------------------------------------------------------- LBFGS

def _lbfgs_problem(seed=0):
    """make_params' params minus the transposed one: torch's LBFGS ``view``s each grad and cannot take a
    non-contiguous one (a torch limitation; arrayoptim's non-contiguous params are covered by the contract)."""
    rng = np.random.default_rng(seed)
    base = {"conv": rng.standard_normal((6, 3, 3, 3)), "w": rng.standard_normal((5, 7)), "b": rng.standard_normal(3),
            "scalar": np.array(rng.standard_normal())}
    # curvatures over 2 decades: L-BFGS does not reach the noise floor within the test's 10 x 20 iterations
    coef = {k: (10.0 ** rng.uniform(-1, 1, v.shape), rng.standard_normal(v.shape)) for k, v in base.items()}
    return base, coef


def _np_closure(coef, sign, skip=()):
    """The NumPy-side closure evaluates the objective with torch's arithmetic (and autograd), so losses and grads
    at equal points are bit-identical on both sides: near a minimum the strong-Wolfe cubic interpolation turns a
    1-ulp difference between two implementations of the *objective* into ~1e-6 in ``t``, which says nothing
    about the optimizer."""
    def closure(p):
        tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in p.items()}
        loss, _ = _objective("torch", tp, coef, sign, skip=skip)
        loss.backward()
        return float(loss.detach()), {k: (None if t.grad is None else t.grad.numpy()) for k, t in tp.items()}
    return closure


def _objective(lib, p, coef, sign, skip=()):
    """A smooth, strictly convex (sign=1) or concave (sign=-1) objective: sum a (x - c)^2 / 2 + 0.1 x^4."""
    total, grads = 0.0, {}
    for k, v in p.items():
        if k in skip:
            continue
        a, c = coef[k]
        if lib == "np":
            total = total + sign * float(np.sum(a * (v - c) ** 2 / 2 + 0.1 * v ** 4))
            grads[k] = sign * (a * (v - c) + 0.4 * v ** 3)
        else:
            total = total + sign * torch.sum(_t(a) * (v - _t(c)) ** 2 / 2 + 0.1 * v ** 4)
    return total, grads


def _lbfgs_slots(h):
    """torch's LBFGS state (lists, None, Python numbers) in arrayoptim's flat form."""
    from arrayoptim.verify import lbfgs_state_as_arrays

    return lambda name, st: lbfgs_state_as_arrays(st, h)


@pytest.mark.parametrize("kwargs", _grid("LBFGS") + [
    pytest.param({"history_size": 3, "max_iter": 7}, id="short_history"),
    pytest.param({"history_size": 4, "line_search_fn": "strong_wolfe", "max_eval": 9}, id="strong_wolfe_max_eval"),
    pytest.param({"lr": 0.5, "tolerance_change": 1e-4}, id="tolerance_change"),
])
def test_lbfgs_matches_torch(kwargs):
    """Every slot of torch's ``state[first param]`` after each of 10 steps (up to 20 iterations each)."""
    name = "lbfgs"
    maximize = kwargs.get("maximize", False)
    sign = -1.0 if maximize else 1.0
    with torch_default_dtype(torch.float64):
        base, coef = _lbfgs_problem()
        t_params = {k: _t(v).requires_grad_() for k, v in base.items()}
        oracle = torch.optim.LBFGS(list(t_params.values()), **kwargs)
        ours_kwargs = _ours(torch.optim.LBFGS, kwargs, name)
        opt = ao.create_optimizer(name, **ours_kwargs)
        params = {k: v.copy() for k, v in base.items()}
        state = opt.init(params)

        def closure_t():
            oracle.zero_grad()
            loss, _ = _objective("torch", t_params, coef, sign)
            loss.backward()
            return loss

        convert = _lbfgs_slots(ours_kwargs["history_size"])
        for step in range(STEPS):
            oracle.step(closure_t)
            params, state = opt.step(params, dict(params), state, closure=_np_closure(coef, sign))
            _compare_lbfgs(name, step, params, state, t_params, oracle, convert)
        assert oracle.state[t_params["conv"]]["func_evals"] > STEPS


def _compare_lbfgs(name, step, params, state, t_params, oracle, convert):
    first = next(iter(t_params))
    for k, p in t_params.items():
        assert_close(params[k], p, RTOL, f"{name} step {step + 1} param {k!r}")
        theirs = convert(k, dict(oracle.state.get(p, {})))
        assert set(state[k]) == set(theirs), f"{name} step {step + 1} {k!r}: {sorted(state[k])} != {sorted(theirs)}"
        for s, v in theirs.items():
            assert_close(state[k][s], v, RTOL, f"{name} step {step + 1} param {k!r} slot {s!r}")
        params[k] = np.array(p.detach().numpy(), copy=True)
    theirs = convert(first, dict(oracle.state[t_params[first]]))
    state[first] = {s: (np.array(v, copy=True) if isinstance(v, np.ndarray) else
                        np.array(v.numpy(), copy=True) if isinstance(v, torch.Tensor) else v)
                    for s, v in theirs.items()}


def test_lbfgs_param_without_grad_in_closure_counts_as_zero():
    """torch gathers a zero gradient for a param whose ``.grad`` is None; the closure may return None/omit it."""
    name = "lbfgs"
    with torch_default_dtype(torch.float64):
        base, coef = _lbfgs_problem()
        t_params = {k: _t(v).requires_grad_() for k, v in base.items()}
        oracle = torch.optim.LBFGS(list(t_params.values()), line_search_fn="strong_wolfe")
        opt = ao.create_optimizer(name, line_search_fn="strong_wolfe")
        params, state = {k: v.copy() for k, v in base.items()}, {}

        def closure_t():
            oracle.zero_grad()
            loss, _ = _objective("torch", {k: v for k, v in t_params.items() if k != "b"}, coef, 1.0)
            loss.backward()
            return loss

        for step in range(4):
            oracle.step(closure_t)
            params, state = opt.step(params, dict(params), state, closure=_np_closure(coef, 1.0, skip=("b",)))
            _compare_lbfgs(name, step, params, state, t_params, oracle, _lbfgs_slots(100))


def test_lbfgs_refuses_param_groups_and_needs_a_closure():
    opt = ao.create_optimizer("lbfgs", groups=[{"params": ["w"], "lr": 0.1}])
    p = {"w": np.ones(2)}
    with pytest.raises(ValueError, match="LBFGS doesn't support per-parameter options"):
        opt.step(p, p, opt.init(p), closure=lambda q: (0.0, q))
    with pytest.raises(TypeError, match="needs closure"):
        ao.create_optimizer("lbfgs").step(p, p, {})


# ------------------------------------------------------------------------------------------ error inputs

#: error inputs about params/param groups themselves, not hyperparameters (no equivalent in a constructor that
#: takes no params), or torch-specific layouts
SKIPPED_ERRORS = ("params argument given to the optimizer should be", "a parameter group with duplicate param",
                  "some parameters appear in more than one",
                  "all optimizer params should be with/without names", "all optimizer param groups should be",
                  "SparseAdam requires dense parameter tensors", "does not support complex parameters")
#: param errors that do have an equivalent: raised by ``init`` with the same exception type
PARAM_ERRORS = {"Muon only supports 2D parameters": np.ones(3),
                "SparseAdam does not support complex parameters": None}


def _error_grid():
    out = []
    for clsname in CLASSES:
        for i, e in enumerate(INFOS[clsname].optim_error_inputs_func(device="cpu", dtype=torch.float64)):
            regex = e.error_regex
            skip = any(s in regex for s in SKIPPED_ERRORS) and not any(s in regex for s in PARAM_ERRORS)
            out.append(pytest.param(clsname, e, skip, id=f"{clsname}-{i}-{regex[:40].replace(' ', '_')}"))
    return out


@pytest.mark.parametrize("clsname, err, skip", _error_grid())
def test_error_inputs_raise_the_same_exception_type(clsname, err, skip):
    if skip:
        pytest.skip(f"about params, not hyperparameters: {err.error_regex!r}")
    name = CLASSES[clsname]
    inp = err.optimizer_error_input
    if "Muon only supports 2D" in err.error_regex:
        with pytest.raises(err.error_type, match="Muon only supports 2D parameters"):
            ao.create_optimizer(name, **inp.kwargs).init({"p": np.ones(3)})
        return
    if "SparseAdam does not support complex" in err.error_regex:
        with pytest.raises(err.error_type):
            ao.create_optimizer(name, **inp.kwargs).init({"p": np.ones(3, dtype=np.complex128)})
        return
    with pytest.raises(err.error_type):
        ao.create_optimizer(name, **inp.kwargs)
