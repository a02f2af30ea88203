"""Configurations and expected errors for timm's LAMB, LARS, AdamP/SGDP and Adafactor families (every name)."""
from __future__ import annotations

from optim_db import DBEntry, ErrorInput, OptimizerInput, _common_errors

_CORRECTED_ERR = ErrorInput({"lr": 0.0, "corrected_weight_decay": True}, ValueError,
                            r"Corrected weight decay requires a positive max lr", "corrected with lr=0")

_LAMB = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.0}, "no decay no adapt"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.0, "always_adapt": True, "max_grad_norm": 0.5}, "always adapt"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "max_grad_norm": None, "bias_correction": False},
                       "no clip no bias correction"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "grad_averaging": False, "trust_clip": True}, "trust clip"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled_decay": True, "corrected_weight_decay": True,
                        "caution": True}, "decoupled corrected caution"),
        OptimizerInput({"lr": 0.01, "foreach": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        _CORRECTED_ERR,
        ErrorInput({"max_grad_norm": 0.0}, ValueError, r"Invalid max_grad_norm value: 0.0", "max_grad_norm 0"),
    ),
)

_LARS = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.1, "weight_decay": 0.01}, "weight decay"),
        OptimizerInput({"lr": 0.1, "weight_decay": 0.0, "always_adapt": True, "trust_coeff": 0.01}, "always adapt"),
        OptimizerInput({"lr": 0.1, "weight_decay": 0.01, "trust_clip": True, "momentum": 0.0, "nesterov": False},
                       "larc no momentum"),
        OptimizerInput({"lr": 0.1, "weight_decay": 0.01, "dampening": 0.5, "nesterov": False}, "dampening"),
        OptimizerInput({"lr": 0.1, "weight_decay": 0.01, "foreach": False}, "selectors ignored"),
    ),
    errors=_common_errors(momentum=True, eps=True) + (
        ErrorInput({"trust_coeff": -1.0}, ValueError, r"Invalid trust_coeff value: -1.0", "negative trust_coeff"),
    ),
)

ENTRIES: dict[str, DBEntry] = {
    **{n: _LAMB for n in ("lamb", "lambc", "lambw", "lambcw", "lambcd", "clamb", "clambw")},
    **{n: _LARS for n in ("lars", "larc", "nlars", "nlarc")},
}
