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

_ADAMP = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "delta": 5.0, "wd_ratio": 0.5}, "always projected"),
        OptimizerInput({"lr": 0.01, "nesterov": False, "caution": True, "delta": 5.0}, "caution projected"),
        OptimizerInput({"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-3, "weight_decay": 0.01}, "betas as list"),
        OptimizerInput({"lr": 0.01, "fused": False}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        ErrorInput({"delta": -0.1}, ValueError, r"Invalid delta value: -0.1", "negative delta"),
        ErrorInput({"wd_ratio": -1.0}, ValueError, r"Invalid wd_ratio value: -1.0", "negative wd_ratio"),
    ),
)

_SGDP = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.05, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.05, "weight_decay": 0.1, "delta": 5.0, "nesterov": False, "dampening": 0.3},
                       "always projected dampening"),
        OptimizerInput({"lr": 0.05, "caution": True, "delta": 5.0, "weight_decay": 0.01}, "caution projected"),
        OptimizerInput({"lr": 0.05, "momentum": 0.0, "nesterov": False}, "no momentum"),
        OptimizerInput({"lr": 0.05, "foreach": True}, "selectors ignored"),
    ),
    errors=tuple(e for e in _common_errors(momentum=True, eps=True) if "nesterov" not in e.desc) + (
        ErrorInput({"momentum": 1.0, "weight_decay": 0.1}, ValueError, r"divides weight decay by 1 - momentum",
                   "momentum 1 with decay"),
    ),
)

_ADAFACTOR = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "min_dim_size_to_factor": 2}, "external lr factored"),
        OptimizerInput({"weight_decay": 0.1, "min_dim_size_to_factor": 2, "betas": (0.9, 0.999)},
                       "relative step factored momentum"),
        OptimizerInput({"warmup_init": True, "scale_parameter": False, "clip_threshold": 0.5}, "warmup init"),
        OptimizerInput({"lr": 0.01, "betas": [0.8, 0.99], "caution": True, "decay_rate": -0.5}, "caution"),
        OptimizerInput({"foreach": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        ErrorInput({"lr": 0.01, "warmup_init": True}, ValueError, r"warmup_init requires relative_step=True",
                   "warmup with lr"),
        ErrorInput({"clip_threshold": 0.0}, ValueError, r"Invalid clip_threshold value: 0.0", "clip 0"),
        ErrorInput({"min_dim_size_to_factor": 2.5}, TypeError, r"'min_dim_size_to_factor' must be an int",
                   "float min dim"),
    ),
    descent_lr=None,
)

_ADAFACTOR_BV = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.05, "weight_decay": 0.1, "min_dim_size_to_factor": 2}, "factored decay"),
        OptimizerInput({"lr": 0.05, "weight_decay": 0.1, "unscaled_wd": True, "clipping_threshold": 1.0,
                        "min_dim_size_to_factor": 3}, "unscaled decay clipping"),
        OptimizerInput({"lr": 0.05, "momentum": None, "decay_offset": 2, "beta2_cap": 0.9}, "no momentum offset"),
        OptimizerInput({"lr": 0.05, "eps": 1e-3, "caution": True, "corrected_weight_decay": True,
                        "weight_decay": 0.01}, "caution corrected eps"),
        OptimizerInput({"lr": 0.05, "foreach": True}, "selectors ignored"),
        OptimizerInput({"lr": 0.05, "momentum_dtype": "float16"}, "float16 momentum"),
        OptimizerInput({"lr": 0.05, "momentum_dtype": None, "min_dim_size_to_factor": 2}, "unrounded momentum"),
    ),
    errors=_common_errors(momentum=True)[:-2] + (
        _CORRECTED_ERR,
        ErrorInput({"clipping_threshold": 0.0}, ValueError, r"Invalid clipping_threshold value: 0.0", "clip 0"),
        ErrorInput({"eps": -1.0}, ValueError, r"Invalid epsilon value: -1.0", "negative eps"),
        ErrorInput({"beta2_cap": 1.5}, ValueError, r"Invalid beta2_cap value: 1.5", "beta2_cap > 1"),
        ErrorInput({"momentum_dtype": "int8"}, ValueError, r"Invalid momentum_dtype value: int8",
                   "integer momentum_dtype"),
        ErrorInput({"momentum_dtype": 3}, TypeError, r"'momentum_dtype' must be a dtype or a dtype name",
                   "momentum_dtype not a dtype"),
    ),
)

ENTRIES: dict[str, DBEntry] = {
    **{n: _ADAFACTOR_BV for n in ("adafactorbv", "adafactorbvc", "cadafactorbv", "cadafactorbvc")},
    "adafactor": _ADAFACTOR, "cadafactor": _ADAFACTOR,
    "adamp": _ADAMP, "cadamp": _ADAMP, "sgdp": _SGDP, "csgdp": _SGDP,
    **{n: _LAMB for n in ("lamb", "lambc", "lambw", "lambcw", "lambcd", "clamb", "clambw")},
    **{n: _LARS for n in ("lars", "larc", "nlars", "nlarc")},
}
