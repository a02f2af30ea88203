"""Configurations and expected construction errors for MADGRAD, MARS, NAdamW, NAdamLegacy, RAdamLegacy,
RMSpropTF and NvNovoGrad (timm's adaptive family, part b)."""
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
)

ENTRIES: dict[str, DBEntry] = {
    "madgrad": _MADGRAD, "madgradw": _MADGRAD,
}
