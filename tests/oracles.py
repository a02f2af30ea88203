"""Parity harness: run a real torch.optim / timm optimizer beside arrayoptim and compare after every step.

Shared by every oracle suite (``test_oracle_*.py``). After each step it compares params **and every state slot**
(keys and values), then re-syncs arrayoptim from the oracle (torch's ``TensorTracker`` idea), so a failure names
the first divergent step and slot instead of an accumulated drift.

The problem always includes a 4-D conv weight, a matrix, a vector, a 0-d param and a non-contiguous (transposed)
param, and steps where some grads are missing.
"""
from __future__ import annotations

import contextlib
import numbers
from typing import Any, Callable, Iterable, Mapping

import numpy as np

import arrayoptim as ao

SELECTORS = {"foreach", "fused", "capturable", "differentiable"}


@contextlib.contextmanager
def torch_default_dtype(dtype):
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def to_py(v: Any) -> Any:
    """torch hyperparameter values (0-d tensors, tuples of them) as Python numbers."""
    import torch

    if isinstance(v, torch.Tensor):
        return v.item()
    if isinstance(v, (tuple, list)):
        return type(v)(to_py(x) for x in v)
    return v


def hparams_from_torch(defaults: Mapping[str, Any], name: str, drop: Iterable[str] = ()) -> dict[str, Any]:
    """The oracle's complete hyperparameter set (``optimizer.defaults``) as arrayoptim keywords.

    Every key must be an arrayoptim hyperparameter of ``name`` (selectors aside): nothing is silently dropped
    except the names listed in ``drop``.
    """
    fields = set(ao.get_optimizer_info(name).hyperparams.field_names())
    out, unknown = {}, []
    for k, v in defaults.items():
        if k in SELECTORS or k in drop:
            continue
        if k not in fields:
            unknown.append(k)
            continue
        out[k] = to_py(v)
    assert not unknown, f"{name}: oracle hyperparameters with no arrayoptim equivalent: {unknown}"
    return out


def make_params(seed: int = 0):
    """NumPy float64 params and torch leaf tensors sharing their values, including a transposed param."""
    import torch

    rng = np.random.default_rng(seed)
    base = {"conv": rng.standard_normal((6, 3, 3, 3)), "w": rng.standard_normal((5, 7)), "b": rng.standard_normal(3),
            "scalar": np.array(rng.standard_normal())}
    t_params = {k: torch.tensor(v, dtype=torch.float64).requires_grad_() for k, v in base.items()}
    nc = torch.tensor(rng.standard_normal((4, 6)), dtype=torch.float64).t().requires_grad_()
    assert not nc.is_contiguous()
    t_params["nc"] = nc
    np_params = {k: v.copy() for k, v in base.items()}
    np_params["nc"] = np.array(nc.detach().numpy().T, copy=True).T  # transposed view, non-contiguous too
    assert not np_params["nc"].flags.c_contiguous
    return np_params, t_params


def grad_schedule(np_params, steps: int, seed: int = 1, scale: float = 1.0, missing: bool = True):
    """Per step, a dict of grads; some params have no grad on some steps (``missing``)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        g = {k: scale * rng.standard_normal(v.shape) for k, v in np_params.items()}
        if missing and t == 2:
            g["b"] = None
        if missing and t in (4, 5):
            g["scalar"] = None
        out.append(g)
    return out


def _np(v: Any) -> Any:
    import torch

    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy().copy()
    return v


def assert_close(ours: Any, theirs: Any, rtol: float, what: str) -> None:
    theirs = _np(theirs)
    if isinstance(theirs, np.ndarray) or isinstance(ours, np.ndarray):
        ours_a, theirs_a = np.asarray(ours), np.asarray(theirs)
        assert ours_a.shape == theirs_a.shape, f"{what}: shape {ours_a.shape} != oracle {theirs_a.shape}"
        scale = max(1.0, float(np.max(np.abs(theirs_a)))) if theirs_a.size else 1.0
        np.testing.assert_allclose(ours_a, theirs_a, rtol=rtol, atol=rtol * scale, err_msg=what)
    elif isinstance(theirs, numbers.Number) and not isinstance(theirs, bool):
        assert abs(float(ours) - theirs) <= rtol * max(1.0, abs(theirs)), f"{what}: {ours} != oracle {theirs}"
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), what
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b, rtol, f"{what}[{i}]")
    else:
        assert ours == theirs, f"{what}: {ours!r} != oracle {theirs!r}"


def check_parity(
    name: str,
    ours_kwargs: Mapping[str, Any],
    make_oracle: Callable[[list], Any],
    *,
    steps: int = 12,
    rtol: float = 1e-10,
    groups: list[dict] | None = None,
    grads: list[dict] | None = None,
    slot_map: Callable[[str, dict], dict] | None = None,
    seed: int = 0,
) -> None:
    """Step the oracle and arrayoptim side by side in float64, comparing params and all state slots each step.

    ``make_oracle(param_groups)`` builds the oracle from torch-style groups (``[{'params': [...], **overrides}]``,
    one group when ``groups`` is None); ``groups`` are arrayoptim groups by name (``{'params': [names], ...}``).
    ``slot_map(name, oracle_state)`` may rename/adjust oracle state for comparison (documented differences only).
    """
    import torch

    with torch_default_dtype(torch.float64):
        np_params, t_params = make_params(seed)
        names = list(np_params)
        if groups:
            grouped = {n for g in groups for n in g["params"]}
            t_groups = [{"params": [t_params[n] for n in names if n not in grouped]}] + [
                {**{k: v for k, v in g.items() if k != "params"}, "params": [t_params[n] for n in g["params"]]}
                for g in groups]
        else:
            t_groups = [{"params": [t_params[n] for n in names]}]
        oracle = make_oracle(t_groups)
        opt = ao.create_optimizer(name, groups=groups, **ours_kwargs)
        params, state = np_params, opt.init(np_params)
        for t, g in enumerate(grads or grad_schedule(np_params, steps)):
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n], dtype=torch.float64)
            oracle.step()
            params, state = opt.step(params, g, state)
            for n, p in t_params.items():
                where = f"{name} step {t + 1} param {n!r}"
                assert_close(params[n], p, rtol, where)
                theirs = dict(oracle.state.get(p, {}))
                if slot_map:
                    theirs = slot_map(n, theirs)
                assert set(state[n]) == set(theirs), f"{where}: state slots {sorted(state[n])} != {sorted(theirs)}"
                for k, v in theirs.items():
                    assert_close(state[n][k], v, rtol, f"{where} slot {k!r}")
            # re-sync from the oracle so the next step's comparison is independent of accumulated rounding
            params = {n: _resync(params[n], p) for n, p in t_params.items()}
            for n, p in t_params.items():
                theirs = dict(oracle.state.get(p, {}))
                if slot_map:
                    theirs = slot_map(n, theirs)
                state[n] = {k: _resync(state[n][k], v) for k, v in theirs.items()}


def _resync(ours: Any, theirs: Any) -> Any:
    theirs = _np(theirs)
    if isinstance(ours, np.ndarray) and isinstance(theirs, np.ndarray):
        out = np.array(ours, copy=True)
        out[...] = theirs
        return out
    return ours
