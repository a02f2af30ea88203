"""Parity with timm for MADGRAD, MARS, NAdamW, NAdamLegacy, RAdamLegacy, RMSpropTF and NvNovoGrad.

Each name is built by ``timm.optim.create_optimizer_v2(groups, opt=name, lr=..., weight_decay=..., **flags)``
exactly as a timm user would, beside ``ao.create_optimizer(name, lr=..., weight_decay=..., **flags)``; params and
every state slot must agree within 1e-10 relative (float64) after each of 12 steps (re-synced after each).
"""
from __future__ import annotations

import pytest

from oracles import check_parity, grad_schedule, make_params

timm_optim = pytest.importorskip("timm.optim")
pytestmark = pytest.mark.oracle


def _timm(name, kwargs):
    return lambda groups: timm_optim.create_optimizer_v2(groups, opt=name, **kwargs)


#: name -> (lr, [flag sets]); every flag set runs with weight decay off and on, grads ~1 and ~1e-7
CASES = {
    "madgrad": (0.01, [{}, {"momentum": 0.0}, {"momentum": 0.5, "eps": 1e-3}]),
    "madgradw": (0.01, [{}, {"momentum": 0.0}]),
    "mars": (0.003, [{}, {"mars_type": "lion"}, {"optimize_1d": True}, {"lr_1d_factor": 0.5, "betas_1d": (0.8, 0.95)},
                     {"gamma": 0.1, "betas": (0.3, 0.9)}, {"caution": True}]),
    "cmars": (0.003, [{}, {"mars_type": "lion"}, {"optimize_1d": True}]),
    "nadamw": (0.01, [{}, {"clipping_threshold": 1.0}, {"maximize": True}, {"betas": (0.3, 0.6), "eps": 1e-3}]),
    "nadamc": (0.01, [{}]),
    "cnadamw": (0.01, [{}, {"clipping_threshold": 0.5}]),
    "cnadamc": (0.01, [{}]),
    "nadamlegacy": (0.01, [{}, {"schedule_decay": 0.1, "betas": (0.8, 0.9)}]),
    "radamlegacy": (0.01, [{}, {"betas": (0.5, 0.7)}]),
    "rmsproptf": (0.01, [{}, {"momentum": 0.0}, {"centered": True}, {"lr_in_momentum": False},
                         {"centered": True, "lr_in_momentum": False, "momentum": 0.5}, {"caution": True},
                         {"eps": 1e-3, "alpha": 0.99}]),
    "rmsproptfw": (0.01, [{}, {"centered": True}]),
    "rmsproptfc": (0.01, [{}, {"lr_in_momentum": False}]),
    "crmsproptf": (0.01, [{}, {"lr_in_momentum": False}, {"momentum": 0.0}]),
    "novograd": (0.01, [{}, {"amsgrad": True}, {"grad_averaging": True}, {"betas": (0.5, 0.6), "eps": 1e-3}]),
    "novogradw": (0.01, [{}, {"amsgrad": True, "grad_averaging": True}]),
    "novogradc": (0.01, [{}]),
}

PARAMS = [pytest.param(name, lr, flags, wd, id=f"{name}-{i}-wd{wd}")
          for name, (lr, flag_sets) in CASES.items() for i, flags in enumerate(flag_sets) for wd in (0.0, 0.05)]


@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["grads~1", "grads~1e-7"])
@pytest.mark.parametrize("name, lr, flags, weight_decay", PARAMS)
def test_matches_timm(name, lr, flags, weight_decay, scale):
    kwargs = {"lr": lr, "weight_decay": weight_decay, **flags}
    np_params, _ = make_params()
    check_parity(name, kwargs, _timm(name, kwargs), steps=12, grads=grad_schedule(np_params, 12, scale=scale))
