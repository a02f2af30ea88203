"""arrayoptim.schedules.TORCH_EQUIVALENTS against the real torch.optim.lr_scheduler classes.

Each configuration runs torch's scheduler on a dummy SGD optimizer with two param groups (different lrs),
records every group's lr after construction and after each ``step()`` for three periods, and compares with the
pure schedules built from the same keyword arguments. Resumption is checked by rebuilding optimizer and scheduler
from their state dicts halfway through.
"""

from __future__ import annotations

import random

import pytest

from arrayoptim import schedules as S

pytestmark = pytest.mark.oracle

LRS = (0.1, 0.037)
# torch's recursive updates agree with the closed forms to rounding; the bound is relative to the base lr
REL_TOL = 1e-12

# (name, kwargs, number of steps, bit-exact?)
CONFIGS = [
    ("LambdaLR", dict(lr_lambda=lambda e: 0.95 ** e), 30, True),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (e + 1)), 30, True),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.9), 30, True),
    ("MultiplicativeLR", dict(lr_lambda=lambda e: 1.0 - 0.01 * e), 30, True),
    ("StepLR", dict(step_size=3, gamma=0.5), 30, False),
    ("StepLR", dict(step_size=1, gamma=0.9), 30, False),
    ("StepLR", dict(step_size=7), 30, False),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.5), 30, False),
    ("MultiStepLR", dict(milestones=[0, 3], gamma=0.1), 15, False),
    ("MultiStepLR", dict(milestones=[10, 4], gamma=0.3), 30, False),
    ("ConstantLR", dict(), 15, False),
    ("ConstantLR", dict(factor=0.5, total_iters=0), 10, False),
    ("ConstantLR", dict(factor=1.0, total_iters=3), 10, False),
    ("ConstantLR", dict(factor=0.1, total_iters=1), 10, False),
    ("LinearLR", dict(), 15, False),
    ("LinearLR", dict(start_factor=0.1, end_factor=1.0, total_iters=10), 30, False),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=4), 12, False),
    ("LinearLR", dict(start_factor=0.5, end_factor=0.25, total_iters=0), 6, False),
    ("LinearLR", dict(start_factor=0.3, end_factor=0.7, total_iters=1), 6, False),
    ("ExponentialLR", dict(gamma=0.9), 30, False),
    ("ExponentialLR", dict(gamma=1.1), 30, False),
    ("PolynomialLR", dict(), 15, False),
    ("PolynomialLR", dict(total_iters=10, power=2.0), 30, False),
    ("PolynomialLR", dict(total_iters=7, power=0.5), 21, False),
    ("PolynomialLR", dict(total_iters=0, power=1.0), 6, False),
    ("CosineAnnealingLR", dict(T_max=10), 60, False),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.001), 42, False),
    ("CosineAnnealingLR", dict(T_max=1), 6, False),
    ("CosineAnnealingLR", dict(T_max=3, eta_min=0.05), 18, False),
    ("CosineAnnealingWarmRestarts", dict(T_0=3), 30, True),
    ("CosineAnnealingWarmRestarts", dict(T_0=2, T_mult=2, eta_min=0.01), 45, True),
    ("CosineAnnealingWarmRestarts", dict(T_0=5, T_mult=3), 60, True),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=4), 24, True),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=5, mode="triangular2"), 48, True),
    ("CyclicLR", dict(base_lr=0.001, max_lr=0.1, step_size_up=2, mode="exp_range", gamma=0.9), 24, True),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 1 / x, scale_mode="cycle"),
     36, True),
    ("CyclicLR", dict(base_lr=0.01, max_lr=0.1, step_size_up=3, scale_fn=lambda x: 0.99 ** x,
                      scale_mode="iterations", cycle_momentum=False), 36, True),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=20), 20, True),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=30, anneal_strategy="linear", pct_start=0.25), 30, True),
    ("OneCycleLR", dict(max_lr=1.0, epochs=4, steps_per_epoch=5, three_phase=True), 20, True),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=17, three_phase=True, anneal_strategy="linear",
                        div_factor=10.0, final_div_factor=100.0, base_momentum=0.8, max_momentum=0.9), 17, True),
]


def _torch():
    return pytest.importorskip("torch")


def _make_opt(torch, lrs=LRS):
    ps = [torch.zeros(1, requires_grad=True) for _ in lrs]
    return torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)], lr=lrs[0], momentum=0.9)


def _run(opt, sched, n, extra=None):
    """lrs (and momenta) of every group after construction and after each of n steps."""
    lrs = [[g["lr"] for g in opt.param_groups]]
    moms = [[g["momentum"] for g in opt.param_groups]]
    for _ in range(n):
        opt.step()
        sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([g["momentum"] for g in opt.param_groups])
    return lrs, moms


def _assert_close(got, want, base, exact, where):
    if exact:
        assert got == want, f"{where}: {got!r} != {want!r}"
    else:
        assert abs(got - want) <= REL_TOL * max(abs(base), 1e-300), f"{where}: {got!r} vs {want!r}"


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,kwargs,n,exact", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_matches_torch_stepping(name, kwargs, n, exact):
    torch = _torch()
    opt = _make_opt(torch)
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    lrs, moms = _run(opt, sched, n)
    for g, lr0 in enumerate(LRS):
        s = S.TORCH_EQUIVALENTS[name](lr0, **kwargs)
        for t in range(n + 1):
            _assert_close(s(t), lrs[t][g], lr0, exact, f"{name} group {g} t={t}")
        if s.momentum is not None:
            for t in range(n + 1):
                assert s.momentum(t) == moms[t][g], f"{name} momentum t={t}"
    if name == "OneCycleLR":
        with pytest.raises(ValueError, match="t="):
            s(n + 1)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name,kwargs,n,exact", CONFIGS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONFIGS)])
def test_matches_torch_after_resume(name, kwargs, n, exact):
    """Step k times, rebuild optimizer + scheduler from their state dicts, continue; pure s(t) needs no state."""
    torch = _torch()
    k = n // 2
    opt = _make_opt(torch)
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **kwargs)
    _run(opt, sched, k)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt2 = _make_opt(torch, lrs=(0.5, 0.5))  # deliberately different lrs: they must come from the checkpoint
    sched2 = getattr(torch.optim.lr_scheduler, name)(opt2, **kwargs)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    lrs, _ = _run(opt2, sched2, n - k)
    for g, lr0 in enumerate(LRS):
        s = S.TORCH_EQUIVALENTS[name](lr0, **kwargs)
        for j in range(n - k + 1):
            _assert_close(s(k + j), lrs[j][g], lr0, exact, f"{name} resumed group {g} t={k + j}")


# ----------------------------------------------------------------------------------------------------------------
# SequentialLR and ChainedScheduler: sub-schedulers are given as (torch class name, kwargs)

COMPOSITES = [
    ("SequentialLR", [("LinearLR", dict(start_factor=0.1, total_iters=3)), ("CosineAnnealingLR", dict(T_max=10))],
     dict(milestones=[3]), 39, False),
    ("SequentialLR", [("ConstantLR", dict(factor=0.5, total_iters=2)), ("ExponentialLR", dict(gamma=0.9)),
                      ("StepLR", dict(step_size=2, gamma=0.5))], dict(milestones=[2, 5]), 20, False),
    ("SequentialLR", [("ExponentialLR", dict(gamma=0.9)), ("MultiplicativeLR", dict(lr_lambda=lambda e: 0.8))],
     dict(milestones=[4]), 15, False),
    ("SequentialLR", [("ExponentialLR", dict(gamma=0.9)), ("LambdaLR", dict(lr_lambda=lambda e: 1 / (e + 1)))],
     dict(milestones=[0]), 10, False),
    ("SequentialLR", [("ExponentialLR", dict(gamma=0.9)), ("StepLR", dict(step_size=2)),
                      ("LinearLR", dict(start_factor=0.5, total_iters=2))], dict(milestones=[3, 3]), 12, False),
    ("SequentialLR", [("LinearLR", dict(start_factor=0.2, total_iters=4)),
                      ("CosineAnnealingWarmRestarts", dict(T_0=3, T_mult=2))], dict(milestones=[4]), 30, False),
    ("SequentialLR", [("ConstantLR", dict(factor=0.5, total_iters=10)), ("PolynomialLR", dict(total_iters=6)),
                      ("MultiStepLR", dict(milestones=[0, 2]))], dict(milestones=[2, 9]), 20, False),
    ("ChainedScheduler", [("ConstantLR", dict(factor=0.1, total_iters=4)), ("ExponentialLR", dict(gamma=0.9))],
     dict(), 20, False),
    ("ChainedScheduler", [("LinearLR", dict(start_factor=0.2, total_iters=5)), ("StepLR", dict(step_size=3)),
                          ("MultiStepLR", dict(milestones=[0, 4, 8], gamma=0.5)),
                          ("PolynomialLR", dict(total_iters=12, power=2.0))], dict(), 20, False),
    ("ChainedScheduler", [("CosineAnnealingLR", dict(T_max=5)), ("ExponentialLR", dict(gamma=0.9))], dict(), 30,
     False),
    ("ChainedScheduler", [("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
                          ("ConstantLR", dict(factor=0.5, total_iters=3))], dict(), 24, False),
    ("ChainedScheduler", [("ExponentialLR", dict(gamma=0.9)), ("LambdaLR", dict(lr_lambda=lambda e: 0.5 ** e))],
     dict(), 10, False),
    ("ChainedScheduler", [("CosineAnnealingWarmRestarts", dict(T_0=3)), ("ExponentialLR", dict(gamma=0.8))],
     dict(), 15, False),
    ("ChainedScheduler", [("MultiplicativeLR", dict(lr_lambda=lambda e: 0.95)),
                          ("ConstantLR", dict(factor=0.25, total_iters=2))], dict(), 10, False),
]


def _build_composite(torch, opt, outer, subs, kw):
    torch_subs = [getattr(torch.optim.lr_scheduler, n)(opt, **k) for n, k in subs]
    if outer == "SequentialLR":
        return torch.optim.lr_scheduler.SequentialLR(opt, torch_subs, **kw)
    return torch.optim.lr_scheduler.ChainedScheduler(torch_subs, optimizer=opt)


def _pure_composite(outer, subs, kw, lr0):
    pure_subs = [S.TORCH_EQUIVALENTS[n](lr0, **k) for n, k in subs]
    return S.TORCH_EQUIVALENTS[outer](lr0, schedulers=pure_subs, **kw)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("outer,subs,kw,n,exact", COMPOSITES, ids=[f"{c[0]}-{i}" for i, c in enumerate(COMPOSITES)])
def test_composites_match_torch(outer, subs, kw, n, exact):
    torch = _torch()
    opt = _make_opt(torch)
    sched = _build_composite(torch, opt, outer, subs, kw)
    lrs, _ = _run(opt, sched, n)
    for g, lr0 in enumerate(LRS):
        s = _pure_composite(outer, subs, kw, lr0)
        for t in range(n + 1):
            _assert_close(s(t), lrs[t][g], lr0, exact, f"{outer} group {g} t={t}")
    # resume from state
    k = n // 2
    opt = _make_opt(torch)
    sched = _build_composite(torch, opt, outer, subs, kw)
    _run(opt, sched, k)
    opt_state, sched_state = opt.state_dict(), sched.state_dict()
    opt2 = _make_opt(torch)
    sched2 = _build_composite(torch, opt2, outer, subs, kw)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(sched_state)
    lrs2, _ = _run(opt2, sched2, n - k)
    for g, lr0 in enumerate(LRS):
        s = _pure_composite(outer, subs, kw, lr0)
        for j in range(n - k + 1):
            _assert_close(s(k + j), lrs2[j][g], lr0, exact, f"{outer} resumed group {g} t={k + j}")


# ----------------------------------------------------------------------------------------------------------------
# ReduceLROnPlateau

PLATEAU_CONFIGS = [
    dict(),
    dict(mode="max", patience=2),
    dict(factor=0.5, patience=1, cooldown=2, min_lr=0.004),
    dict(mode="min", threshold_mode="abs", threshold=0.05, patience=0),
    dict(mode="max", threshold_mode="abs", threshold=0.01, patience=3, cooldown=1, eps=1e-3),
    dict(mode="max", threshold=0.1, patience=1, min_lr=0.02, factor=0.3),
]


def _metrics(seed, n=60):
    rng = random.Random(seed)
    out, x = [], 1.0
    for _ in range(n):
        x = x + rng.choice([-0.1, -0.01, 0.0, 0.0, 0.005, 0.05])
        out.append(round(x, 3) if rng.random() < 0.8 else x)
    return out


@pytest.mark.parametrize("kw", PLATEAU_CONFIGS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reduce_lr_on_plateau_matches_torch(kw, seed):
    torch = _torch()
    opt = _make_opt(torch)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **kw)
    machines = [S.reduce_lr_on_plateau(lr0, **kw) for lr0 in LRS]
    states = [m.init() for m in machines]
    reductions = 0
    for metric in _metrics(seed):
        opt.step()
        sched.step(metric)
        for g, m in enumerate(machines):
            states[g], lr = m.step(states[g], metric)
            assert lr == opt.param_groups[g]["lr"]
            assert states[g].best == sched.best
            assert states[g].num_bad_epochs == sched.num_bad_epochs
            assert states[g].cooldown_counter == sched.cooldown_counter
            assert states[g].last_epoch == sched.last_epoch
        reductions += states[0].lr != LRS[0]
    assert reductions > 0 or kw.get("mode") == "max"  # the 'min' configurations do reduce on these metrics


def test_reduce_lr_on_plateau_state_is_pure():
    m = S.reduce_lr_on_plateau(1.0, patience=0)
    s0 = m.init()
    s1, lr1 = m.step(s0, 1.0)
    s2, lr2 = m.step(s1, 1.0)
    assert lr2 == 0.1 and s1 == m.step(s0, 1.0)[0] and s0 == m.init()
