"""Configurations and expected construction errors for MADGRAD, MARS, NAdamW, NAdamLegacy, RAdamLegacy,
RMSpropTF and NvNovoGrad (timm's ports of other reference implementations)."""
from __future__ import annotations

from optim_db import DBEntry, ErrorInput, OptimizerInput


def _base_errors(*, lr0_ok: bool = True) -> tuple[ErrorInput, ...]:
    out = [
        ErrorInput({"lr": -1e-2}, ValueError, r"Invalid learning rate: -0.01.*lr", "negative lr"),
        ErrorInput({"lr": float("nan")}, ValueError, r"Invalid learning rate", "nan lr"),
        ErrorInput({"weight_decay": -1.0}, ValueError, r"Invalid weight_decay value: -1.0.*weight_decay", "neg wd"),
        ErrorInput({"no_such_hparam": 1.0}, TypeError, r"unknown hyperparameter 'no_such_hparam'", "unknown"),
        ErrorInput({"lr": "0.1"}, TypeError, r"'lr' must be a real number", "lr as str"),
        ErrorInput({"eps": -1e-8}, ValueError, r"Invalid epsilon value: -1e-08.*eps", "negative eps"),
    ]
    return tuple(out)


_BETAS_ERRORS = (
    ErrorInput({"betas": (1.0, 0.999)}, ValueError, r"Invalid beta parameter at index 0: 1.0", "beta1=1"),
    ErrorInput({"betas": (0.9, -0.1)}, ValueError, r"Invalid beta parameter at index 1: -0.1", "beta2<0"),
    ErrorInput({"betas": (0.9,)}, ValueError, r"Invalid betas", "one beta"),
)

_CORRECTED_ERRORS = (
    ErrorInput({"lr": 0.0, "corrected_weight_decay": True}, ValueError,
               r"Corrected weight decay requires a positive max lr", "corrected with lr=0"),
)

_MADGRAD = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "momentum": 0.0, "weight_decay": 0.1}, "no momentum, L2"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled_decay": True}, "decoupled decay"),
        OptimizerInput({"lr": 0.01, "momentum": 0.5, "eps": 1e-3}, "big eps"),
    ),
    errors=_base_errors() + (
        ErrorInput({"momentum": 1.0}, ValueError, r"Momentum 1.0 must be in the range.*momentum=1.0", "momentum=1"),
        ErrorInput({"momentum": -0.1}, ValueError, r"Momentum -0.1 must be in the range", "negative momentum"),
    ),
    lr_zero_is_noop=False,  # MADGRAD's step size is lr + eps: lr=0 still moves the params
)

_MARS = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "optimize_1d": True}, "mars on 1-d params, wd"),
        OptimizerInput({"lr": 0.01, "mars_type": "lion", "weight_decay": 0.05}, "lion type"),
        OptimizerInput({"lr": 0.01, "lr_1d_factor": 0.5, "betas_1d": (0.8, 0.95), "gamma": 0.1}, "1-d options"),
        OptimizerInput({"lr": 0.01, "caution": True, "mars_type": "lion"}, "caution lion"),
    ),
    errors=_base_errors() + _BETAS_ERRORS + (
        ErrorInput({"mars_type": "sgd"}, ValueError, r"MARS type not supported: mars_type='sgd'", "bad mars_type"),
        ErrorInput({"betas_1d": (0.9, 1.5)}, ValueError, r"Invalid beta parameter at index 1: 1.5.*betas_1d",
                   "bad betas_1d"),
    ),
)

_NADAMW = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "caution": True}, "caution"),
        OptimizerInput({"lr": 0.01, "clipping_threshold": 1.0, "maximize": True}, "clipping maximize"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "corrected_weight_decay": True}, "corrected decay"),
        OptimizerInput({"lr": 0.01, "foreach": True, "capturable": True}, "selectors ignored"),
    ),
    errors=_base_errors() + _BETAS_ERRORS + _CORRECTED_ERRORS + (
        ErrorInput({"clipping_threshold": 0.0}, ValueError, r"clipping_threshold=0.0 must be > 0", "clip 0"),
    ),
)

_NADAM_LEGACY = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "schedule_decay": 0.1, "betas": (0.8, 0.9)}, "schedule decay"),
    ),
    errors=_base_errors() + _BETAS_ERRORS,
)

_RADAM_LEGACY = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "betas": (0.5, 0.7)}, "rectified early, wd"),
        OptimizerInput({"lr": 0.01, "betas": (0.9, 0.6)}, "never rectified"),
    ),
    errors=_base_errors() + _BETAS_ERRORS,
    steps=8,
)

_RMSPROP_TF = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "momentum": 0.0, "weight_decay": 0.1}, "no momentum, L2"),
        OptimizerInput({"lr": 0.01, "centered": True, "lr_in_momentum": False}, "centered, torch momentum"),
        OptimizerInput({"lr": 0.01, "decoupled_decay": True, "corrected_weight_decay": True, "weight_decay": 0.1},
                       "corrected decay"),
        OptimizerInput({"lr": 0.01, "caution": True, "centered": True, "eps": 1e-3}, "caution centered"),
    ),
    errors=_base_errors() + _CORRECTED_ERRORS + (
        ErrorInput({"alpha": -0.5}, ValueError, r"Invalid alpha value: -0.5.*alpha", "negative alpha"),
        ErrorInput({"momentum": -0.5}, ValueError, r"Invalid momentum value: -0.5.*momentum", "neg momentum"),
    ),
)

_NOVOGRAD = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, "amsgrad, wd"),
        OptimizerInput({"lr": 0.01, "grad_averaging": True, "decoupled_decay": True, "weight_decay": 0.1},
                       "grad averaging, decoupled"),
        OptimizerInput({"lr": 0.01, "decoupled_decay": True, "corrected_weight_decay": True, "weight_decay": 0.1},
                       "corrected decay"),
    ),
    errors=_base_errors() + _BETAS_ERRORS + _CORRECTED_ERRORS,
)

ENTRIES: dict[str, DBEntry] = {
    "madgrad": _MADGRAD, "madgradw": _MADGRAD,
    "mars": _MARS, "cmars": _MARS,
    "nadamw": _NADAMW, "nadamc": _NADAMW, "cnadamw": _NADAMW, "cnadamc": _NADAMW,
    "nadamlegacy": _NADAM_LEGACY, "radamlegacy": _RADAM_LEGACY,
    "rmsproptf": _RMSPROP_TF, "rmsproptfw": _RMSPROP_TF, "rmsproptfc": _RMSPROP_TF, "crmsproptf": _RMSPROP_TF,
    "novograd": _NOVOGRAD, "novogradw": _NOVOGRAD, "novogradc": _NOVOGRAD,
}
