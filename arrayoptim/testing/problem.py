"""The problem every parity run uses: params (a 4-D conv weight, a matrix, a vector, a 0-d param, a
non-contiguous one), grad streams with missing grads, torch-side groups and hyperparameters read from a torch
optimizer. torch is imported lazily."""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Mapping

import numpy as np

from .compare import _is_torch_tensor


#: torch's implementation selectors (``foreach``, ...): part of ``optimizer.defaults``, no effect on the math.
SELECTORS = {"foreach", "fused", "capturable", "differentiable"}


# ----------------------------------------------------------------------------------------------- torch helpers

@contextlib.contextmanager
def torch_default_dtype(dtype: Any):
    """Temporarily set torch's default dtype (restored on exit, also on error)."""
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def to_py(v: Any) -> Any:
    """torch hyperparameter values (0-d tensors, tuples of them) as Python numbers."""
    if _is_torch_tensor(v):
        return v.item()
    if isinstance(v, (tuple, list)):
        return type(v)(to_py(x) for x in v)
    return v


def hparams_from_torch(defaults: Mapping[str, Any], name: str, drop: Iterable[str] = ()) -> dict[str, Any]:
    """The oracle's complete hyperparameter set (``optimizer.defaults``) as arrayoptim keywords.

    Every key must be an arrayoptim hyperparameter of ``name`` (selectors aside): nothing is silently dropped
    except the names listed in ``drop``.

    Raises
    ------
    AssertionError
        If the oracle has a hyperparameter that ``name``'s record lacks.
    """
    from .. import get_optimizer_info

    fields = set(get_optimizer_info(name).hyperparams.field_names())
    drop = set(drop)
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


def make_params(seed: int = 0, dtype: Any = None):
    """NumPy params and torch leaf tensors sharing their values, including a transposed param.

    Parameters
    ----------
    seed
        Seed of the values.
    dtype
        A torch floating dtype (default ``torch.float64``); the NumPy params get the matching dtype.

    Returns
    -------
    (dict, dict)
        ``{name: np.ndarray}`` and ``{name: torch.Tensor}`` (``requires_grad``) with equal values: a 4-D ``conv``,
        a matrix ``w``, a vector ``b``, a 0-d ``scalar`` and a non-contiguous (transposed) ``nc``.
    """
    import torch

    dtype = torch.float64 if dtype is None else dtype
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    rng = np.random.default_rng(seed)
    base = {"conv": rng.standard_normal((6, 3, 3, 3)), "w": rng.standard_normal((5, 7)), "b": rng.standard_normal(3),
            "scalar": np.array(rng.standard_normal())}
    base = {k: v.astype(np_dtype) for k, v in base.items()}
    t_params = {k: torch.tensor(v, dtype=dtype).requires_grad_() for k, v in base.items()}
    nc = torch.tensor(rng.standard_normal((4, 6)), dtype=dtype).t().requires_grad_()
    assert not nc.is_contiguous()
    t_params["nc"] = nc
    np_params = {k: v.copy() for k, v in base.items()}
    np_params["nc"] = np.array(nc.detach().numpy().T, copy=True).T  # transposed view, non-contiguous too
    assert not np_params["nc"].flags.c_contiguous
    return np_params, t_params


def torch_groups(t_params: Mapping[str, Any], groups: list[dict] | None = None) -> list[dict[str, Any]]:
    """torch-style param groups for ``t_params`` (name -> tensor) from arrayoptim groups by name: the params no
    group names first (the default group), then each group with its overrides; one group when ``groups`` is None."""
    if not groups:
        return [{"params": list(t_params.values())}]
    grouped = {n for g in groups for n in g["params"]}
    return [{"params": [p for n, p in t_params.items() if n not in grouped]}] + [
        {**{k: v for k, v in g.items() if k != "params"}, "params": [t_params[n] for n in g["params"]]}
        for g in groups]


def grad_schedule(np_params: Mapping[str, Any], steps: int, seed: int = 1, scale: float = 1.0,
                  missing: bool = True) -> list[dict[str, Any]]:
    """Per step, a dict of grads (the params' dtype); some params have no grad on some steps (``missing``).

    ``b`` has no grad at step 3 and ``scalar`` none at steps 5 and 6 (1-based).
    """
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        g = {k: (scale * rng.standard_normal(np.shape(v))).astype(np.asarray(v).dtype) for k, v in np_params.items()}
        if missing and t == 2:
            g["b"] = None
        if missing and t in (4, 5):
            g["scalar"] = None
        out.append(g)
    return out
