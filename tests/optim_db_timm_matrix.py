"""Configurations and expected errors for timm's matrix and second-order optimizers: Muon, Adahessian, Kron."""
from __future__ import annotations

from optim_db import DBEntry, ErrorInput, OptimizerInput, _common_errors

# ----------------------------------------------------------------------------------------------------- Muon
_MUON_INPUTS = (
    OptimizerInput({}, "registry defaults (bfloat16 NS emulation)"),
    OptimizerInput({"lr": 0.02, "ns_dtype": None, "weight_decay": 0.01}, "param-dtype NS, weight decay"),
    OptimizerInput({"lr": 0.02, "nesterov": True, "ns_coefficients": "original", "adjust_lr_fn": None},
                   "nesterov original coefficients, no lr adjustment"),
    OptimizerInput({"lr": 0.02, "ns_coefficients": "polar_express", "safety_factor": 1.01, "scale_eps": True},
                   "polar express, safety factor, scaled eps"),
    OptimizerInput({"lr": 0.02, "ns_coefficients": [[3.4445, -4.775, 2.0315]], "ns_steps": 3,
                    "conv_mode": "batched", "ns_dtype": "float64"}, "explicit coefficients, batched, float64 NS"),
    OptimizerInput({"lr": 0.02, "fallback_lr_scale": 0.5, "betas": (0.8, 0.9), "eps": 1e-6}, "fallback knobs"),
    OptimizerInput({"lr": 0.02, "use_fallback": True}, "everything on the fallback"),
    OptimizerInput({"lr": 0.02, "adjust_lr_fn": "rms_to_rms", "foreach": True, "capturable": False},
                   "rms_to_rms, selectors ignored"),
)
_MUON_ERRORS = _common_errors(betas=True, eps=True) + (
    ErrorInput({"momentum": 1.0}, ValueError, r"Invalid momentum: 1.0.*momentum", "momentum=1"),
    ErrorInput({"momentum": -0.1}, ValueError, r"Invalid momentum: -0.1", "negative momentum"),
    ErrorInput({"conv_mode": "spatial"}, ValueError, r"Invalid conv_mode: spatial", "conv_mode"),
    ErrorInput({"algo": "adam"}, ValueError, r"Invalid algo: adam. Must be 'muon' or 'adamuon'", "algo"),
    ErrorInput({"ns_coefficients": "cubic"}, ValueError, r"Unknown coefficients preset 'cubic'", "preset"),
    ErrorInput({"ns_coefficients": [(1.0, 2.0)]}, ValueError, r"Coefficient must be length-3", "triple"),
    ErrorInput({"ns_steps": 0}, ValueError, r"Invalid ns_steps: 0", "ns_steps"),
    ErrorInput({"ns_dtype": "float16"}, ValueError, r"Invalid ns_dtype: float16", "ns_dtype"),
    ErrorInput({"adjust_lr_fn": "nope"}, ValueError, r'Invalid scaling function "nope"', "adjust_lr_fn"),
)
_MUON = DBEntry(inputs=_MUON_INPUTS, errors=_MUON_ERRORS + (
    ErrorInput({"adjust_lr_fn": "rsqrt_in"}, ValueError, r'Invalid scaling function "rsqrt_in" for Muon',
               "AdaMuon-only lr fn"),))
_ADAMUON_INPUTS = tuple(
    OptimizerInput({**i.kwargs, "adjust_lr_fn": "rsqrt_in"} if i.kwargs.get("adjust_lr_fn") == "rms_to_rms"
                   else i.kwargs, i.desc.replace("rms_to_rms", "rsqrt_in"))
    for i in _MUON_INPUTS) + (OptimizerInput({"lr": 0.02, "adjust_lr_fn": "rms_to_rms", "ns_dtype": None},
                                             "rms_to_rms (bias-corrected second moment)"),)
_ADAMUON = DBEntry(inputs=tuple(
    OptimizerInput({**i.kwargs, "adjust_lr_fn": "match_rms_adamw"}, i.desc) if "original" in i.desc else i
    for i in _ADAMUON_INPUTS), errors=_MUON_ERRORS + (
    ErrorInput({"adjust_lr_fn": "original"}, ValueError, r'Invalid scaling function "original" for AdaMuon',
               "Muon-only lr fn"),))


# ----------------------------------------------------------------------------------------------- Adahessian
def _hessian_kwargs(params, grads):
    """A positive stand-in for the Hessian-diagonal estimate (1 + g**2), in the grads' namespace; bad grads are
    left to the step's own validation."""
    from array_api_compat import is_array_api_obj

    est = {}
    for n, p in params.items():
        g = grads.get(n)
        if is_array_api_obj(g) and tuple(g.shape) == tuple(p.shape) and "int" not in str(g.dtype):
            est[n] = g * g + 1.0
    return {"hessian": est}


_ADAHESSIAN = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.05, "weight_decay": 0.1, "hessian_power": 0.5}, "decay, hessian power 1/2"),
        OptimizerInput({"lr": 0.05, "update_each": 2, "n_samples": 3}, "estimate every other step"),
        OptimizerInput({"lr": 0.05, "hessian_power": 0.0, "betas": (0.5, 0.9), "eps": 1e-4}, "power 0"),
        OptimizerInput({"lr": 0.05, "avg_conv_kernel": True, "foreach": False}, "avg_conv_kernel, selectors"),
    ),
    errors=_common_errors(betas=True, eps=True) + (
        ErrorInput({"hessian_power": 1.5}, ValueError, r"Invalid Hessian power value: 1.5.*hessian_power", "power"),
        ErrorInput({"update_each": 0}, ValueError, r"Invalid update_each: 0", "update_each"),
        ErrorInput({"n_samples": 0}, ValueError, r"Invalid n_samples: 0", "n_samples"),
        ErrorInput({"update_each": 1.5}, TypeError, r"'update_each' must be an int", "update_each float"),
    ),
    step_kwargs=_hessian_kwargs,
)

# ----------------------------------------------------------------------------------------------------- Kron
def _seed_kwargs(params, grads):
    """Kron's randomness, explicit: a fixed seed (the draws also depend on the param's step count)."""
    return {"seed": 1234}


_KRON_ERRORS = _common_errors() + (
    ErrorInput({"momentum": 1.0}, ValueError, r"Invalid beta parameter: 1.0.*momentum", "momentum=1"),
    ErrorInput({"memory_save_mode": "some_diag"}, ValueError, r"Invalid memory_save_mode: some_diag", "mode"),
    ErrorInput({"preconditioner_update_probability": 0.0}, ValueError,
               r"Invalid preconditioner_update_probability: 0.0", "prob 0"),
    ErrorInput({"precond_dtype": "bfloat16"}, ValueError, r"Invalid precond_dtype: 'bfloat16'", "bf16 precond"),
    ErrorInput({"max_size_triangular": 2.5}, TypeError, r"'max_size_triangular' must be an int", "int"),
)
_KRON_INPUTS = (
    OptimizerInput({}, "registry defaults"),
    OptimizerInput({"lr": 0.01, "weight_decay": 0.1, "stochastic_weight_decay": True}, "stochastic decay"),
    OptimizerInput({"lr": 0.01, "memory_save_mode": "one_diag", "momentum_into_precond_update": False},
                   "one_diag, raw grad"),
    OptimizerInput({"lr": 0.01, "memory_save_mode": "all_diag", "precond_init_scale": 2.0}, "all_diag"),
    OptimizerInput({"lr": 0.01, "memory_save_mode": "smart_one_diag", "max_size_triangular": 4}, "smart_one_diag"),
    OptimizerInput({"lr": 0.01, "preconditioner_update_probability": 0.5, "precond_lr": 0.3}, "prob 0.5"),
    OptimizerInput({"lr": 0.01, "flatten": True, "flatten_start_dim": 0, "mu_dtype": "float64"}, "flatten, mu"),
    OptimizerInput({"lr": 0.01, "weight_decay": 0.01, "foreach": True}, "decay, selectors ignored"),
)
_KRON = DBEntry(inputs=_KRON_INPUTS, errors=_KRON_ERRORS, step_kwargs=_seed_kwargs, descent_lr=0.05)
_KRONC = DBEntry(inputs=_KRON_INPUTS, errors=_KRON_ERRORS + (
    ErrorInput({"lr": 0.0}, ValueError, r"Corrected weight decay requires a positive max lr", "lr=0"),),
    step_kwargs=_seed_kwargs, descent_lr=0.05)

ENTRIES: dict[str, DBEntry] = {
    "kron": _KRON, "kronw": _KRON, "kronc": _KRONC,
    "muon": _MUON, "nmuon": _MUON,
    "adamuon": _ADAMUON, "nadamuon": _ADAMUON,
    "adahessian": _ADAHESSIAN,
}
