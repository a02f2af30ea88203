"""Parity harness for the oracle suites: a re-export of :mod:`arrayoptim.testing`, where the machinery lives once.

``check_parity``, ``hparams_from_torch``, ``make_params``, ``grad_schedule``, ``assert_close``,
``torch_default_dtype``, ``to_py`` and ``SELECTORS`` keep their names and signatures; see ``arrayoptim/testing/``
for the comparison (params and every state slot after each step, then a re-sync from the oracle).
"""
from __future__ import annotations

from arrayoptim.testing import (  # noqa: F401  (re-exported)
    SELECTORS,
    OracleError,
    ParityResult,
    TimmStateView,
    assert_close,
    check_parity,
    grad_schedule,
    hparams_from_torch,
    make_params,
    rel_diff,
    run_parity,
    to_py,
    torch_groups,
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


# ------------------------------------------------------------------------- lockstep under an edited param_group lr

def check_lr_schedule_parity(name, ours_kwargs, make_oracle, lrs, rtol=1e-10):
    """Step the oracle with ``param_group['lr'] = lrs[t]`` written into every group (what a scheduler does) beside
    ``ao.create_optimizer(name, **ours_kwargs).step(..., hyperparams={'lr': lrs[t]})``, float64, no re-sync; params
    and every oracle state slot must agree within ``rtol`` after each step.

    ``make_oracle(tensors)`` builds the oracle; ``ours_kwargs`` is a dict or ``f(oracle) -> dict`` (e.g. torch's
    defaults read back with :func:`hparams_from_torch`). Returns ``(opt, params)`` for further checks.
    """
    import torch

    import arrayoptim as ao

    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params()
        oracle = make_oracle(list(t_params.values()))
        opt = ao.create_optimizer(name, **(ours_kwargs(oracle) if callable(ours_kwargs) else ours_kwargs))
        params, state = np_params, opt.init(np_params)
        for t, (g, lr) in enumerate(zip(grad_schedule(np_params, len(lrs)), lrs)):
            for group in oracle.param_groups:
                group["lr"] = lr
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n])
            oracle.step()
            params, state = opt.step(params, g, state, hyperparams={"lr": lr})
            for n, p in t_params.items():
                assert_close(params[n], p, rtol, f"{name} step {t + 1} {n}")
                for k, v in oracle.state[p].items():
                    assert_close(state[n][k], v, rtol, f"{name} step {t + 1} {n} slot {k}")
    return opt, params


def check_optim_db_parity(cls, kwargs, name, scale=1.0, steps=12):
    """torch's optim_db configuration ``cls(**kwargs)`` beside ``name`` with torch's resolved defaults read back
    (:func:`hparams_from_torch`), 12 steps, grads of size ``scale`` (tiny grads expose eps placement)."""
    import torch

    probe = cls([torch.zeros(1, requires_grad=True)], **kwargs)
    np_params, _ = make_params()
    check_parity(name, hparams_from_torch(probe.defaults, name), lambda groups: cls(groups, **kwargs), steps=steps,
                 grads=grad_schedule(np_params, steps, scale=scale))
