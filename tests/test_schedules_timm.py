"""arrayoptim.schedules.TIMM_EQUIVALENTS and create_scheduler_v2 against the real timm schedulers.

timm is driven the way its train.py drives it: ``step_update(num_updates)`` after every update and
``step(epoch + 1, metric)`` after every epoch (plus one explicit ``step(0)`` / ``step_update(0)`` call), on an
optimizer with three param groups (two base lrs, and one with ``lr_scale``). After *every* call each group's lr
must equal the pure schedule's value at the step timm last consumed, bit for bit.
"""

from __future__ import annotations

import itertools
import random

import pytest

from arrayoptim import schedules as S

pytestmark = pytest.mark.oracle

GROUPS = ({"lr": 0.1}, {"lr": 0.037}, {"lr": 0.05, "lr_scale": 0.5})
UPDATES_PER_EPOCH = 3


def _torch_timm():
    torch = pytest.importorskip("torch")
    timm_sched = pytest.importorskip("timm.scheduler")
    return torch, timm_sched


def _make_opt(torch):
    groups = []
    for g in GROUPS:
        groups.append({"params": [torch.zeros(1, requires_grad=True)], **g})
    return torch.optim.SGD(groups, lr=0.1)


def _expected(s_by_group, t):
    out = []
    for g, s in zip(GROUPS, s_by_group):
        v = s(t)
        out.append(v * g["lr_scale"] if "lr_scale" in g else v)
    return out


def _check_train_loop(cls_name, kwargs, t_in_epochs, epochs):
    torch, timm_sched = _torch_timm()
    opt = _make_opt(torch)
    sched = getattr(timm_sched, cls_name)(opt, t_in_epochs=t_in_epochs, **kwargs)
    pure = [S.TIMM_EQUIVALENTS[cls_name](g["lr"], t_in_epochs=t_in_epochs, **kwargs) for g in GROUPS]
    assert all(p.t_in_epochs is t_in_epochs for p in pure)
    lrs = lambda: [g["lr"] for g in opt.param_groups]  # noqa: E731
    (sched.step if t_in_epochs else sched.step_update)(0)
    assert lrs() == _expected(pure, 0), f"{cls_name} {kwargs} t=0"
    num_updates, t = 0, 0
    for epoch in range(epochs):
        for _ in range(UPDATES_PER_EPOCH):
            num_updates += 1
            sched.step_update(num_updates=num_updates)
            if not t_in_epochs:
                t = num_updates
            assert lrs() == _expected(pure, t), f"{cls_name} {kwargs} update {num_updates} (t={t})"
        sched.step(epoch + 1)
        if t_in_epochs:
            t = epoch + 1
        assert lrs() == _expected(pure, t), f"{cls_name} {kwargs} epoch {epoch + 1} (t={t})"


WARMUPS = [dict(), dict(warmup_t=3, warmup_lr_init=0.01, warmup_prefix=False),
           dict(warmup_t=3, warmup_lr_init=0.01, warmup_prefix=True)]
CYCLES = [dict(), dict(cycle_limit=3, lr_min=1e-3), dict(cycle_limit=3, cycle_mul=1.5, cycle_decay=0.5),
          dict(cycle_limit=4, cycle_mul=0.9, cycle_decay=0.7, lr_min=2e-3)]
NOISES = [dict(), dict(noise_range_t=(4, 20)), dict(noise_range_t=10, noise_pct=0.3, noise_std=0.5, noise_seed=7)]


def _grid():
    out = []
    for w, c, n in itertools.product(WARMUPS, CYCLES, NOISES):
        for k in (1.0, 2.0):
            out.append(("CosineLRScheduler", dict(t_initial=8, k_decay=k, **w, **c, **n)))
            out.append(("PolyLRScheduler", dict(t_initial=8, k_decay=k, power=0.5 if k == 1 else 2.0, **w, **c, **n)))
        out.append(("TanhLRScheduler", dict(t_initial=8, **w, **c, **n)))
    out.append(("TanhLRScheduler", dict(t_initial=9, lb=-3.0, ub=5.0, warmup_t=2, warmup_lr_init=0.0)))
    for w, n in itertools.product(WARMUPS, NOISES):
        out.append(("StepLRScheduler", dict(decay_t=4, decay_rate=0.5, **w, **n)))
        out.append(("StepLRScheduler", dict(decay_t=2.4, decay_rate=0.9, **w, **n)))
        out.append(("MultiStepLRScheduler", dict(decay_t=[1, 5, 9, 9, 20], decay_rate=0.5, **w, **n)))
        out.append(("MultiStepLRScheduler", dict(decay_t=[6, 12], decay_rate=0.1, **w, **n)))
    decay_fns = ["1-sqrt", "linear", "cosine", "power", "exp", lambda f: (1 - f) ** 2]
    for stable, dfn, w, n in itertools.product(["constant", "rsqrt", "power"], decay_fns,
                                               [dict(), dict(warmup_t=3, warmup_lr_init=0.01)], NOISES[:2]):
        kw = dict(t_initial=24, decay_t=10, stable_fn=stable, decay_fn=dfn, lr_min=1e-3, decay_power=1.5,
                  decay_ratio=0.05, stable_power=0.3, **w, **n)
        if stable != "constant" and not w:
            kw["stable_timescale"] = 4
        out.append(("WSDLRScheduler", kw))
    return out


GRID = _grid()


@pytest.mark.parametrize("t_in_epochs", [True, False], ids=["per_epoch", "per_update"])
@pytest.mark.parametrize("cls_name,kwargs", GRID, ids=[f"{c}-{i}" for i, (c, _) in enumerate(GRID)])
def test_matches_timm_train_loop(cls_name, kwargs, t_in_epochs):
    # per-epoch: 30 epochs cover several cycles; per-update: 10 epochs x 3 updates reach the same t
    _check_train_loop(cls_name, kwargs, t_in_epochs, epochs=30 if t_in_epochs else 10)


def test_grid_covers_every_class():
    assert {c for c, _ in GRID} | {"PlateauLRScheduler"} == set(S.TIMM_EQUIVALENTS)


# ----------------------------------------------------------------------------------------------------------------
# PlateauLRScheduler

PLATEAU = [
    dict(),
    dict(mode="min", patience_t=1, decay_rate=0.5),
    dict(mode="min", patience_t=2, cooldown_t=2, lr_min=0.004, warmup_t=3, warmup_lr_init=0.001),
    dict(mode="max", patience_t=1, threshold=0.05, noise_range_t=(3, 15)),
    dict(mode="min", patience_t=0, noise_range_t=5, noise_type="uniform", noise_pct=0.2, noise_seed=3,
         warmup_t=2, warmup_lr_init=0.02),
]


def _metrics(seed, n=40):
    rng = random.Random(seed)
    out, x = [], 1.0
    for _ in range(n):
        x = x + rng.choice([-0.1, -0.01, 0.0, 0.0, 0.005, 0.05])
        out.append(None if rng.random() < 0.1 else x)
    return out


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kw", PLATEAU)
def test_plateau_matches_timm(kw, seed):
    torch, timm_sched = _torch_timm()
    lrs0 = (0.1, 0.037)
    ps = [torch.zeros(1, requires_grad=True) for _ in lrs0]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs0)], lr=0.1)
    sched = timm_sched.PlateauLRScheduler(opt, **kw)
    machines = [S.plateau_lr_scheduler(lr, **kw) for lr in lrs0]
    states = [m.init() for m in machines]
    assert [s.lr for s in states] == [g["lr"] for g in opt.param_groups]
    changes = 0
    for epoch, metric in enumerate(_metrics(seed)):
        sched.step(epoch + 1, metric)
        for g, m in enumerate(machines):
            states[g], lr = m.step(states[g], metric)
            assert lr == opt.param_groups[g]["lr"], f"epoch {epoch + 1} group {g}"
            assert states[g].epoch == epoch + 1
        changes += states[0].lr != lrs0[0]
    assert changes > 0


# ----------------------------------------------------------------------------------------------------------------
# create_scheduler_v2

FACTORY = []
for sched in ["cosine", "tanh", "step", "constant", "multistep", "poly", "wsd", "rsqrt", "none"]:
    for kw in [
        dict(num_epochs=20),
        dict(num_epochs=20, warmup_epochs=3, cooldown_epochs=2, noise=[0.2, 0.6], decay_epochs=5,
             decay_milestones=[5, 12]),
        dict(num_epochs=20, warmup_epochs=3, warmup_prefix=True, cooldown_epochs=2, noise=0.5, cycle_limit=2,
             k_decay=1.5, decay_epochs=0.3, decay_milestones=[4, 8], min_lr=1e-4),
        dict(num_epochs=12, warmup_epochs=2, step_on_epochs=False, updates_per_epoch=4, noise=[0.5],
             cycle_limit=2, cycle_mul=2.0, decay_epochs=4, decay_milestones=[3, 6], stable_timescale=3),
        dict(num_epochs=12, step_on_epochs=False, updates_per_epoch=5, cooldown_epochs=1, decay_fn="cosine",
             stable_timescale=2, decay_rate=0.5),
    ]:
        FACTORY.append((sched, kw))


@pytest.mark.parametrize("sched,kw", FACTORY, ids=[f"{s}-{i}" for i, (s, _) in enumerate(FACTORY)])
def test_create_scheduler_v2_matches_timm(sched, kw):
    torch, timm_sched = _torch_timm()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    try:
        ref, ref_epochs = timm_sched.create_scheduler_v2(opt, sched=sched, **kw)
    except ValueError as e:  # e.g. rsqrt without warmup or stable_timescale: we must refuse it too
        with pytest.raises(ValueError, match="stable_timescale"):
            S.create_scheduler_v2(0.1, sched=sched, **kw)
        assert "stable_timescale" in str(e)
        return
    s, epochs = S.create_scheduler_v2(0.1, sched=sched, **kw)
    assert epochs == ref_epochs
    if ref is None:
        assert s is None
        return
    assert s.t_in_epochs == ref.t_in_epochs
    horizon = epochs * (1 if kw.get("step_on_epochs", True) else kw["updates_per_epoch"]) + 2
    for t in range(horizon):
        want = ref._add_noise(ref._get_lr(t), t)[0]
        assert s(t) == want, f"t={t}"


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_create_scheduler_v2_plateau():
    torch, timm_sched = _torch_timm()
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    kw = dict(num_epochs=30, warmup_epochs=2, patience_epochs=1, plateau_mode="min", noise=[0.3, 0.7],
              warmup_prefix=True)
    ref, ref_epochs = timm_sched.create_scheduler_v2(opt, sched="plateau", **kw)
    m, epochs = S.create_scheduler_v2(0.1, sched="plateau", **kw)
    assert epochs == ref_epochs == 32
    state = m.init()
    for epoch, metric in enumerate(_metrics(5, 30)):
        ref.step(epoch + 1, metric)
        state, lr = m.step(state, metric)
        assert lr == opt.param_groups[0]["lr"]


def test_create_scheduler_v2_documented_epochs():
    """timm's total-epoch arithmetic, pinned (anchors.md 2.3)."""
    f = S.create_scheduler_v2
    assert f(0.1, "cosine", num_epochs=100, warmup_epochs=5, cooldown_epochs=10)[1] == 110
    assert f(0.1, "cosine", num_epochs=100, warmup_epochs=5, cooldown_epochs=10, warmup_prefix=True)[1] == 115
    assert f(0.1, "step", num_epochs=100, warmup_epochs=5, cooldown_epochs=10, warmup_prefix=True)[1] == 105
    assert f(0.1, "multistep", num_epochs=100, cooldown_epochs=10)[1] == 100
    assert f(0.1, "wsd", num_epochs=100, warmup_epochs=5, cooldown_epochs=10)[1] == 110
    assert f(0.1, "cosine", num_epochs=100, cycle_limit=2, step_on_epochs=False, updates_per_epoch=7)[1] == 200
