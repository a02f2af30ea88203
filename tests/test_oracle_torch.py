"""Parity with torch.optim in float64 over torch's own configuration grid (``common_optimizers.optim_db``).

For every torch class mapped in ``TORCH_CLASSES`` (SGD, Adam, AdamW and the element-wise Adadelta, Adagrad, Adamax,
ASGD, NAdam, RAdam, RMSprop, Rprop), every CPU configuration torch tests itself with runs beside arrayoptim for
12 steps (params and every state slot within 1e-10 relative after each step, grads ~1 and ~1e-7), with param
groups and under an lr schedule; every hyperparameter error configuration torch lists raises the same exception
type from ``ao.create_optimizer``. The other torch classes (LBFGS, SparseAdam, Adafactor, Muon) are in
``test_oracle_torch_special.py``.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

from oracles import (check_lr_schedule_parity, check_optim_db_parity, check_parity, grad_schedule,  # noqa: E402
                     hparams_from_torch, make_params, optim_db_error_grid, optim_db_grid)

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

import arrayoptim as ao  # noqa: E402

pytestmark = pytest.mark.oracle

#: torch.optim class name -> arrayoptim registry name that reproduces it (with torch's defaults passed in full)
TORCH_CLASSES = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw", "Adadelta": "adadelta", "Adagrad": "adagrad",
                 "Adamax": "adamax", "ASGD": "asgd", "NAdam": "nadam", "RAdam": "radam", "RMSprop": "rmsprop",
                 "Rprop": "rprop"}


GRID = optim_db_grid(TORCH_CLASSES)
GRID_SIZE = 70  # torch 2.14.1: SGD, Adam, AdamW 19; Adadelta..Rprop 6+7+5+7+7+6+8+5
ERROR_GRID = optim_db_error_grid(TORCH_CLASSES)


def _takes(cls, kw: str) -> bool:
    return kw in inspect.signature(cls).parameters


def test_grids_cover_every_mapped_class():
    assert {p.values[0].__name__ for p in GRID} == set(TORCH_CLASSES)
    assert {p.values[0].__name__ for p in ERROR_GRID} == set(TORCH_CLASSES)
    assert len(GRID) == GRID_SIZE  # torch 2.14.1's CPU configurations for these classes


@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["grads~1", "grads~1e-7"])
@pytest.mark.parametrize("cls, kwargs", GRID)
def test_matches_torch_over_its_optim_db(cls, kwargs, scale):
    """Tiny grads (~1e-7) make ``eps`` placement and bias-correction details visible above the tolerance."""
    check_optim_db_parity(cls, kwargs, TORCH_CLASSES[cls.__name__], scale=scale)


@pytest.mark.parametrize("cls, kwargs, error, regex", ERROR_GRID)
def test_error_configurations_raise_the_same_type(cls, kwargs, error, regex):
    with pytest.raises(error, match=regex):  # torch itself
        cls([torch.zeros(1, requires_grad=True)], **kwargs)
    name = TORCH_CLASSES[cls.__name__]
    fields = set(ao.get_optimizer_info(name).hyperparams.field_names())
    torch_defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                      if k in fields and p.default is not inspect.Parameter.empty}
    with pytest.raises(error):  # with torch's class defaults, not the registry's
        ao.create_optimizer(name, **{**torch_defaults, **kwargs})


#: configurations optim_db does not reach: ASGD's averaging (mu != 1 only once step > t0), RAdam/RMSprop/Rprop
#: corners, and the registry names that differ from the class (radamw)
EXTRA = [
    ("ASGD", "asgd", {"t0": 3.0, "lambd": 0.05, "alpha": 0.5, "weight_decay": 0.1}),
    ("ASGD", "asgd", {"t0": 0.0, "lr": 0.05, "maximize": True}),
    ("RAdam", "radamw", {"weight_decay": 0.1, "decoupled_weight_decay": True, "betas": (0.5, 0.9)}),
    ("RAdam", "radam", {"betas": (0.9, 0.6)}),  # rho_inf = 4: never rectified
    ("RMSprop", "rmsprop", {"momentum": 0.9, "alpha": 0.9}),
    ("Rprop", "rprop", {"etas": (0.3, 1.9), "step_sizes": (1e-3, 0.02), "lr": 0.1}),
    ("NAdam", "nadam", {"momentum_decay": 0.0, "betas": (0.0, 0.9)}),
    ("Adagrad", "adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 2.0, "eps": 1e-3, "maximize": True}),
]


@pytest.mark.parametrize("clsname, name, kwargs", EXTRA, ids=[f"{n}-{i}" for i, (_, n, _) in enumerate(EXTRA)])
def test_matches_torch_beyond_its_optim_db(clsname, name, kwargs):
    cls = getattr(torch.optim, clsname)
    probe = cls([torch.zeros(1, requires_grad=True)], **kwargs)
    np_params, _ = make_params()
    check_parity(name, hparams_from_torch(probe.defaults, name), lambda g: cls(g, **kwargs), steps=12)


@pytest.mark.parametrize("clsname", sorted(TORCH_CLASSES))
def test_matches_torch_with_param_groups(clsname):
    cls = getattr(torch.optim, clsname)
    name = TORCH_CLASSES[clsname]
    kwargs = {"lr": 0.01}
    groups = [{"params": ["w", "nc"], "lr": 0.03}, {"params": ["scalar"], "lr": 0.002}]
    if _takes(cls, "weight_decay"):
        kwargs["weight_decay"] = 0.05
        groups[0]["weight_decay"] = 0.0
    if _takes(cls, "momentum"):
        kwargs["momentum"] = 0.9
    probe = cls([torch.zeros(1, requires_grad=True)], **kwargs)
    check_parity(name, hparams_from_torch(probe.defaults, name), lambda g: cls(g, **kwargs), groups=groups)


@pytest.mark.parametrize("clsname", sorted(TORCH_CLASSES))
def test_matches_torch_under_an_lr_schedule(clsname):
    """A per-step ``hyperparams={'lr': ...}`` override equals torch with ``param_group['lr']`` edited each step,
    including the first step (ASGD's ``eta`` starts at the lr of the first step, as torch's lazy state does)."""
    cls = getattr(torch.optim, clsname)
    name = TORCH_CLASSES[clsname]
    kwargs = {"lr": 0.1, "momentum": 0.9} if _takes(cls, "momentum") else {"lr": 0.1}
    _, params = check_lr_schedule_parity(name, lambda oracle: hparams_from_torch(oracle.defaults, name),
                                         lambda ts: cls(ts, **kwargs), [0.1 * 0.5 ** (t + 1) for t in range(8)])
    assert np.isfinite(params["w"]).all()


def test_asgd_float32_scalar_quirk():
    """Under torch's default dtype float32, ASGD keeps ``step``/``eta``/``mu`` in float32 even for float64 params,
    so torch's float64 trajectory uses float32-rounded ``eta``. arrayoptim keeps them in the step dtype (float64
    for float64 params): it reproduces torch under ``torch.set_default_dtype(torch.float64)`` (the oracle above)
    and differs from torch under the float32 default by about float32 rounding (measured here)."""
    np_params, t_params = make_params()
    assert torch.get_default_dtype() == torch.float32
    oracle = torch.optim.ASGD(list(t_params.values()), lr=0.0123, lambd=0.01, t0=2.0)
    opt = ao.create_optimizer("asgd", lr=0.0123, lambd=0.01, t0=2.0)
    params, state = np_params, opt.init(np_params)
    worst = 0.0
    for g in grad_schedule(np_params, 10, missing=False):
        for n, p in t_params.items():
            p.grad = torch.tensor(g[n])
        oracle.step()
        params, state = opt.step(params, g, state)
        for n, p in t_params.items():
            theirs = p.detach().numpy()
            worst = max(worst, float(np.max(np.abs(params[n] - theirs) / np.maximum(1.0, np.abs(theirs)))))
    p0 = t_params["w"]
    assert oracle.state[p0]["eta"].dtype == torch.float32 and state["w"]["eta"].dtype == np.float64
    assert 1e-10 < worst < 1e-7, worst  # float32 rounding of eta, nothing more (measured 3.5e-9)
