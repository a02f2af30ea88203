"""Parity harness for the oracle suites: a re-export of :mod:`arrayoptim.verify`, where the machinery lives once.

``check_parity``, ``hparams_from_torch``, ``make_params``, ``grad_schedule``, ``assert_close``,
``torch_default_dtype``, ``to_py`` and ``SELECTORS`` keep their names and signatures; see ``arrayoptim/verify.py``
for the comparison (params and every state slot after each step, then a re-sync from the oracle).
"""
from __future__ import annotations

from arrayoptim.verify import (  # noqa: F401  (re-exported)
    SELECTORS,
    OracleError,
    ParityResult,
    TimmStateView,
    _np,
    _resync,
    assert_close,
    check_parity,
    grad_schedule,
    hparams_from_torch,
    make_params,
    rel_diff,
    run_parity,
    to_py,
    torch_default_dtype,
)


# ------------------------------------------------------------------- torch's own test grid (optim_db), loaded once

def _optim_db(class_names):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch.testing._internal.common_optimizers import OptimizerErrorEnum, optim_db
    return [info for info in optim_db if info.optim_cls.__name__ in class_names], OptimizerErrorEnum


def optim_db_grid(class_names):
    """``pytest.param(cls, kwargs)`` for every CPU float64 configuration torch tests ``class_names`` with."""
    import pytest
    import torch

    infos, _ = _optim_db(class_names)
    return [pytest.param(info.optim_cls, dict(inp.kwargs), id=f"{info.optim_cls.__name__}-{inp.desc.replace(' ', '_')}")
            for info in infos for inp in info.optim_inputs_func(device="cpu", dtype=torch.float64)]


def optim_db_error_grid(class_names):
    """``pytest.param(cls, kwargs, error_type, regex)`` for torch's construction-error configurations.

    Skipped: entries about the params argument itself (arrayoptim's params are a mapping of names checked at
    ``init``/``step``), step-time errors, and restrictions of torch's foreach/capturable kernels on Tensor
    hyperparameters (arrayoptim ignores the selectors and accepts 0-d/1-element values where torch takes numbers).
    """
    import pytest
    import torch

    infos, enum = _optim_db(class_names)
    out = []
    for info in infos:
        for err in info.optim_error_inputs_func(device="cpu", dtype=torch.float64):
            inp = err.optimizer_error_input
            if err.error_on != enum.CONSTRUCTION_ERROR or inp.params is not None:
                continue
            marks = []
            if _is_kernel_restriction(inp.kwargs, err.error_regex):
                marks = [pytest.mark.skip(reason="a restriction of torch's foreach/capturable kernels on Tensor "
                                                 "hyperparameters; arrayoptim ignores the selectors")]
            out.append(pytest.param(info.optim_cls, dict(inp.kwargs), err.error_type, err.error_regex, marks=marks,
                                    id=f"{info.optim_cls.__name__}-{inp.desc.replace(' ', '_')}"))
    return out


def _is_kernel_restriction(kwargs, regex):
    import torch

    has_tensor = any(isinstance(v, torch.Tensor) or (isinstance(v, (tuple, list)) and
                                                     any(isinstance(x, torch.Tensor) for x in v))
                     for v in kwargs.values())
    return has_tensor and any(w in str(regex) for w in ("foreach", "capturable", "both floats or both Tensors"))
