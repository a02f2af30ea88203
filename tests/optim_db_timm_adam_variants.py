"""Configurations and expected errors for AdaBelief, AdamWLegacy, Adan, ADOPT, LaProp and Lion (every name)."""
from __future__ import annotations

from optim_db import DBEntry, ErrorInput, OptimizerInput, _common_errors

_CORRECTED_ERR = ErrorInput({"lr": 0.0, "corrected_weight_decay": True}, ValueError,
                            r"Corrected weight decay requires a positive max lr", "corrected with lr=0")

_ADABELIEF = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "amsgrad": True}, "amsgrad wd"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled_decay": False}, "L2 decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "fixed_decay": True}, "fixed decay"),
        OptimizerInput({"lr": 0.01, "rectify": True, "betas": (0.9, 0.9)}, "rectify short beta2"),
        OptimizerInput({"lr": 0.01, "rectify": True, "amsgrad": True, "eps": 1e-8}, "rectify amsgrad eps"),
        OptimizerInput({"lr": 0.01, "foreach": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True),
)

_ADAMW_LEGACY = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "amsgrad": True, "clipping_threshold": 1.0},
                       "amsgrad clipping"),
        OptimizerInput({"lr": 0.01, "caution": True, "corrected_weight_decay": True}, "caution corrected"),
        OptimizerInput({"lr": 0.01, "maximize": True, "weight_decay": 0.0}, "maximize no decay"),
        OptimizerInput({"lr": 0.01, "capturable": True, "foreach": False}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        _CORRECTED_ERR,
        ErrorInput({"clipping_threshold": 0.0}, ValueError, r"Invalid clipping_threshold value: 0.0",
                   "clip threshold 0"),
    ),
)

_ADAN = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "no_prox": True, "caution": True}, "no_prox caution"),
        OptimizerInput({"lr": 0.01, "betas": [0.9, 0.8, 0.95], "eps": 1e-4}, "betas as list"),
        OptimizerInput({"lr": 0.01, "foreach": True}, "selectors ignored"),
    ),
    errors=_common_errors(eps=True) + (
        ErrorInput({"betas": (0.98, 0.92, 1.0)}, ValueError, r"Invalid beta parameter at index 2: 1.0", "beta3=1"),
        ErrorInput({"betas": (0.9, 0.999)}, ValueError, r"Invalid betas", "two betas"),
    ),
)

_ADOPT = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "clip_exp": None}, "no clip"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "decoupled": True, "corrected_weight_decay": True,
                        "caution": True}, "decoupled corrected caution"),
        OptimizerInput({"lr": 0.01, "maximize": True, "weight_decay": 0.01}, "maximize"),
        OptimizerInput({"lr": 0.01, "differentiable": False, "capturable": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (_CORRECTED_ERR,),
    steps=6,
)

_LAPROP = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "caution": True, "corrected_weight_decay": True},
                       "caution corrected"),
        OptimizerInput({"lr": 0.01, "foreach": False}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True) + (_CORRECTED_ERR,),
)

_LION = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "caution": True, "corrected_weight_decay": True},
                       "caution corrected"),
        OptimizerInput({"lr": 0.01, "maximize": True, "betas": (0.5, 0.9)}, "maximize betas"),
        OptimizerInput({"lr": 0.01, "foreach": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True) + (
        _CORRECTED_ERR,
        ErrorInput({"eps": 1e-8}, TypeError, r"unknown hyperparameter 'eps'", "lion has no eps"),
    ),
)

ENTRIES: dict[str, DBEntry] = {
    **dict.fromkeys(("adabelief", "radabelief"), _ADABELIEF),
    **dict.fromkeys(("adamwlegacy", "adamc", "cadamw", "cadamc"), _ADAMW_LEGACY),
    **dict.fromkeys(("adan", "adanw", "cadan", "cadanw"), _ADAN),
    **dict.fromkeys(("adopt", "adoptw", "adoptc", "cadopt", "cadoptw", "cadoptc"), _ADOPT),
    **dict.fromkeys(("laprop", "lapropc", "claprop"), _LAPROP),
    **dict.fromkeys(("lion", "lionc", "clion", "clionc"), _LION),
}
