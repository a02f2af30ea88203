"""Parity with timm for the core's timm-registered names: SGDW and its variants, and the ``lookahead_`` wrapper.

Each name is built by ``timm.optim.create_optimizer_v2`` exactly as a timm user would, beside
``ao.create_optimizer`` with the same keywords; params and every state slot must agree within 1e-10 after each step.
"""
from __future__ import annotations

import pytest

from oracles import TimmStateView, check_parity, grad_schedule, make_params

timm_optim = pytest.importorskip("timm.optim")
pytestmark = pytest.mark.oracle

SGDW_NAMES = ["sgdw", "nesterovw", "sgdc", "csgdw", "csgdc", "sgd", "momentum", "nesterov"]


def _timm(name, kwargs):
    return lambda groups: timm_optim.create_optimizer_v2(groups, opt=name, **kwargs)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("name", SGDW_NAMES)
def test_sgd_family_matches_timm(name, weight_decay):
    kwargs = {"lr": 0.05, "weight_decay": weight_decay}
    check_parity(name, kwargs, _timm(name, kwargs))


@pytest.mark.parametrize("name", ["lookahead_sgd", "lookahead_adamw", "lookahead_csgdw", "lookahead_adam"])
def test_lookahead_matches_timm(name):
    kwargs = {"lr": 0.05, "weight_decay": 0.01}
    np_params, _ = make_params()
    # 'scalar' has no grad at the first sync (step 6): timm's per-group count is reproduced, and it is skipped there
    grads = grad_schedule(np_params, 14)

    import arrayoptim as ao

    opt = ao.create_optimizer(name, **kwargs)
    assert opt.lookahead.alpha == 0.5 and opt.lookahead.k == 6

    def oracle(groups):
        o = timm_optim.create_optimizer_v2(groups, opt=name, **kwargs)
        return TimmStateView(o)  # lookahead_slow_buff and the group's lookahead_step as per-param slots

    check_parity(name, kwargs, oracle, grads=grads)

