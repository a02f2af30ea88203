"""Swapping timm's factories for arrayoptim.torch's on the same model gives the same float64 trajectory.

For every registered name timm also registers (closure-driven and sparse names aside), with and without layer
decay, and timm's schedulers vs ``arrayoptim.torch.create_scheduler_v2`` (lr values, ``lr_scale``).
"""
from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")
timm_scheduler = pytest.importorskip("timm.scheduler")

import arrayoptim as ao  # noqa: E402
import arrayoptim.torch as aot  # noqa: E402
from oracles import torch_default_dtype  # noqa: E402
from test_torch_adapter_support import assert_close, make_net, train_steps  # noqa: E402

pytestmark = pytest.mark.oracle
RTOL = 1e-9
#: documented differences of the core (not of the adapter)
NAME_RTOL = {
    "radamlegacy": 1e-6,  # timm computes RAdamLegacy in float32 for every param dtype (measured 6.7e-8 on this net)
    # timm's Newton-Schulz runs in real bfloat16 matmuls; arrayoptim emulates the bfloat16 rounding, so a float32
    # accumulation order that differs from torch's BLAS can flip a bfloat16 rounding (measured on this net: adamuon
    # 2.0e-5, muon/nmuon/nadamuon <= 4e-17)
    **{n: 1e-4 for n in ("muon", "nmuon", "adamuon", "nadamuon")},
}
#: names whose timm code hard-codes a compute dtype narrower than the params (float32 RAdamLegacy, bfloat16
#: Newton-Schulz); ``test_factory_swap_with_timms_casts_made_identity`` runs them with those casts removed
LOWP_CAST = ("muon", "nmuon", "adamuon", "nadamuon", "radamlegacy")


def _swappable():
    timm_names = set(timm_optim.list_optimizers())
    out = []
    for name in ao.list_optimizers():
        info = ao.get_optimizer_info(name)
        if name not in timm_names:
            continue
        if info.takes("closure") or info.takes("grad_mask"):
            continue  # needs inputs beyond grads that a plain training loop does not give (closures, sparse masks)
        # Adahessian's Hessian estimate and Kron's random draws are made by the adapter (arrayoptim.torch._inputs),
        # replaying timm's generators: the loop below passes create_graph=True and seeds torch's global RNG
        out.append(name)
    return out


SWAPPABLE = _swappable()
QUICK = [n for n in ("adamw", "sgd", "lamb", "adan", "lion") if n in SWAPPABLE]


@pytest.fixture(autouse=True)
def _plain_timm_kron(monkeypatch):
    """timm's Kron without torch.compile (seconds per name) and with its triangular solve in the param dtype (it
    casts to float32: a ~1e-10 gap on this net; tests/test_torch_adapter_inputs.py measures it unpatched)."""
    from timm.optim import kron as tk

    def solve(X, A):
        return torch.linalg.solve_triangular(A, X.reshape(-1, X.size(-1)), upper=True, left=False).reshape_as(X)

    monkeypatch.setattr(tk, "has_dynamo", False)
    monkeypatch.setattr(tk, "_solve_triangular_right", solve)


def _run(name, layer_decay=None, sched=None, steps=6, ours_kw=None, **kw):
    # float64 default dtype, as in every oracle test: some timm optimizers keep scalar state in torch's *default*
    # dtype (LaProp's lr averages, NovoGrad's norms), so under float32 defaults a float64 model sees float32 scalars
    with torch_default_dtype(torch.float64):
        return _run64(name, layer_decay, sched, steps, ours_kw or {}, **kw)


def _run64(name, layer_decay, sched, steps, ours_kw, **kw):
    model_t = make_net()
    model_a = copy.deepcopy(model_t)
    kwargs = dict(opt=name, lr=0.01, weight_decay=0.05, layer_decay=layer_decay, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ot = timm_optim.create_optimizer_v2(model_t, **kwargs)
    oa = aot.create_optimizer_v2(model_a, **kwargs, **ours_kw)
    st = sa = None
    if sched:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            st, nt = timm_scheduler.create_scheduler_v2(ot, **sched)
        sa, na = aot.create_scheduler_v2(oa, **sched)
        assert na == nt
    per_update = bool(sched) and not sched.get("step_on_epochs", True)
    loop = dict(per_update=per_update, torch_seed=0)  # the same global RNG stream for both (timm's Kron draws there)
    assert getattr(ot, "is_second_order", False) == oa.is_second_order
    return (train_steps(model_t, ot, steps, scheduler=st, create_graph=oa.is_second_order, **loop),
            train_steps(model_a, oa, steps, scheduler=sa, create_graph=oa.is_second_order, **loop), ot, oa)


def _check(name, traj_t, traj_a):
    for t, (a, b) in enumerate(zip(traj_a, traj_t)):
        assert_close(a, b, NAME_RTOL.get(name, RTOL), f"{name} step {t + 1}")


def _param(name):
    return pytest.param(name, marks=[] if name in QUICK else [pytest.mark.slow])


@pytest.mark.parametrize("name", [_param(n) for n in SWAPPABLE])
def test_factory_swap_gives_timms_trajectory(name):
    traj_t, traj_a, ot, oa = _run(name)
    _check(name, traj_t, traj_a)
    assert len(ot.param_groups) == len(oa.param_groups)


@pytest.mark.parametrize("name", QUICK)
def test_factory_swap_with_layer_decay_and_scheduler(name):
    sched = dict(sched="cosine", num_epochs=3, warmup_epochs=1, warmup_lr=1e-3, step_on_epochs=False,
                 updates_per_epoch=2)
    traj_t, traj_a, ot, oa = _run(name, layer_decay=0.7, sched=sched)
    _check(name, traj_t, traj_a)
    assert [g["lr"] for g in oa.param_groups] == [g["lr"] for g in ot.param_groups]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(SWAPPABLE) - set(QUICK)))
def test_factory_swap_with_layer_decay_every_name(name):
    sched = dict(sched="cosine", num_epochs=3, warmup_epochs=1, warmup_lr=1e-3)
    traj_t, traj_a, _, _ = _run(name, layer_decay=0.7, sched=sched)
    _check(name, traj_t, traj_a)


@pytest.fixture
def timm_casts_made_identity(monkeypatch):
    """timm's hard-coded narrow compute removed, nothing else changed (the patches of the oracle tests):
    Muon's Newton-Schulz called with ``dtype=torch.float64``, and ``Tensor.float()`` the identity on float64
    tensors (RAdamLegacy's ``p.grad.float()``/``p.float()``)."""
    import functools

    from timm.optim import muon as tm

    monkeypatch.setattr(tm, "zeropower_via_newtonschulz",
                        functools.partial(tm.zeropower_via_newtonschulz, dtype=torch.float64))
    real_float = torch.Tensor.float

    def float64_stays(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else real_float(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "float", float64_stays)


@pytest.mark.parametrize("layer_decay", [None, 0.7])
@pytest.mark.parametrize("name", [n for n in LOWP_CAST if n in SWAPPABLE])
def test_factory_swap_with_timms_casts_made_identity(name, layer_decay, timm_casts_made_identity):
    """The names of ``NAME_RTOL`` whose gap is timm's hard-coded bfloat16/float32 compute: with it removed (and
    ours asked for float64 Newton-Schulz, ``ns_dtype=None``), the float64 trajectories agree at ``RTOL``, with and
    without layer decay. The unpatched runs above keep the gap measured."""
    ours_kw = {"ns_dtype": None} if "muon" in name else {}
    traj_t, traj_a, _, _ = _run(name, layer_decay=layer_decay, ours_kw=ours_kw)
    for t, (a, b) in enumerate(zip(traj_a, traj_t)):
        assert_close(a, b, RTOL, f"{name} step {t + 1}")


@pytest.mark.parametrize("opt", ["lookahead_adamw", "lookahead_sgd"])
def test_lookahead_prefix_swap(opt):
    traj_t, traj_a, _, _ = _run(opt, steps=8)
    _check(opt, traj_t, traj_a)


def test_params_and_groups_pass_through_with_momentum_injection():
    model = make_net()
    params = [p for p in model.parameters() if p.requires_grad]
    o = aot.create_optimizer_v2(params, opt="sgdw", lr=0.1, weight_decay=0.01)
    t = timm_optim.create_optimizer_v2(params, opt="sgdw", lr=0.1, weight_decay=0.01)
    for k in ("lr", "momentum", "weight_decay", "nesterov"):
        assert o.param_groups[0][k] == t.param_groups[0][k], k
    with pytest.raises(TypeError, match="eps"):
        aot.create_optimizer_v2(params, opt="sgd", eps=1e-3)  # timm drops it silently; we refuse


def test_param_group_fn_keeps_weight_decay_as_default():
    model = make_net()

    def fn(m):
        return [{"params": [p for p in m.parameters() if p.requires_grad]}]

    o = aot.create_optimizer_v2(model, opt="adamw", weight_decay=0.3, param_group_fn=fn)
    t = timm_optim.create_optimizer_v2(model, opt="adamw", weight_decay=0.3, param_group_fn=fn)
    assert o.param_groups[0]["weight_decay"] == t.param_groups[0]["weight_decay"] == 0.3


SCHEDS = [
    dict(sched="cosine", num_epochs=12, warmup_epochs=3, warmup_lr=1e-4, cooldown_epochs=2),
    dict(sched="cosine", num_epochs=6, warmup_epochs=2, warmup_prefix=True, cycle_limit=2, noise=0.3),
    dict(sched="tanh", num_epochs=10),
    dict(sched="step", decay_epochs=3, decay_rate=0.5, warmup_epochs=2),
    dict(sched="multistep", decay_milestones=(3, 6), warmup_epochs=1),
    dict(sched="poly", num_epochs=8, warmup_epochs=2),
    dict(sched="wsd", num_epochs=12, warmup_epochs=2),
    dict(sched="constant", warmup_epochs=2),
    dict(sched="cosine", num_epochs=3, warmup_epochs=1, step_on_epochs=False, updates_per_epoch=4),
    dict(sched="plateau", patience_epochs=1, warmup_epochs=2, plateau_mode="min"),
    dict(sched="none"),
]


@pytest.mark.parametrize("kw", SCHEDS, ids=[f"{k['sched']}-{i}" for i, k in enumerate(SCHEDS)])
def test_scheduler_writes_timms_lrs(kw):
    model = make_net()
    ot = timm_optim.create_optimizer_v2(model, opt="adamw", lr=0.1, weight_decay=0.05, layer_decay=0.6)
    oa = aot.create_optimizer_v2(copy.deepcopy(model), opt="adamw", lr=0.1, weight_decay=0.05, layer_decay=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st, nt = timm_scheduler.create_scheduler_v2(ot, **kw)
    sa, na = aot.create_scheduler_v2(oa, **kw)
    assert na == nt
    if st is None:
        assert sa is None
        return

    def lrs(o):
        return [g["lr"] for g in o.param_groups]

    assert lrs(oa) == lrs(ot), "constructor"
    metrics = [1.0, 0.9, 0.95, 0.97, 0.99, 0.5, 0.6, 0.7]
    for t in range(1, 15):
        m = metrics[t % len(metrics)]
        st.step_update(t, m)
        sa.step_update(t, m)
        st.step(t, m)
        sa.step(t, m)
        assert lrs(oa) == pytest.approx(lrs(ot), rel=1e-15, abs=0), f"t={t}"
        if t == 7:  # resume from the state dict midway
            sd = sa.state_dict()
            sa = aot.create_scheduler_v2(oa, **kw)[0]
            sa.load_state_dict(sd)


def test_scheduler_loads_timms_state_dict():
    model = make_net()
    ot = timm_optim.create_optimizer_v2(model, opt="adamw", lr=0.1)
    oa = aot.create_optimizer_v2(copy.deepcopy(model), opt="adamw", lr=0.1)
    st, _ = timm_scheduler.create_scheduler_v2(ot, sched="cosine", num_epochs=10)
    sa, _ = aot.create_scheduler_v2(oa, sched="cosine", num_epochs=10)
    sd = st.state_dict()
    for g in oa.param_groups:
        g["initial_lr"] = 0.5
    sa.load_state_dict(sd)
    st.step(4)
    sa.step(4)
    assert [g["lr"] for g in oa.param_groups] == [g["lr"] for g in ot.param_groups]
    with pytest.raises(ValueError, match="base_values"):
        sa.load_state_dict({"metric": None})
