r"""A third-party optimizer written with arrayoptim's public names only (ARCHITECTURE.md, "How to add an optimizer").

``toysgd`` is heavy-ball SGD with coupled weight decay, torch.optim.SGD's math for ``dampening=0`` and
``nesterov=False``:

.. math::

    g \leftarrow g + \lambda p, \qquad b \leftarrow \mu b + g \ (b = g \text{ at the first step}), \qquad
    p \leftarrow p - \gamma b

Importing this module registers it; nothing here imports an ``arrayoptim._*`` module.
"""
from __future__ import annotations

import dataclasses

import arrayoptim as ao
from arrayoptim.checks import LR, NONNEG



@dataclasses.dataclass(frozen=True, kw_only=True)
class ToySGDHyperparams(ao.Hyperparams):
    """Heavy-ball SGD (torch.optim.SGD with dampening=0, nesterov=False)."""

    anchor = "torch.optim.SGD"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    checks = {"lr": LR, "momentum": NONNEG, "weight_decay": NONNEG}  # torch's order and messages


def toy_sgd_init(xp, p, hp):
    return {}  # torch creates momentum_buffer at the first step


def toy_sgd_kernel(xp, p, g, s, hp, ctx):
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    if hp.momentum != 0:
        buf = s.get("momentum_buffer")
        if buf is None:
            buf = xp.asarray(g, copy=True)
        else:
            buf *= hp.momentum
            buf += g
        s["momentum_buffer"] = buf
        g = buf
    p -= hp.lr * g
    return p


ao.register(ao.OptimInfo("toysgd", "heavy-ball SGD written outside arrayoptim", ToySGDHyperparams,
                         kernel=toy_sgd_kernel, init=toy_sgd_init, param_slots=("momentum_buffer",),
                         locality="element"))


def _entries() -> dict:
    import sys

    sys.path.insert(0, __file__.rsplit("/extension/", 1)[0])  # tests/: the configuration database's home
    from optim_db import DBEntry, ErrorInput, OptimizerInput

    return {"toysgd": DBEntry(
        inputs=(OptimizerInput({"lr": 0.05}, "plain"),
                OptimizerInput({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, "momentum, decay")),
        errors=(ErrorInput({"lr": -1.0}, ValueError, r"Invalid learning rate: -1.0 \(lr=-1.0 must be >= 0\)"),
                ErrorInput({"momentum": -0.5}, ValueError, r"Invalid momentum value: -0.5 \(momentum=-0.5"),
                ErrorInput({"nesterov": True}, TypeError, "unknown hyperparameter 'nesterov'")),
    )}


def __getattr__(name):  # OPTIM_DB entries built on first use (the database imports this module, not the reverse)
    if name == "ENTRIES":
        return _entries()
    raise AttributeError(name)
