"""Half-precision params of the optimizers timm computes in float32 (AdaBelief, Adafactor, RAdamLegacy: registry
field ``half_compute="float32"``): float32 state and float32 math, rounded back into the float16/bfloat16 param once per step.

The core runs on torch tensors (NumPy has no bfloat16) beside timm, and through the adapter; state must have timm's
dtype (float32) and agree to float32 rounding, params to one rounding of their half dtype (6 steps, no re-sync).
"""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

import arrayoptim as ao  # noqa: E402
from arrayoptim.torch import create_optimizer_v2  # noqa: E402

pytestmark = pytest.mark.oracle

UPCAST = sorted(n for n in ao.list_optimizers() if ao.get_optimizer_info(n).half_compute == "float32")
SHAPES = [(32, 20), (7,), ()]


def test_the_flag_covers_timms_float32_classes():
    assert {ao.get_optimizer_info(n).anchor for n in UPCAST} == {
        "timm.optim.AdaBelief", "timm.optim.Adafactor", "timm.optim.RAdamLegacy"}


def _rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _check(name, dt, ours_params, ours_state, theirs, steps_done):
    for i, t in enumerate(theirs.param_groups[0]["params"]):
        p = ours_params[i]
        assert p.dtype == dt
        assert _rel(p, t) <= torch.finfo(dt).eps, f"{name} {dt} step {steps_done} param {i}"
        for k, v in theirs.state[t].items():
            if torch.is_tensor(v) and v.dtype.is_floating_point:
                o = ours_state(i)[k]
                assert o.dtype == v.dtype == torch.float32, f"{name} slot {k}: {o.dtype} vs timm {v.dtype}"
                assert _rel(o, v) <= 1e-6, f"{name} {dt} step {steps_done} param {i} slot {k}"


def _tensors(dt):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(s, generator=g).to(dt).requires_grad_() for s in SHAPES]


def _grads(dt, steps=6):
    g = torch.Generator().manual_seed(1)
    return [[torch.randn(s, generator=g).to(dt) for s in SHAPES] for _ in range(steps)]


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", UPCAST)
def test_core_on_torch_tensors_matches_timm(name, dt):
    kw = {"lr": 0.01, "weight_decay": 0.01}
    ts = _tensors(dt)
    theirs = timm_optim.create_optimizer_v2(ts, opt=name, **kw)
    core = ao.create_optimizer(name, **kw)
    params = {f"p{i}": t.detach().clone() for i, t in enumerate(ts)}
    state = core.init(params)
    for step, gs in enumerate(_grads(dt)):
        for t, g in zip(ts, gs):
            t.grad = g.clone()
        theirs.step()
        params, state = core.step(params, {f"p{i}": g for i, g in enumerate(gs)}, state)
        _check(name, dt, list(params.values()), lambda i: state[f"p{i}"], theirs, step + 1)


@pytest.mark.parametrize("dt", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["adabelief", "adafactor", "radamlegacy"])
def test_adapter_matches_timm(name, dt):
    """float16 goes through zero-copy views, bfloat16 through float32 working copies: both keep float32 state."""
    kw = {"lr": 0.01, "weight_decay": 0.01}
    ts, us = _tensors(dt), _tensors(dt)
    theirs = timm_optim.create_optimizer_v2(ts, opt=name, **kw)
    ours = create_optimizer_v2(us, opt=name, **kw)
    for step, gs in enumerate(_grads(dt)):
        for t, u, g in zip(ts, us, gs):
            t.grad, u.grad = g.clone(), g.clone()
        theirs.step()
        ours.step()
        _check(name, dt, us, lambda i: ours.state[us[i]], theirs, step + 1)
