"""Parity with timm for the Adam variants AdaBelief, AdamWLegacy, Adan, ADOPT and LaProp, and Lion (every registered
name).

Each name is built by ``timm.optim.create_optimizer_v2(groups, opt=name, lr=..., weight_decay=..., **flags)``
exactly as a timm user would, beside ``ao.create_optimizer(name, **same keywords)``, in float64 for 12 steps;
params and every state slot must agree within 1e-10 relative after every step (``oracles.check_parity``). Each name
runs with weight decay off and on, with gradients ~1 and ~1e-7 (where ``eps`` placement and accumulation show), and
the flags that change the math (amsgrad, rectify, fixed decay, clipping_threshold, clip_exp, maximize, ...).
"""
from __future__ import annotations

import numpy as np
import pytest

from oracles import (TimmStateView, assert_close, check_lr_schedule_parity, check_parity, grad_schedule, make_params,
                     torch_default_dtype)

timm_optim = pytest.importorskip("timm.optim")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.oracle

import arrayoptim as ao  # noqa: E402

#: registry name -> (lr used in the parity runs, extra flag configurations beyond the registry defaults)
NAMES = {
    "adabelief": (0.01, [{"amsgrad": True}, {"decoupled_decay": False}, {"fixed_decay": True},
                         {"eps": 1e-8, "amsgrad": True}]),
    "radabelief": (0.01, [{"amsgrad": True}, {"degenerated_to_sgd": False}, {"eps": 1e-8},
                          {"betas": (0.9, 0.9)}]),
    "adamwlegacy": (0.01, [{"amsgrad": True}, {"clipping_threshold": 1.0}, {"maximize": True, "amsgrad": True}]),
    "adamc": (0.01, [{"clipping_threshold": 0.5, "amsgrad": True}]),
    "cadamw": (0.01, [{"clipping_threshold": 1.0}, {"maximize": True}]),
    "cadamc": (0.01, [{"amsgrad": True}]),
    "adan": (0.01, [{"betas": (0.9, 0.8, 0.95)}, {"eps": 1e-4}]),
    "adanw": (0.01, [{"eps": 1e-4}]),
    "cadan": (0.01, []),
    "cadanw": (0.01, []),
    "adopt": (0.01, [{"clip_exp": None}, {"maximize": True}, {"eps": 1e-3}]),
    "adoptw": (0.01, [{"clip_exp": 0.25}]),
    "adoptc": (0.01, []),
    "cadopt": (0.01, [{"maximize": True}]),
    "cadoptw": (0.01, []),
    "cadoptc": (0.01, [{"clip_exp": None}]),
    "laprop": (0.01, [{"eps": 1e-6}]),
    "lapropc": (0.01, []),
    "claprop": (0.01, []),
    "lion": (0.01, [{"maximize": True}, {"betas": (0.5, 0.9)}]),
    "lionc": (0.01, []),
    "clion": (0.01, []),
    "clionc": (0.01, [{"maximize": True}]),
}

def _oracle(name, kwargs):
    def make(groups):
        o = timm_optim.create_optimizer_v2(groups, opt=name, **kwargs)
        return TimmStateView(o)  # Adan's group['step'] shown as each param's 'step' slot
    return make


def _cases():
    out = []
    for name, (lr, flags) in NAMES.items():
        for wd in (0.0, 0.05):
            for scale in (1.0, 1e-7):
                out.append(pytest.param(name, {"lr": lr, "weight_decay": wd}, scale,
                                        id=f"{name}-wd{wd}-g{scale:g}"))
        for i, extra in enumerate(flags):
            for scale in (1.0, 1e-7):
                desc = "_".join(f"{k}={v}" for k, v in extra.items()).replace(" ", "")
                out.append(pytest.param(name, {"lr": lr, "weight_decay": 0.05, **extra}, scale,
                                        id=f"{name}-{desc}-g{scale:g}"))
    return out


@pytest.mark.parametrize("name, kwargs, scale", _cases())
def test_matches_timm(name, kwargs, scale):
    np_params, _ = make_params()
    grads = grad_schedule(np_params, 12, scale=scale)  # 'b' and 'scalar' miss grads (Adan: group counter)
    check_parity(name, kwargs, _oracle(name, kwargs), steps=12, grads=grads)


def test_names_are_all_covered():
    ours = ao.list_optimizers(["*adabelief", "adamwlegacy", "adamc", "cadam[wc]", "*adan*", "*adopt*",
                               "*laprop*", "*lion*"])
    assert sorted(ours) == sorted(NAMES)


@pytest.mark.parametrize("name", ["adamwlegacy", "radabelief", "adan", "cadoptc", "claprop", "clionc"])
def test_matches_timm_with_param_groups(name):
    lr = NAMES[name][0]
    kwargs = {"lr": lr, "weight_decay": 0.05}
    groups = [{"params": ["w", "nc"], "lr": 3 * lr, "weight_decay": 0.0}, {"params": ["scalar", "b"], "lr": lr / 5}]
    np_params, _ = make_params()
    grads = grad_schedule(np_params, 12)  # no group is without grads at any step (see the test below)
    check_parity(name, kwargs, _oracle(name, kwargs), groups=groups, grads=grads)


@pytest.mark.parametrize("name", ["lapropc", "adoptc", "cadamc", "lionc", "laprop", "sgdc", "csgdc"])
def test_matches_timm_under_an_lr_schedule(name):
    """Per-step lr overrides equal timm with ``param_group['lr']`` edited each step (corrected decay keeps the
    constructor lr as max_lr; LaProp's running lr average ``exp_avg_lr_1`` follows the schedule)."""
    kwargs = {"lr": 0.1, "weight_decay": 0.2}
    opt, _ = check_lr_schedule_parity(name, kwargs, lambda ts: timm_optim.create_optimizer_v2(ts, opt=name, **kwargs),
                                      [0.1 * (t + 1) / 10 for t in range(10)])
    assert opt.hyperparams.max_lr_snapshot == 0.1  # the constructor lr, not the scheduled one


@pytest.mark.parametrize("name", ["adan", "lamb"])
def test_group_step_counter_without_resync(name):
    """timm counts Adan's and LAMB's steps per param group, on every ``step()``. Over 9 steps without re-syncing,
    params that miss grads ('b' at step 3, 'scalar' at 5-6) or get their first grad late ('nc' from step 4, so its
    Adan ``neg_pre_grad`` starts then) keep their group's count, and step 8 gives no param of group 1 ('b',
    'scalar') a grad: timm's counter advances, and so do their ``step`` slots, so step 9 equals timm's too."""
    kwargs = {"lr": 0.01, "weight_decay": 0.05}
    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        groups = [{"params": ["b", "scalar"], "lr": 0.02}]
        t_groups = [{"params": [p for n, p in t_params.items() if n not in ("b", "scalar")]},
                    {"params": [t_params["b"], t_params["scalar"]], "lr": 0.02}]
        oracle = timm_optim.create_optimizer_v2(t_groups, opt=name, **kwargs)
        opt = ao.create_optimizer(name, groups=groups, **kwargs)
        params, state = np_params, opt.init(np_params)
        for t, g in enumerate(grad_schedule(np_params, 9)):
            if t < 3:
                g["nc"] = None
            if t == 7:
                g["b"] = g["scalar"] = None
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n])
            oracle.step()
            params, state = opt.step(params, g, state)
            for n, p in t_params.items():
                group = oracle.param_groups[1 if n in ("b", "scalar") else 0]
                assert_close(params[n], p, 1e-10, f"{name} step {t + 1} {n}")
                for k, v in oracle.state[p].items():
                    assert_close(state[n][k], v, 1e-10, f"{name} step {t + 1} {n} slot {k}")
                assert float(state[n]["step"]) == float(group["step"]) == t + 1


def test_adan_state_keeps_one_structure():
    """timm creates ``neg_pre_grad`` at a param's first grad; here it exists from ``init`` (the first-grad reset
    reads the ``stepped`` slot), so a step returns the slots it was given (``jax.lax.scan`` carries)."""
    opt = ao.create_optimizer("adan", lr=0.01)
    params = {"w": np.ones(3), "b": np.ones(2)}
    state = opt.init(params)
    _, new = opt.step(params, {"w": np.ones(3), "b": None}, state)
    assert {n: sorted(s) for n, s in new.items()} == {n: sorted(s) for n, s in state.items()}
