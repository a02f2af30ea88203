"""Parity with torch.optim in float64 over torch's own configuration grid (``common_optimizers.optim_db``).

For every torch class mapped in ``TORCH_CLASSES``, every CPU configuration torch tests itself with is run beside
arrayoptim for 12 steps; params and every state slot must agree within 1e-10 relative after each step.
"""
from __future__ import annotations

import pytest

from oracles import check_optim_db_parity, check_parity, hparams_from_torch, optim_db_error_grid, optim_db_grid

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
    check_optim_db_parity(cls, kwargs, TORCH_CLASSES[cls.__name__], scale=scale)


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

    from oracles import check_lr_schedule_parity

    cls = getattr(torch.optim, clsname)
    name = TORCH_CLASSES[clsname]
    kwargs = {"lr": 0.1, "momentum": 0.9} if clsname == "SGD" else {"lr": 0.1}
    _, params = check_lr_schedule_parity(name, lambda oracle: hparams_from_torch(oracle.defaults, name),
                                         lambda ts: cls(ts, **kwargs), [0.1 * 0.5 ** t for t in range(8)])
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
