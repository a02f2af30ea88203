"""Properties of arrayoptim.schedules that need no oracle: purity, bounds, eager validation, composition."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrayoptim import schedules as S

FAST = settings(max_examples=40, deadline=None)

lrs = st.floats(1e-6, 10.0)
steps = st.integers(0, 400)


# ----------------------------------------------------------------------------------------------------------------
# purity: same t -> same value, whatever was evaluated before


def _some_schedules():
    return [
        S.cosine_lr_scheduler(0.1, t_initial=10, cycle_limit=3, warmup_t=2, noise_range_t=(0, 50)),
        S.tanh_lr_scheduler(0.1, t_initial=7, cycle_mul=1.5, cycle_limit=2),
        S.wsd_lr_scheduler(0.1, t_initial=30, decay_t=10, stable_fn="rsqrt", stable_timescale=3),
        S.multistep_lr_scheduler(0.1, decay_t=[3, 9], decay_rate=0.5, noise_range_t=4),
        S.multiplicative_lr(0.1, lr_lambda=lambda e: 0.99),
        S.cyclic_lr(0.1, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="triangular2"),
        S.chained_scheduler(0.1, schedulers=[S.cosine_annealing_lr(0.1, T_max=5), S.exponential_lr(0.1, gamma=0.9)]),
        S.sequential_lr(0.1, schedulers=[S.exponential_lr(0.1, gamma=0.9), S.multiplicative_lr(0.1, lr_lambda=lambda e: 0.5)],
                        milestones=[3]),
        S.with_warmup(S.exponential_lr(0.1, gamma=0.9), warmup_t=4, warmup_prefix=False),
    ]


@FAST
@given(ts=st.lists(st.integers(0, 200), min_size=1, max_size=10))
def test_schedules_are_pure(ts):
    for s in _some_schedules():
        first = [s(t) for t in ts]
        again = [s(t) for t in reversed(ts)][::-1]
        assert first == again
        assert all(type(v) is float for v in first)


def test_schedules_are_immutable():
    s = S.step_lr(0.1, step_size=2)
    with pytest.raises(AttributeError):
        s.name = "x"
    with pytest.raises(TypeError):
        s.params["gamma"] = 0.5
    assert "step_size=2" in repr(s)


@pytest.mark.parametrize("t,exc", [(-1, ValueError), (1.0, TypeError), ("1", TypeError), (True, TypeError)])
def test_step_argument_is_validated(t, exc):
    with pytest.raises(exc, match="t="):
        S.exponential_lr(0.1, gamma=0.9)(t)


# ----------------------------------------------------------------------------------------------------------------
# bounds (documented min/max)


@FAST
@given(base=lrs, frac_min=st.floats(0, 1), t_initial=st.integers(1, 50), warm=st.integers(0, 10),
       prefix=st.booleans(), k=st.floats(0.2, 4), cycles=st.integers(1, 4), mul=st.sampled_from([1.0, 1.3, 2.0]),
       decay=st.floats(0.1, 1.0), t=steps)
def test_cosine_poly_tanh_stay_between_lr_min_and_base(base, frac_min, t_initial, warm, prefix, k, cycles, mul,
                                                        decay, t):
    lr_min = base * frac_min
    kw = dict(t_initial=t_initial, lr_min=lr_min, cycle_limit=cycles, cycle_mul=mul, cycle_decay=decay,
              warmup_t=warm, warmup_lr_init=lr_min, warmup_prefix=prefix)
    for s in (S.cosine_lr_scheduler(base, k_decay=k, **kw), S.poly_lr_scheduler(base, k_decay=k, power=2.0, **kw),
              S.tanh_lr_scheduler(base, **kw)):
        v = s(t)
        # a decayed cycle peak base * decay**i may fall below lr_min, and then so does the lr (as in timm)
        lo = min(lr_min, base * decay ** (cycles - 1))
        assert lo * (1 - 1e-12) <= v <= base * (1 + 1e-12), (s, t, v)


@FAST
@given(base=lrs, pct=st.floats(0.01, 0.9), seed=st.integers(0, 2**31), t=steps)
def test_noise_is_bounded_by_noise_pct(base, pct, seed, t):
    clean = S.cosine_lr_scheduler(base, t_initial=100)
    noisy = S.cosine_lr_scheduler(base, t_initial=100, noise_range_t=0, noise_pct=pct, noise_seed=seed)
    assert abs(noisy(t) - clean(t)) <= pct * clean(t) * (1 + 1e-12)


@FAST
@given(base=lrs, t=steps, T=st.integers(1, 30), eta=st.floats(0, 1), mult=st.integers(1, 3))
def test_torch_cosines_between_eta_min_and_base(base, t, T, eta, mult):
    eta_min = base * eta
    for s in (S.cosine_annealing_lr(base, T_max=T, eta_min=eta_min),
              S.cosine_annealing_warm_restarts(base, T_0=T, T_mult=mult, eta_min=eta_min)):
        assert eta_min * (1 - 1e-12) <= s(t) <= base * (1 + 1e-12)


@FAST
@given(lo=st.floats(1e-4, 0.1), span=st.floats(0, 1), up=st.integers(1, 20), down=st.integers(0, 20),
       mode=st.sampled_from(["triangular", "triangular2", "exp_range"]), t=steps)
def test_cyclic_between_base_and_max(lo, span, up, down, mode, t):
    s = S.cyclic_lr(0.0, base_lr=lo, max_lr=lo + span, step_size_up=up, step_size_down=down, mode=mode, gamma=0.99)
    assert lo * (1 - 1e-12) <= s(t) <= (lo + span) * (1 + 1e-12)
    assert 0.8 - 1e-12 <= s.momentum(t) <= 0.9 + 1e-12


@FAST
@given(max_lr=lrs, total=st.integers(5, 200), pct=st.floats(0.05, 0.9), three=st.booleans(),
       strat=st.sampled_from(["cos", "linear"]), data=st.data())
def test_one_cycle_between_min_and_max(max_lr, total, pct, three, strat, data):
    try:
        s = S.one_cycle_lr(0.0, max_lr=max_lr, total_steps=total, pct_start=pct, three_phase=three,
                           anneal_strategy=strat)
    except ValueError as e:  # zero-length phase: refused eagerly, naming the arguments
        assert "pct_start" in str(e)
        return
    t = data.draw(st.integers(0, total - 1))
    lo = max_lr / 25.0 / 1e4
    assert lo * (1 - 1e-9) <= s(t) <= max_lr * (1 + 1e-12)


@FAST
@given(base=lrs, t=steps, gamma=st.floats(0.01, 1.0), size=st.integers(1, 20))
def test_decays_never_exceed_base(base, t, gamma, size):
    for s in (S.step_lr(base, step_size=size, gamma=gamma), S.exponential_lr(base, gamma=gamma),
              S.polynomial_lr(base, total_iters=size, power=gamma * 3),
              S.step_lr_scheduler(base, decay_t=size, decay_rate=gamma),
              S.wsd_lr_scheduler(base, t_initial=size + 5, decay_t=size)):
        assert 0.0 <= s(t) <= base


# ----------------------------------------------------------------------------------------------------------------
# eager validation: ValueError / TypeError naming the argument

INVALID = [
    (S.cosine_lr_scheduler, dict(t_initial=0), ValueError, "t_initial"),
    (S.cosine_lr_scheduler, dict(t_initial=10, lr_min=-1.0), ValueError, "lr_min"),
    (S.cosine_lr_scheduler, dict(t_initial=10, cycle_mul=0.0), ValueError, "cycle_mul"),
    (S.cosine_lr_scheduler, dict(t_initial=10, cycle_limit=-1), ValueError, "cycle_limit"),
    (S.cosine_lr_scheduler, dict(t_initial=10, warmup_t=-2), ValueError, "warmup_t"),
    (S.cosine_lr_scheduler, dict(t_initial=10, k_decay=0.0), ValueError, "k_decay"),
    (S.cosine_lr_scheduler, dict(t_initial=10, noise_pct=0.0), ValueError, "noise_pct"),
    (S.cosine_lr_scheduler, dict(t_initial=10, noise_range_t=(1, 2, 3)), ValueError, "noise_range_t"),
    (S.cosine_lr_scheduler, dict(t_initial=10, warmup_prefix=1), TypeError, "warmup_prefix"),
    (S.cosine_lr_scheduler, dict(t_initial="10"), TypeError, "t_initial"),
    (S.tanh_lr_scheduler, dict(t_initial=10, lb=3.0, ub=-7.0), ValueError, "lb"),
    (S.tanh_lr_scheduler, dict(t_initial=10, warmup_lr_init=-0.1), ValueError, "warmup_lr_init"),
    (S.step_lr_scheduler, dict(decay_t=0), ValueError, "decay_t"),
    (S.multistep_lr_scheduler, dict(decay_t=[5, 2]), ValueError, "decay_t"),
    (S.multistep_lr_scheduler, dict(decay_t=5), TypeError, "decay_t"),
    (S.poly_lr_scheduler, dict(t_initial=10, power=float("nan")), ValueError, "power"),
    (S.wsd_lr_scheduler, dict(t_initial=10, decay_t=11), ValueError, "decay_t"),
    (S.wsd_lr_scheduler, dict(t_initial=10, decay_t=5, stable_fn="sqrt"), ValueError, "stable_fn"),
    (S.wsd_lr_scheduler, dict(t_initial=10, decay_t=5, decay_fn="step"), ValueError, "decay_fn"),
    (S.wsd_lr_scheduler, dict(t_initial=10, decay_t=5, decay_ratio=1.0), ValueError, "decay_ratio"),
    (S.wsd_lr_scheduler, dict(t_initial=10, decay_t=5, stable_fn="rsqrt"), ValueError, "stable_timescale"),
    (S.plateau_lr_scheduler, dict(mode="up"), ValueError, "mode"),
    (S.plateau_lr_scheduler, dict(decay_rate=1.0), ValueError, "decay_rate"),
    (S.plateau_lr_scheduler, dict(patience_t=-1), ValueError, "patience_t"),
    (S.create_scheduler_v2, dict(sched="cosinus"), ValueError, "sched"),
    (S.create_scheduler_v2, dict(step_on_epochs=False), ValueError, "updates_per_epoch"),
    (S.create_scheduler_v2, dict(sched="wsd", num_epochs=10, decay_epochs=20), ValueError, "decay_epochs"),
    (S.lambda_lr, dict(lr_lambda=3), TypeError, "lr_lambda"),
    (S.multiplicative_lr, dict(lr_lambda=None), TypeError, "lr_lambda"),
    (S.step_lr, dict(step_size=0), ValueError, "step_size"),
    (S.step_lr, dict(step_size=2.5), TypeError, "step_size"),
    (S.step_lr, dict(step_size=2, last_epoch=3), ValueError, "last_epoch"),
    (S.multistep_lr, dict(milestones=[-1]), ValueError, "milestones"),
    (S.constant_lr, dict(factor=1.5), ValueError, "factor"),
    (S.constant_lr, dict(total_iters=-1), ValueError, "total_iters"),
    (S.linear_lr, dict(start_factor=0.0), ValueError, "start_factor"),
    (S.linear_lr, dict(end_factor=2.0), ValueError, "end_factor"),
    (S.exponential_lr, dict(gamma=float("inf")), ValueError, "gamma"),
    (S.polynomial_lr, dict(total_iters=-3), ValueError, "total_iters"),
    (S.cosine_annealing_lr, dict(T_max=0), ValueError, "T_max"),
    (S.cosine_annealing_warm_restarts, dict(T_0=0), ValueError, "T_0"),
    (S.cosine_annealing_warm_restarts, dict(T_0=2, T_mult=0), ValueError, "T_mult"),
    (S.cyclic_lr, dict(base_lr=0.1, max_lr=1.0, mode="saw"), ValueError, "mode"),
    (S.cyclic_lr, dict(base_lr=0.1, max_lr=1.0, step_size_up=0), ValueError, "step_size_up"),
    (S.one_cycle_lr, dict(max_lr=1.0), ValueError, "total_steps"),
    (S.one_cycle_lr, dict(max_lr=1.0, total_steps=10, pct_start=1.5), ValueError, "pct_start"),
    (S.one_cycle_lr, dict(max_lr=1.0, total_steps=10, pct_start=0.1), ValueError, "pct_start"),
    (S.one_cycle_lr, dict(max_lr=1.0, total_steps=10, anneal_strategy="exp"), ValueError, "anneal_strategy"),
    (S.sequential_lr, dict(schedulers=[S.constant_schedule(1.0)] * 2, milestones=[]), ValueError, "milestones"),
    (S.sequential_lr, dict(schedulers=[S.constant_schedule(1.0)] * 3, milestones=[5, 2]), ValueError, "milestones"),
    (S.sequential_lr, dict(schedulers=[], milestones=[]), ValueError, "schedulers"),
    (S.sequential_lr, dict(schedulers=[S.step_lr(0.5, step_size=1)], milestones=[]), ValueError, "initial_lr"),
    (S.chained_scheduler, dict(schedulers=[S.reduce_lr_on_plateau(1.0)]), TypeError, "schedulers"),
    (S.reduce_lr_on_plateau, dict(factor=1.0), ValueError, "factor"),
    (S.reduce_lr_on_plateau, dict(threshold_mode="pct"), ValueError, "threshold_mode"),
    (S.reduce_lr_on_plateau, dict(min_lr=[0.1, 0.2]), TypeError, "min_lr"),
    (S.reduce_lr_on_plateau, dict(cooldown=-1), ValueError, "cooldown"),
]


@pytest.mark.parametrize("factory,kw,exc,arg", INVALID, ids=[f"{f.__name__}-{a}-{i}" for i, (f, _, _, a) in
                                                              enumerate(INVALID)])
def test_invalid_arguments_raise_eagerly(factory, kw, exc, arg):
    with pytest.raises(exc, match=arg):
        factory(1.0, **kw)


REQUIRED = dict(LambdaLR=dict(lr_lambda=abs), MultiplicativeLR=dict(lr_lambda=abs), StepLR=dict(step_size=1),
                MultiStepLR=dict(milestones=[1]), ExponentialLR=dict(gamma=0.9), CosineAnnealingLR=dict(T_max=2),
                CosineAnnealingWarmRestarts=dict(T_0=2), SequentialLR=dict(schedulers=[abs], milestones=[]),
                ChainedScheduler=dict(schedulers=[abs]), CosineLRScheduler=dict(t_initial=2),
                TanhLRScheduler=dict(t_initial=2), StepLRScheduler=dict(decay_t=1),
                MultiStepLRScheduler=dict(decay_t=[1]), PolyLRScheduler=dict(t_initial=2),
                WSDLRScheduler=dict(t_initial=2, decay_t=1), CyclicLR=dict(base_lr=0.01, max_lr=0.1),
                OneCycleLR=dict(max_lr=0.1, total_steps=10))


@pytest.mark.parametrize("name", sorted({*S.TORCH_EQUIVALENTS, *S.TIMM_EQUIVALENTS}) + ["create_scheduler_v2"])
def test_every_public_factory_validates_base_lr(name):
    f = S.TORCH_EQUIVALENTS.get(name) or S.TIMM_EQUIVALENTS.get(name) or S.create_scheduler_v2
    f(0.1, **REQUIRED.get(name, {}))  # valid
    with pytest.raises(TypeError, match="lr"):
        f("0.1", **REQUIRED.get(name, {}))


def test_unknown_keyword_raises():
    with pytest.raises(TypeError):
        S.step_lr(0.1, step_size=2, verbose=True)
    with pytest.raises(TypeError):
        S.cosine_lr_scheduler(0.1, t_initial=5, eps=1e-8)


def test_equivalence_tables_are_complete():
    assert set(S.TORCH_EQUIVALENTS) == {
        "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
        "PolynomialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "CyclicLR", "OneCycleLR",
        "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"}
    assert set(S.TIMM_EQUIVALENTS) == {
        "CosineLRScheduler", "TanhLRScheduler", "StepLRScheduler", "MultiStepLRScheduler", "PolyLRScheduler",
        "PlateauLRScheduler", "WSDLRScheduler"}


# ----------------------------------------------------------------------------------------------------------------
# composition and hyperparameters


def test_join_schedules_restarts_each_piece():
    s = S.join_schedules([S.constant_schedule(1.0), S.exponential_lr(2.0, gamma=0.5), lambda t: 10.0 + t],
                         boundaries=[2, 4])
    assert [s(t) for t in range(7)] == [1.0, 1.0, 2.0, 1.0, 10.0, 11.0, 12.0]


@pytest.mark.parametrize("prefix", [True, False])
def test_with_warmup_is_continuous_and_linear(prefix):
    inner = S.cosine_annealing_lr(1.0, T_max=20)
    s = S.with_warmup(inner, warmup_t=5, warmup_lr_init=0.1, warmup_prefix=prefix)
    target = inner(0 if prefix else 5)
    assert s(0) == 0.1
    assert math.isclose(s(5), target)
    assert all(s(t + 1) - s(t) == pytest.approx((target - 0.1) / 5) for t in range(4))
    assert s(12) == (inner(7) if prefix else inner(12))
    # timm's prefixed cosine warmup is exactly this composition
    timm_like = S.cosine_lr_scheduler(1.0, t_initial=20, warmup_t=5, warmup_lr_init=0.1, warmup_prefix=True)
    composed = S.with_warmup(S.cosine_lr_scheduler(1.0, t_initial=20), warmup_t=5, warmup_lr_init=0.1)
    assert all(math.isclose(timm_like(t), composed(t), rel_tol=1e-12, abs_tol=1e-15) for t in range(30))


def test_scale_schedule():
    s = S.scale_schedule(S.step_lr(1.0, step_size=1, gamma=0.5), 0.25)
    assert [s(t) for t in range(3)] == [0.25, 0.125, 0.0625]


def test_hyperparams_at_drives_any_hyperparameter():
    oc = S.one_cycle_lr(0.0, max_lr=1.0, total_steps=10)
    wd = S.linear_lr(1e-2, start_factor=1.0, end_factor=0.1, total_iters=10)
    hp = S.hyperparams_at(3, lr=oc, weight_decay=wd, betas=(oc.momentum, 0.999), momentum=0.9, nesterov=True)
    assert hp == {"lr": oc(3), "weight_decay": wd(3), "betas": (oc.momentum(3), 0.999), "momentum": 0.9,
                  "nesterov": True}
    assert all(type(v) is float for v in (hp["lr"], hp["weight_decay"], hp["momentum"]))
    with pytest.raises(TypeError, match="eps"):
        S.hyperparams_at(0, eps="1e-8")
    with pytest.raises(TypeError, match="lr"):
        S.hyperparams_at(0, lr=lambda t: "x")
    with pytest.raises(ValueError, match="t="):
        S.hyperparams_at(-1, lr=0.1)


def test_plateau_machines_are_pure():
    m = S.plateau_lr_scheduler(1.0, mode="min", patience_t=0, warmup_t=1, warmup_lr_init=0.5)
    s0 = m.init()
    assert s0.lr == 0.5
    s1, lr1 = m.step(s0, 1.0)
    assert lr1 == 1.0 and s1.epoch == 1  # epoch 1 <= warmup_t: still warming up
    s2, _ = m.step(s1, 1.0)
    s3, lr3 = m.step(s2, 1.0)
    assert lr3 == pytest.approx(0.1)
    assert m.step(s2, 1.0) == (s3, lr3) and m.init() == s0
    with pytest.raises(TypeError, match="state"):
        m.step((1.0, 2.0), 1.0)


def test_import_does_not_pull_torch_or_timm():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'timm'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import arrayoptim.schedules as S\n"
        "s, n = S.create_scheduler_v2(0.1, noise=0.1)\n"
        "assert s(50) > 0 and n == 300\n"
        "assert not any(m.split('.')[0] in ('torch', 'timm') for m in sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
