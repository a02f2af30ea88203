"""Half-precision "opmath": float16/bfloat16 params of every ``half_compute == "param"`` name compute element-wise in
float32 and round once per stored value (``arrayoptim._half.run_kernel``), beside torch/timm on CPU, which compute
every element-wise op on half tensors in float32 and round once per op.

The problem: the params of the standard parity problem (a 4-D conv weight, a matrix, a vector, a 0-d param) in
float16/bfloat16, grads ``c_t * d`` with a fixed direction ``d`` (random signs times 1 +- 10%) and ``c = [300] + [1] *
10``: at the first step ``|g| >= 256``, so ``g * g`` overflows float16 (65504) unless it is computed in float32.
11 steps, our core on torch tensors (NumPy has no bfloat16) beside the anchor, re-synced from the anchor after
every step, so each step is compared on its own.

Asserted per step, for params and every state slot (the slot set as the anchor keeps it, each slot in the
anchor's dtype): finite wherever the anchor's value is finite, and

    |ours - theirs| <= TOL * (ulp(max(|before|, |theirs|)) + eps * |theirs - before|)

in the value's own dtype (``before``: the value before the step, the same on both sides after the re-sync;
``eps``: the dtype's machine epsilon). The first term is one rounding of the stored value; the second the
anchor's roundings of its half intermediates (a chain of ops, each rounded), which scale with the change of the
value, not with the value. ``TOL = 2``: the largest measured is 1.55 (MARS's ``exp_avg_sq``, float16 and bfloat16).
Matrix optimizers (``locality == "matrix"``: the anchors run Newton-Schulz in bfloat16, emulated or not here,
the documented gap of their float64 suites) get ``MATRIX_TOL``.

Where the anchor cannot be matched, what is true is asserted instead (see ``EXPECT``).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm.optim")

import arrayoptim as ao  # noqa: E402
from arrayoptim.testing.lockstep import GROUP_COUNTERS, STEPPED  # noqa: E402
from arrayoptim.testing.oracles import OracleSpec, oracle_for  # noqa: E402

pytestmark = pytest.mark.oracle

LR = 0.01
SHAPES = {"conv": (6, 3, 3, 3), "w": (5, 7), "b": (3,), "scalar": ()}
SCALES = [300.0] + [1.0] * 10
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}
#: in units of ulp(max(|before|, |theirs|)) + eps * |theirs - before| (module docstring)
TOL = 2.0
#: Newton-Schulz in bfloat16 in the anchor (measured: AdaMuon's exp_avg_sq 72 in float16, torch's Muon 35.5)
MATRIX_TOL = 128.0
_MANT = {torch.float16: 10, torch.bfloat16: 7, torch.float32: 23, torch.float64: 52}

_LAMB = ("lamb", "lambc", "lambcd", "lambcw", "lambw", "clamb", "clambw")
_NOVOGRAD = ("novograd", "novogradc", "novogradw")

#: (name, dtype) -> what is asserted instead of the comparison, and why:
#:
#: * ``"anchor_nonfinite"``: the anchor's own half arithmetic makes params or state inf/NaN (``grad.pow(2)`` of a
#:   float16 300 as a half temporary, or a stored float16 ``sum``/``exp_avg_sq`` past 65504). Asserted: the anchor
#:   does go non-finite, ours is finite wherever the anchor's value is finite (re-synced run), and our params stay
#:   finite over 11 free steps (no re-sync).
#: * ``"both_nonfinite"``: the same, but the stored float16 second moment itself holds ``g * g`` = 90000 > 65504
#:   (Big Vision Adafactor at its first step, beta2 = 0; torch's Adafactor): inf in our storage too, then inf / inf
#:   = NaN in the factored update, as in the anchor. Asserted: the anchor goes non-finite, ours is finite wherever
#:   the anchor's value is finite, and in a free run our params go non-finite too (what is true today).
#: * ``"anchor_overflow_step1"``: the anchor's state stays finite, but at step 1 one of its half temporaries
#:   overflows (LaProp's and NAdam's ``exp_avg_sq / bias_correction2`` = 90000: the anchor drops that step's grad
#:   term, we don't). Asserted: finite everywhere, step 1 not compared, steps 2..11 within ``TOL``.
#: * ``"open"``: a gap outside this module's reach, xfail (strict: fixing it fails the test until listed here).
EXPECT = {
    **{(n, "float16"): "anchor_nonfinite" for n in (
        "adagrad", "adopt", "adoptc", "adoptw", "cadopt", "cadoptc", "cadoptw", "rmsproptf", "rmsproptfc",
        "rmsproptfw", "crmsproptf", *_NOVOGRAD)},
    **{(n, "float16"): "both_nonfinite" for n in (
        "adafactorbv", "adafactorbvc", "cadafactorbv", "cadafactorbvc", "torchadafactor")},
    **{(n, "float16"): "anchor_overflow_step1" for n in ("laprop", "lapropc", "claprop", "nadam")},
}
#: (name, dtype) -> reason of an open gap (xfail strict)
OPEN = {
    **{(n, "float16"): "LAMB in float16: the global clip norm is accumulated in float32 like timm's vector_norm "
                       "(it was inf: 570 units), a 448-unit gap remains at step 1 (not yet explained)" for n in _LAMB},
    **{(n, "bfloat16"): "LAMB's trust ratio on the 3-element param at step 11: 55 units (not yet explained)"
       for n in _LAMB},
}
#: slots that copy the param (ASGD's averaged iterate while ``mu == 1``, i.e. for t <= t0 = 1e6): compared in the
#: param's units (``before`` = the param before the step); in their own, the param's rounding after a cancellation
#: (3.17 - 3.16 at step 1) reads as 32 units in float16, 10 in bfloat16
PARAM_LIKE = {"asgd": ("ax",)}


def _spec(name):
    spec = oracle_for(name, lr=LR)
    return spec if isinstance(spec, OracleSpec) and spec.driver is None else None


NAMES = [n for n in ao.list_optimizers() if _spec(n) is not None]
#: names with an oracle whose step needs inputs beyond grads (closure, sparse mask, Hessian, random draws): this
#: grad-stream problem does not drive them
DRIVEN = sorted(n for n in ao.list_optimizers() if n not in NAMES and isinstance(oracle_for(n, lr=LR), OracleSpec))


def _problem(dt, only=None):
    gen = torch.Generator().manual_seed(0)
    ps = {k: torch.randn(s, generator=gen, dtype=torch.float64).to(dt) for k, s in SHAPES.items()
          if only is None or k in only}
    d = {k: torch.sign(torch.randn(v.shape, generator=gen, dtype=torch.float64))
         * (1 + 0.1 * (2 * torch.rand(v.shape, generator=gen, dtype=torch.float64) - 1)) for k, v in ps.items()}
    return ps, [{k: (c * v).to(dt) for k, v in d.items()} for c in SCALES]


def _f64(x):
    return x.detach().to(torch.float64).numpy()


def _units(ours, theirs, before, dt):
    """(max gap in the module docstring's units over the anchor's finite elements, elements where the anchor is
    finite and ours is not)."""
    o, r = _f64(ours), _f64(theirs)
    b = _f64(before) if before is not None and tuple(before.shape) == tuple(theirs.shape) else np.zeros_like(r)
    fin = np.isfinite(r)
    lost = int(np.sum(fin & ~np.isfinite(o)))
    o, r, b = np.where(fin, o, 0.0), np.where(fin, r, 0.0), np.where(fin & np.isfinite(b), b, 0.0)
    ref = np.maximum(np.abs(r), np.abs(b))
    ulp = np.exp2(np.floor(np.log2(np.maximum(ref, torch.finfo(dt).tiny))) - _MANT[dt])
    with np.errstate(invalid="ignore"):
        gap = np.where(o == r, 0.0, np.abs(o - r) / (ulp + torch.finfo(dt).eps * np.abs(r - b)))
    return float(np.max(gap, initial=0.0)), lost


def _oracle_state(oracle, t, ours):
    theirs = dict(oracle.state.get(t, {}))
    if STEPPED in ours and STEPPED not in theirs:  # Adan: whether the anchor has state for the param
        theirs[STEPPED] = any(k not in GROUP_COUNTERS for k in theirs)
    return theirs


def run(name, dtype, resync=True):
    """Step ``name`` beside its anchor on the half problem; returns what was measured. ``resync=False``: both run
    free (no re-sync from the anchor)."""
    dt = DTYPES[dtype]
    spec = _spec(name)
    only = None
    try:  # matrix-only anchors (torch's Muon) refuse the other params
        spec.make_oracle([{"params": [v.clone().requires_grad_() for v in _problem(dt)[0].values()]}])
    except Exception:  # noqa: BLE001 - the 2-D params only
        only = ("w",)
    ps, grads = _problem(dt, only)
    ts = {k: v.clone().requires_grad_() for k, v in ps.items()}
    oracle = spec.make_oracle([{"params": list(ts.values())}])
    opt = ao.create_optimizer(name, **spec.ours_kwargs)
    params = {k: v.clone() for k, v in ps.items()}
    state = opt.init(params)
    out = {"param": 0.0, "state": 0.0, "param_after1": 0.0, "state_after1": 0.0, "lost": [], "anchor_nonfinite": [],
           "ours_nonfinite_params": [], "structure": [], "dtype": []}
    for step, g in enumerate(grads, 1):
        before_p = {k: v.clone() for k, v in params.items()}
        before_s = {k: {kk: vv.clone() if torch.is_tensor(vv) else vv for kk, vv in s.items()} for k, s in state.items()}
        for k, t in ts.items():
            t.grad = g[k].clone()
        oracle.step()
        params, state = opt.step(params, g, state)
        for k, t in ts.items():
            assert params[k].dtype == dt
            if not bool(torch.isfinite(params[k]).all()):
                out["ours_nonfinite_params"].append((step, k))
            if not bool(torch.isfinite(t).all()):
                out["anchor_nonfinite"].append((step, k, "param"))
            pairs = [("param", params[k], t, before_p[k], dt)]
            theirs = _oracle_state(oracle, t, state[k])
            if set(theirs) != set(state[k]):
                out["structure"].append((step, k, sorted(state[k]), sorted(theirs)))
                continue
            for sk, v in theirs.items():
                if torch.is_tensor(v) and v.dtype.is_floating_point:
                    o = state[k][sk]
                    if o.dtype != v.dtype:
                        out["dtype"].append((k, sk, str(o.dtype), str(v.dtype)))
                    if not bool(torch.isfinite(v).all()):
                        out["anchor_nonfinite"].append((step, k, sk))
                    b = before_p[k] if sk in PARAM_LIKE.get(name, ()) else before_s[k].get(sk)
                    pairs.append((sk, o, v, b, v.dtype))
            for what, o, r, b, vdt in pairs:
                gap, lost = _units(o, r, b, vdt)
                if lost:
                    out["lost"].append((step, k, what, lost))
                kind = "param" if what == "param" else "state"
                out[kind] = max(out[kind], gap)
                if step > 1:
                    out[kind + "_after1"] = max(out[kind + "_after1"], gap)
        if not resync:
            continue
        with torch.no_grad():  # re-sync from the anchor: each step compared on its own
            params = {k: ts[k].detach().clone() for k in params}
            for k, t in ts.items():
                for sk, v in oracle.state.get(t, {}).items():
                    o = state[k].get(sk)
                    if torch.is_tensor(v) and torch.is_tensor(o) and v.shape == o.shape:
                        state[k][sk] = v.detach().clone().to(o.dtype)
    return out


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", NAMES)
def test_half_params_match_the_anchor(name, dtype):
    res = run(name, dtype)
    expect = EXPECT.get((name, dtype))
    tol = MATRIX_TOL if ao.get_optimizer_info(name).locality == "matrix" else TOL
    try:
        assert not res["lost"], f"non-finite where the anchor is finite (step, param, slot, count): {res['lost']}"
        assert not res["structure"], f"state slots differ from the anchor's: {res['structure']}"
        if expect in ("anchor_nonfinite", "both_nonfinite"):
            assert res["anchor_nonfinite"], f"listed as {expect} but the anchor stayed finite"
            free = run(name, dtype, resync=False)["ours_nonfinite_params"]
            if expect == "anchor_nonfinite":
                assert not free, f"our params went non-finite: {free[:4]}"
            else:
                assert free, "listed as both_nonfinite but our params stay finite"
            return
        assert not res["anchor_nonfinite"], f"the anchor went non-finite: {res['anchor_nonfinite'][:5]}"
        assert not res["dtype"], f"slot dtypes differ from the anchor's: {res['dtype']}"
        if expect == "anchor_overflow_step1":
            assert res["param"] > tol, "listed as anchor_overflow_step1 but step 1 matches"
            assert res["param_after1"] <= tol and res["state_after1"] <= tol, res
            return
        assert res["param"] <= tol, f"param gap {res['param']:.3g} > {tol} units"
        assert res["state"] <= tol, f"state gap {res['state']:.3g} > {tol} units"
    except AssertionError:
        if (name, dtype) in OPEN:
            pytest.xfail(OPEN[name, dtype])
        raise
    if (name, dtype) in OPEN:
        pytest.fail(f"listed as open but passes now: remove it from OPEN ({OPEN[name, dtype]})")


def test_the_problem_overflows_float16_squares():
    """The first grads are past float16's square root of its largest value: g * g overflows in float16."""
    _, grads = _problem(torch.float16)
    g = grads[0]["conv"]
    assert float(g.abs().min()) >= 256 and not bool(torch.isfinite(g * g).all())
    assert bool(torch.isfinite(g.float() * g.float()).all())


def test_the_excluded_names_are_the_driven_ones():
    """Names with an oracle but no plain-grad drive (listed in the report, not compared here)."""
    assert set(DRIVEN) == {"adahessian", "kron", "kronc", "kronw", "lbfgs", "sparseadam"}


def test_opmath_keeps_slot_identity_and_dtypes_on_numpy():
    """copy=False on float16 NumPy params: params and slots updated in place (identity kept) in float16, the step
    float32, a lazily created param-shaped slot (SGD's momentum_buffer) in float16."""
    rng = np.random.default_rng(0)
    for name, kw in (("adamw", {}), ("sgd", {"momentum": 0.9})):
        opt = ao.create_optimizer(name, lr=0.01, **kw)
        p = {"w": rng.standard_normal((4, 3)).astype(np.float16)}
        state = opt.init(p)
        ids = {k: id(v) for k, v in state["w"].items()}
        w0 = p["w"]
        for _ in range(3):
            new_p, state = opt.step(p, {"w": np.full((4, 3), 300, np.float16)}, state, copy=False)
            assert new_p["w"] is w0 and all(id(state["w"][k]) == i for k, i in ids.items())
            p = new_p
        assert np.isfinite(p["w"]).all() and p["w"].dtype == np.float16
        for k, v in state["w"].items():
            assert v.dtype == (np.float32 if k == "step" else np.float16), (name, k, v.dtype)
            assert np.isfinite(v).all(), (name, k)
