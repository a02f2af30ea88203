"""Configurations and expected errors for torch.optim's element-wise classes: Adadelta, Adagrad, Adamax, ASGD,
NAdam, RAdam (``radam``, ``radamw``), RMSprop and Rprop."""
from __future__ import annotations

from optim_db import DBEntry, ErrorInput, OptimizerInput, _common_errors

_SELECTORS = {"foreach": False, "capturable": True, "differentiable": False}

_ADADELTA = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.5, "rho": 0.95, "weight_decay": 0.1}, "rho weight decay"),
        OptimizerInput({"lr": 1.0, "eps": 1e-3, "maximize": True}, "maximize big eps"),
        OptimizerInput({"lr": 1.0, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(eps=True) + (
        ErrorInput({"rho": 1.1}, ValueError, r"Invalid rho value: 1.1.*rho", "rho > 1"),
        ErrorInput({"rho": -0.1}, ValueError, r"Invalid rho value: -0.1", "rho < 0"),
    ),
)

_ADAGRAD = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.1, "lr_decay": 0.5, "weight_decay": 0.1}, "lr decay"),
        OptimizerInput({"lr": 0.1, "initial_accumulator_value": 0.1, "eps": 1e-10}, "initial accumulator"),
        OptimizerInput({"lr": 0.1, "maximize": True, "weight_decay": 0.1}, "maximize"),
        OptimizerInput({"lr": 0.1, "fused": True, "foreach": False}, "selectors ignored"),
    ),
    errors=_common_errors(eps=True) + (
        ErrorInput({"lr_decay": -0.5}, ValueError, r"Invalid lr_decay value: -0.5.*lr_decay", "neg lr_decay"),
        ErrorInput({"initial_accumulator_value": -1.0}, ValueError,
                   r"Invalid initial_accumulator_value value: -1.0", "neg initial accumulator"),
    ),
)

_ADAMAX = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-3, "maximize": True}, "betas list maximize"),
        OptimizerInput({"lr": 0.01, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True),
)

_ASGD = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 2.0, "weight_decay": 0.1}, "averaging"),
        OptimizerInput({"lr": 0.05, "maximize": True, "t0": 0.0}, "maximize t0=0"),
        OptimizerInput({"lr": 0.05, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(),
)

_NADAM = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "momentum_decay": 6e-3}, "L2 decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}, "decoupled decay"),
        OptimizerInput({"lr": 0.01, "maximize": True, "betas": (0.5, 0.9)}, "maximize"),
        OptimizerInput({"lr": 0.01, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        ErrorInput({"momentum_decay": -0.2}, ValueError, r"Invalid momentum_decay value: -0.2.*momentum_decay",
                   "neg momentum_decay"),
    ),
)

_RADAM = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True},
                       "decoupled maximize"),
        OptimizerInput({"lr": 0.01, "betas": (0.5, 0.9), "eps": 1e-6}, "rectified early"),
        OptimizerInput({"lr": 0.01, "betas": (0.9, 0.6)}, "never rectified"),
        OptimizerInput({"lr": 0.01, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True),
    steps=8,  # rectification starts at step 6 with the default betas
)

_RMSPROP = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "momentum": 0.0, "weight_decay": 0.1}, "no momentum"),
        OptimizerInput({"lr": 0.01, "centered": True, "momentum": 0.5, "maximize": True}, "centered momentum"),
        OptimizerInput({"lr": 0.01, "alpha": 0.99, "eps": 1e-3, "centered": True, "momentum": 0.0}, "centered"),
        OptimizerInput({"lr": 0.01, **_SELECTORS}, "selectors ignored"),
    ),
    errors=_common_errors(eps=True) + (
        ErrorInput({"momentum": -1.0}, ValueError, r"Invalid momentum value: -1.0.*momentum", "neg momentum"),
        ErrorInput({"alpha": -0.1}, ValueError, r"Invalid alpha value: -0.1.*alpha", "neg alpha"),
    ),
)

_RPROP = DBEntry(
    inputs=(
        # Rprop moves params even at lr=0: the step sizes start at lr but are clamped to step_sizes[0] > 0 (torch
        # does the same), so the first configuration (used by the lr=0 property) sets a zero minimum step size.
        OptimizerInput({"step_sizes": (0.0, 50.0)}, "zero minimum step size"),
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.1, "etas": (0.3, 1.9), "step_sizes": (1e-3, 0.2)}, "etas step sizes"),
        OptimizerInput({"lr": 0.05, "maximize": True}, "maximize"),
        OptimizerInput({"lr": 0.05, **_SELECTORS}, "selectors ignored"),
    ),
    errors=tuple(e for e in _common_errors() if "weight_decay" not in e.kwargs) + (
        ErrorInput({"etas": (1.0, 0.5)}, ValueError, r"Invalid eta values: 1.0, 0.5", "etas swapped"),
        ErrorInput({"etas": (0.5, 1.0)}, ValueError, r"Invalid eta values: 0.5, 1.0", "etaplus = 1"),
        ErrorInput({"etas": (0.5,)}, ValueError, r"Invalid etas", "one eta"),
        ErrorInput({"step_sizes": (1e-6,)}, ValueError, r"Invalid step_sizes", "one step size"),
        ErrorInput({"weight_decay": 0.1}, TypeError, r"unknown hyperparameter 'weight_decay'", "no weight decay"),
    ),
)

ENTRIES = {
    "adadelta": _ADADELTA, "adagrad": _ADAGRAD, "adamax": _ADAMAX, "asgd": _ASGD, "nadam": _NADAM,
    "radam": _RADAM, "radamw": _RADAM, "rmsprop": _RMSPROP, "rprop": _RPROP,
}
