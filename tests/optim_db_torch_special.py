"""Configurations and expected errors of the torch-only special classes: LBFGS, SparseAdam, Adafactor, Muon."""
from __future__ import annotations

from array_api_compat import array_namespace, is_array_api_obj

from optim_db import DBEntry, ErrorInput, OptimizerInput


def _quadratic_closure(params, grads):
    """LBFGS's closure for the generic suites: the quadratic whose gradient at ``params`` is ``grads``.

    ``f(x) = sum_n 0.5 |x_n - c_n|^2`` with ``c = params - grads``, over the names that have an array grad, so the
    closure's first evaluation returns the suite's own grads (and descent on it is descent on the suite's problem).
    """
    targets = {n: params[n] - g for n, g in grads.items()
               if _usable(params, n, g) and g.shape == params[n].shape}

    def closure(p):
        loss, out = 0.0, {}
        for n, c in targets.items():
            xp = array_namespace(p[n])
            r = p[n] - c
            loss = loss + float(xp.sum(r * r)) / 2
            out[n] = r
        return loss, out

    return {"closure": closure}


def _usable(params, n, g):
    """A grad the step will accept (the suites also feed bad grads, which the step itself must refuse)."""
    if not is_array_api_obj(g) or n not in params:
        return False
    try:
        xp = array_namespace(params[n], g)
    except TypeError:
        return False
    return xp.isdtype(g.dtype, "real floating")


def _positive_grad_mask(params, grads):
    """SparseAdam's mask for the generic suites: the entries with a positive grad are "present"."""
    return {"grad_mask": {n: g > 0 for n, g in grads.items()
                          if _usable(params, n, g)}}


_LR_ERRORS = (
    ErrorInput({"no_such_hparam": 1.0}, TypeError, r"unknown hyperparameter 'no_such_hparam'", "unknown"),
    ErrorInput({"lr": "0.1"}, TypeError, r"'lr' must be a real number", "lr as str"),
)

LBFGS = DBEntry(
    inputs=(
        # the first two run on every backend and dtype: float32 L-BFGS on the suite's random problems amplifies
        # summation-order differences between libraries, so these two keep few iterations per step
        OptimizerInput({"lr": 0.1, "max_iter": 1}, "one iteration per step"),
        OptimizerInput({"lr": 0.5, "max_iter": 2, "line_search_fn": "strong_wolfe"}, "strong wolfe, 2 iterations"),
        OptimizerInput({"lr": 0.1, "max_iter": 4, "history_size": 2, "line_search_fn": "strong_wolfe"},
                       "strong wolfe short history"),
        OptimizerInput({}, "torch defaults"),
        OptimizerInput({"line_search_fn": "strong_wolfe"}, "strong wolfe"),
        OptimizerInput({"lr": 0.05, "max_iter": 5, "maximize": True}, "maximize"),
        OptimizerInput({"tolerance_grad": 1e-6, "tolerance_change": 1e-6, "max_eval": 7}, "tolerances max_eval"),
        OptimizerInput({"lr": 0.5, "max_iter": 5, "line_search_fn": "strong_wolfe", "foreach": True},
                       "strong wolfe, selectors ignored"),
    ),
    errors=_LR_ERRORS + (
        ErrorInput({"lr": -1.0}, ValueError, r"Invalid learning rate: -1.0.*lr", "negative lr"),
        ErrorInput({"line_search_fn": "armijo"}, ValueError, r"only 'strong_wolfe' is supported", "line search"),
        ErrorInput({"history_size": 0}, ValueError, r"history_size must be >= 1", "no history"),
        ErrorInput({"max_iter": 2.5}, TypeError, r"'max_iter' must be an int", "max_iter float"),
    ),
    descent_lr=0.05,
    step_kwargs=_quadratic_closure,
    grads_from_closure=True,  # the closure supplies the gradients; ``grads`` only selects the params
)

SPARSEADAM = DBEntry(
    inputs=(
        OptimizerInput({}, "torch defaults"),
        OptimizerInput({"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-3}, "betas, big eps"),
        OptimizerInput({"lr": 0.01, "maximize": True}, "maximize"),
        OptimizerInput({"lr": 0.02, "foreach": True}, "selectors ignored"),
    ),
    errors=_LR_ERRORS + (
        ErrorInput({"lr": 0.0}, ValueError, r"Invalid learning rate: 0.0.*lr", "zero lr"),
        ErrorInput({"eps": 0.0}, ValueError, r"Invalid epsilon value: 0.0.*eps", "zero eps"),
        ErrorInput({"lr": 0.01, "betas": (1.0, 0.0)}, ValueError, r"Invalid beta parameter at index 0: 1.0",
                   "beta1=1"),
        ErrorInput({"betas": (0.9, 1.5)}, ValueError, r"Invalid beta parameter at index 1: 1.5", "beta2>1"),
        ErrorInput({"weight_decay": 0.1}, TypeError, r"unknown hyperparameter 'weight_decay'", "no weight decay"),
    ),
    step_kwargs=_positive_grad_mask,
)

TORCHADAFACTOR = DBEntry(
    inputs=(
        OptimizerInput({}, "torch defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"weight_decay": 0.1, "maximize": True}, "maximize"),
        OptimizerInput({"beta2_decay": -1.0}, "beta2_decay"),
        OptimizerInput({"d": 1.5, "eps": (1e-20, 1e-3)}, "clipping d, explicit eps1"),
        OptimizerInput({"lr": 0.02, "eps": [None, 1e-2], "foreach": True}, "eps as list, selectors ignored"),
    ),
    errors=_LR_ERRORS + (
        ErrorInput({"lr": -0.01}, ValueError, r"Learning rate should be >= 0 but is: -0.01.*lr", "negative lr"),
        ErrorInput({"eps": (-1e-30, 1e-3)}, ValueError, r"epsilon1 should be >= 0", "negative eps1"),
        ErrorInput({"eps": (None, -1.0)}, ValueError, r"epsilon2 should be >= 0", "negative eps2"),
        ErrorInput({"eps": 1e-3}, TypeError, r"'eps' must be a pair", "eps not a pair"),
        ErrorInput({"d": 0.0}, ValueError, r"Clipping threshold d should be >= 1", "d<1"),
        ErrorInput({"beta2_decay": 0.8}, ValueError, r"beta2_decay should be <= 0", "beta2_decay>0"),
        ErrorInput({"weight_decay": -1.0}, ValueError, r"weight_decay should be >= 0.*weight_decay", "neg wd"),
    ),
)

TORCHMUON = DBEntry(
    inputs=(
        OptimizerInput({}, "torch defaults"),
        OptimizerInput({"lr": 0.01, "momentum": 0.8, "nesterov": False}, "no nesterov"),
        OptimizerInput({"lr": 0.02, "weight_decay": 0.2, "adjust_lr_fn": "match_rms_adamw"}, "match_rms_adamw"),
        OptimizerInput({"lr": 0.02, "adjust_lr_fn": "spectral_unclamped", "ns_steps": 6,
                        "ns_coefficients": (3.4, -4.7, 2.0)}, "spectral, ns options"),
        OptimizerInput({"lr": 0.02, "ns_dtype": "bfloat16"}, "emulated bfloat16"),
    ),
    errors=_LR_ERRORS + (
        ErrorInput({"lr": -0.01}, ValueError, r"Learning rate should be >= 0 but is: -0.01.*lr", "negative lr"),
        ErrorInput({"momentum": -0.5}, ValueError, r"Invalid momentum value: -0.5.*momentum", "neg momentum"),
        ErrorInput({"weight_decay": -1.0}, ValueError, r"weight decay should be >= 0.*weight_decay", "neg wd"),
        ErrorInput({"adjust_lr_fn": "arbitrary"}, ValueError,
                   r"Adjust learning rate function arbitrary is not supported", "adjust_lr_fn"),
        ErrorInput({"ns_steps": 100}, ValueError, r"Number of steps must be less than 100", "ns_steps"),
        ErrorInput({"ns_coefficients": (1.0, 2.0)}, ValueError, r"exactly 3 values", "two coefficients"),
        ErrorInput({"ns_dtype": "float16"}, ValueError, r"ns_dtype must be None or 'bfloat16'", "ns_dtype"),
    ),
    # torch.optim.Muon accepts 2-D params only
    shapes={"w": (5, 4), "b": (1, 4), "scalar": (1, 1), "empty": (0, 3)},
)

ENTRIES: dict[str, DBEntry] = {
    "lbfgs": LBFGS,
    "sparseadam": SPARSEADAM,
    "torchadafactor": TORCHADAFACTOR,
    "torchmuon": TORCHMUON,
}
