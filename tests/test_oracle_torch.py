"""Parity with torch.optim in float64 over torch's own configuration grid (``common_optimizers.optim_db``).

For every torch class mapped in ``TORCH_CLASSES``, every CPU configuration torch tests itself with is run beside
arrayoptim for 12 steps; params and every state slot must agree within 1e-10 relative after each step.
"""
from __future__ import annotations

import pytest

from oracles import (check_parity, grad_schedule, hparams_from_torch, make_params, optim_db_error_grid,
                     optim_db_grid)

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

pytestmark = pytest.mark.oracle

#: torch.optim class name -> arrayoptim registry name that reproduces it (with torch's defaults passed in full)
TORCH_CLASSES = {"SGD": "sgd", "Adam": "adam", "AdamW": "adamw"}


GRID = optim_db_grid(TORCH_CLASSES)


def test_grid_covers_every_mapped_class():
    assert {p.values[0].__name__ for p in GRID} == set(TORCH_CLASSES)


@pytest.mark.parametrize("scale", [1.0, 1e-7], ids=["grads~1", "grads~1e-7"])
@pytest.mark.parametrize("cls, kwargs", GRID)
def test_matches_torch_over_its_optim_db(cls, kwargs, scale):
    """Tiny grads (~1e-7) make ``eps`` placement and bias-correction details visible above the tolerance."""
    name = TORCH_CLASSES[cls.__name__]
    probe = cls([torch.zeros(1, requires_grad=True)], **kwargs)
    ours = hparams_from_torch(probe.defaults, name)
    np_params, _ = make_params()
    check_parity(name, ours, lambda groups: cls(groups, **kwargs), steps=12,
                 grads=grad_schedule(np_params, 12, scale=scale))


@pytest.mark.parametrize("clsname", sorted(TORCH_CLASSES))
def test_matches_torch_with_param_groups(clsname):
    cls = getattr(torch.optim, clsname)
    name = TORCH_CLASSES[clsname]
    kwargs = {"lr": 0.01, "weight_decay": 0.05}
    if clsname == "SGD":
        kwargs.update(momentum=0.9)
    groups = [{"params": ["w", "nc"], "lr": 0.03, "weight_decay": 0.0}, {"params": ["scalar"], "lr": 0.002}]
    probe = cls([torch.zeros(1, requires_grad=True)], **kwargs)
    check_parity(name, hparams_from_torch(probe.defaults, name), lambda g: cls(g, **kwargs), groups=groups)


@pytest.mark.parametrize("clsname", sorted(TORCH_CLASSES))
def test_matches_torch_under_an_lr_schedule(clsname):
    """A per-step ``hyperparams={'lr': ...}`` override equals torch with ``param_group['lr']`` edited each step."""
    import numpy as np

    from oracles import assert_close, grad_schedule, make_params, torch_default_dtype
    import arrayoptim as ao

    cls = getattr(torch.optim, clsname)
    name = TORCH_CLASSES[clsname]
    kwargs = {"lr": 0.1, "momentum": 0.9} if clsname == "SGD" else {"lr": 0.1}
    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        oracle = cls(list(t_params.values()), **kwargs)
        opt = ao.create_optimizer(name, **hparams_from_torch(oracle.defaults, name))
        params, state = np_params, opt.init(np_params)
        for t, g in enumerate(grad_schedule(np_params, 8)):
            lr = 0.1 * 0.5 ** t
            for group in oracle.param_groups:
                group["lr"] = lr
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n])
            oracle.step()
            params, state = opt.step(params, g, state, hyperparams={"lr": lr})
            for n, p in t_params.items():
                assert_close(params[n], p, 1e-10, f"{name} step {t + 1} {n}")
        assert np.isfinite(params["w"]).all()



ERROR_GRID = optim_db_error_grid(TORCH_CLASSES)


def test_error_grid_covers_every_mapped_class():
    assert {p.values[0].__name__ for p in ERROR_GRID} == set(TORCH_CLASSES)


@pytest.mark.parametrize("cls, kwargs, error, regex", ERROR_GRID)
def test_error_configurations_raise_the_same_type(cls, kwargs, error, regex):
    import inspect

    import arrayoptim as ao

    with pytest.raises(error, match=regex):  # torch itself
        cls([torch.zeros(1, requires_grad=True)], **kwargs)
    name = TORCH_CLASSES[cls.__name__]
    fields = set(ao.get_optimizer_info(name).hyperparams.field_names())
    torch_defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()
                      if k in fields and p.default is not inspect.Parameter.empty}
    with pytest.raises(error):  # with torch's class defaults, not the registry's
        ao.create_optimizer(name, **{**torch_defaults, **kwargs})
