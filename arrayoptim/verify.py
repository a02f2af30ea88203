"""Parity with the real thing: run torch.optim / timm beside arrayoptim and compare after every step.

This is the one parity harness of the project: the oracle test suites (``tests/test_oracle_*.py``, through the
re-export ``tests/oracles.py``) and ``arrayoptim verify`` both use it.

After each step it compares params **and every state slot** (keys and values), then re-syncs arrayoptim from the
oracle (torch's ``TensorTracker`` idea), so a failure names the first divergent step and slot instead of an
accumulated drift.

The problem always includes a 4-D conv weight, a matrix, a vector, a 0-d param and a non-contiguous (transposed)
param, and steps where some grads are missing.

torch and timm are imported lazily, inside the functions that need them: ``import arrayoptim`` (and
``import arrayoptim.verify``) never imports torch.

The relative difference of an array against the oracle's is

.. math::

    d = \\max_i \\frac{|o_i - r_i|}{\\max(1, \\max_j |r_j|) + |r_i|}

(``o`` ours, ``r`` the oracle's; equal NaNs and equal infinities count as 0, any other NaN as ``inf``), so
``d <= rtol`` is exactly ``numpy.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * max(1, max|r|))``. For
Python numbers it is :math:`|o - r| / \\max(1, |r|)`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import inspect
import math
import numbers
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = [
    "SELECTORS", "torch_default_dtype", "to_py", "hparams_from_torch", "make_params", "grad_schedule", "rel_diff",
    "assert_close", "ParityResult", "OracleError", "run_parity", "check_parity", "OracleSpec", "Skip",
    "oracle_for", "verify_name", "DEFAULT_RTOL", "TimmStateView", "GROUP_COUNTERS",
]

#: torch's implementation selectors (``foreach``, ...): part of ``optimizer.defaults``, no effect on the math.
SELECTORS = {"foreach", "fused", "capturable", "differentiable"}

#: Default tolerance per dtype name (one step, after a re-sync, relative to ``max(1, max|oracle|)``).
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-5}


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
    from . import get_optimizer_info

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


def _is_torch_tensor(v: Any) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def _np(v: Any) -> Any:
    if _is_torch_tensor(v):
        v = v.detach().cpu()
        if str(v.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: widen exactly
            v = v.float()
        return v.numpy().copy()
    return v


# ------------------------------------------------------------------------------------------------ comparison

def rel_diff(ours: Any, theirs: Any) -> tuple[float, str | None]:
    """The relative difference of ``ours`` against the oracle's ``theirs`` (see the module docstring).

    Returns
    -------
    (float, str or None)
        The difference, and a description when the two differ in structure (shape, length, type, value of a
        non-number), in which case the difference is ``inf``.
    """
    theirs = _np(theirs)
    ours = _np(ours)
    if isinstance(theirs, np.ndarray) or isinstance(ours, np.ndarray):
        o, r = np.asarray(ours), np.asarray(theirs)
        if o.shape != r.shape:
            return math.inf, f"shape {o.shape} != oracle {r.shape}"
        if r.size == 0:
            return 0.0, None
        o = o.astype(np.float64) if o.dtype.kind in "biuf" else o
        r = r.astype(np.float64) if r.dtype.kind in "biuf" else r
        finite_r = r[np.isfinite(r)]
        scale = max(1.0, float(np.max(np.abs(finite_r)))) if finite_r.size else 1.0
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(o - r) / (scale + np.abs(r))
        same = (o == r) | (np.isnan(o) & np.isnan(r))
        err = np.where(same, 0.0, np.where(np.isnan(err), np.inf, err))
        return float(np.max(err)), None
    if isinstance(theirs, numbers.Number) and not isinstance(theirs, bool):
        try:
            o = float(ours)
        except (TypeError, ValueError):
            return math.inf, f"{ours!r} != oracle {theirs!r}"
        if o == theirs or (math.isnan(o) and math.isnan(theirs)):
            return 0.0, None
        d = abs(o - theirs) / max(1.0, abs(theirs))
        return (math.inf if math.isnan(d) else d), None
    if isinstance(theirs, (list, tuple)):
        if not isinstance(ours, (list, tuple)) or len(ours) != len(theirs):
            return math.inf, f"{ours!r} != oracle {theirs!r} (length)"
        worst, why = 0.0, None
        for i, (a, b) in enumerate(zip(ours, theirs)):
            d, w = rel_diff(a, b)
            if w is not None and why is None:
                why = f"[{i}]: {w}"
            worst = max(worst, d)
        return worst, why
    if ours == theirs:
        return 0.0, None
    return math.inf, f"{ours!r} != oracle {theirs!r}"


def assert_close(ours: Any, theirs: Any, rtol: float, what: str) -> None:
    """Assert ``rel_diff(ours, theirs) <= rtol``; the message starts with ``what``.

    Raises
    ------
    AssertionError
        With the difference (or the structural mismatch) and the tolerance.
    """
    d, why = rel_diff(ours, theirs)
    if why is not None:
        raise AssertionError(f"{what}: {why}")
    if not d <= rtol:
        raise AssertionError(f"{what}: relative difference {d:.3g} > rtol {rtol:g}{_where_worst(ours, theirs)}")


def _where_worst(ours: Any, theirs: Any) -> str:
    o, r = np.asarray(_np(ours)), np.asarray(_np(theirs))
    if o.shape != r.shape or o.dtype.kind not in "biuf" or r.dtype.kind not in "biuf" or o.size == 0:
        return ""
    with np.errstate(invalid="ignore"):
        diff = np.abs(o.astype(np.float64) - r.astype(np.float64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    i = np.unravel_index(int(np.argmax(diff)), o.shape) if o.ndim else ()
    return f" (at index {tuple(int(k) for k in i)}: ours {o[i]!r}, oracle {r[i]!r})"


# ------------------------------------------------------------------------------------------------ the harness

class OracleError(RuntimeError):
    """The oracle itself could not be built or stepped on the problem (``run_parity(..., wrap_oracle_errors=True)``)."""


@dataclasses.dataclass
class ParityResult:
    """What :func:`run_parity` measured.

    Attributes
    ----------
    name
        The arrayoptim name.
    steps
        Steps compared (stops after the first step with a failure when asked to).
    max_param_diff, max_state_diff
        The largest relative difference over all steps, params / state slots (``inf`` on a structural mismatch).
    failure
        The first failing comparison (step, param, slot, difference), or None.
    rtol
        The tolerance used.
    note
        How the problem was adapted to the oracle (e.g. no missing grads), if at all.
    """

    name: str
    steps: int = 0
    max_param_diff: float = 0.0
    max_state_diff: float = 0.0
    failure: str | None = None
    rtol: float = 1e-10
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.failure is None


def run_parity(
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
    dtype: Any = None,
    stop_on_failure: bool = True,
    wrap_oracle_errors: bool = False,
    on_step: Callable[[int, int], None] | None = None,
    only: Iterable[str] | None = None,
) -> ParityResult:
    """Step the oracle and arrayoptim side by side, comparing params and all state slots after each step.

    Parameters
    ----------
    name
        The arrayoptim name (``lookahead_`` prefix allowed), built with ``ao.create_optimizer(name, groups=groups,
        **ours_kwargs)``.
    make_oracle
        ``make_oracle(param_groups)`` builds the oracle from torch-style groups (``[{'params': [...], **overrides}]``,
        one group when ``groups`` is None). It needs ``step()`` and ``state`` (``{tensor: {slot: value}}``).
    groups
        arrayoptim groups by name (``{'params': [names], ...}``).
    grads
        Per-step grads (default: :func:`grad_schedule` for ``steps`` steps).
    slot_map
        ``slot_map(param_name, oracle_state) -> dict`` renames/adjusts oracle state (documented differences only).
    dtype
        torch dtype of the problem (default ``torch.float64``).
    stop_on_failure
        Stop after the first step with a failing comparison (later steps would compare against re-synced but
        possibly inconsistent state).
    wrap_oracle_errors
        Re-raise exceptions from building or stepping the oracle as :class:`OracleError`.
    on_step
        ``on_step(t, steps)`` after each compared step (progress).
    only
        Restrict the problem to these params of :func:`make_params` (e.g. the matrices, for matrix optimizers).
    """
    import torch

    import arrayoptim as ao

    dtype = torch.float64 if dtype is None else dtype
    res = ParityResult(name=name, rtol=rtol)

    def oracle_call(fn, *args):
        if not wrap_oracle_errors:
            return fn(*args)
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - reported, with its type and message
            raise OracleError(f"{type(e).__name__}: {e}") from e

    with torch_default_dtype(dtype):
        np_params, t_params = make_params(seed, dtype)
        if only is not None:
            only = list(only)
            np_params = {n: np_params[n] for n in only}
            t_params = {n: t_params[n] for n in only}
        names = list(np_params)
        if groups:
            grouped = {n for g in groups for n in g["params"]}
            t_groups = [{"params": [t_params[n] for n in names if n not in grouped]}] + [
                {**{k: v for k, v in g.items() if k != "params"}, "params": [t_params[n] for n in g["params"]]}
                for g in groups]
        else:
            t_groups = [{"params": [t_params[n] for n in names]}]
        oracle = oracle_call(make_oracle, t_groups)
        opt = ao.create_optimizer(name, groups=groups, **ours_kwargs)
        params, state = np_params, opt.init(np_params)
        group_step = getattr(getattr(opt, "base", opt).info, "group_step", False)
        grads = grads or grad_schedule(np_params, steps)
        if only is not None:
            grads = [{n: g.get(n) for n in names} for g in grads]

        def oracle_state(n, p):
            theirs = dict(oracle.state.get(p, {}))
            return slot_map(n, theirs) if slot_map else theirs

        def check(d, why, where, kind):
            if kind == "param":
                res.max_param_diff = max(res.max_param_diff, d)
            else:
                res.max_state_diff = max(res.max_state_diff, d)
            if res.failure is None and (why is not None or not d <= rtol):
                res.failure = f"{where}: {why}" if why else f"{where}: relative difference {d:.3g} > rtol {rtol:g}"

        for t, g in enumerate(grads):
            for n, p in t_params.items():
                p.grad = None if g[n] is None else torch.tensor(g[n], dtype=p.dtype)
            oracle_call(oracle.step)
            params, state = opt.step(params, g, state)
            for n, p in t_params.items():
                where = f"{name} step {t + 1} param {n!r}"
                check(*rel_diff(params[n], p), where, "param")
                theirs = oracle_state(n, p)
                if set(state[n]) != set(theirs):
                    check(math.inf, f"state slots {sorted(state[n])} != {sorted(theirs)}", where, "state")
                    continue
                for k, v in theirs.items():
                    if g[n] is None and (k == "lookahead_step" or (k == "step" and group_step)):
                        continue  # a group counter advanced by the oracle; ours is untouched without a grad
                    check(*rel_diff(state[n][k], v), f"{where} slot {k!r}", "state")
            res.steps = t + 1
            if on_step is not None:
                on_step(t + 1, len(grads))
            if res.failure is not None and stop_on_failure:
                break
            # re-sync from the oracle so the next step's comparison is independent of accumulated rounding
            params = {n: _resync(params[n], p) for n, p in t_params.items()}
            for n, p in t_params.items():
                state[n] = {k: _resync(state[n][k], v) for k, v in oracle_state(n, p).items()}
    return res


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

    Raises
    ------
    AssertionError
        At the first step whose params or state differ beyond ``rtol``, naming the step, param and slot.
    """
    res = run_parity(name, ours_kwargs, make_oracle, steps=steps, rtol=rtol, groups=groups, grads=grads,
                     slot_map=slot_map, seed=seed)
    if res.failure is not None:
        raise AssertionError(res.failure)


def _resync(ours: Any, theirs: Any) -> Any:
    theirs = _np(theirs)
    if isinstance(ours, np.ndarray) and isinstance(theirs, np.ndarray):
        out = np.array(ours, copy=True)
        out[...] = theirs
        return out
    return ours


# ------------------------------------------------------------------------------- oracles derived from the registry

@dataclasses.dataclass(frozen=True)
class Skip:
    """A name that cannot be verified here, and why. ``missing`` names an oracle library that is not installed."""

    reason: str
    missing: str | None = None


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """How to verify one name: the oracle's label, arrayoptim's keywords and the oracle factory."""

    label: str
    ours_kwargs: Mapping[str, Any]
    make_oracle: Callable[[list], Any]
    all_grads: bool = False  # every param gets a grad every step (the oracle counts steps per group)
    note: str = ""


#: counters timm keeps per param group (not per param): shown as the per-param slots arrayoptim keeps
GROUP_COUNTERS = ("step", "lookahead_step")


class TimmStateView:
    """A timm optimizer's state seen as arrayoptim's per-param slots.

    timm counts some steps per param group (``group['step']`` in Adan and LAMB, ``group['lookahead_step']`` in
    Lookahead) where arrayoptim keeps a per-param slot; a group counter is shown in the per-param state of each
    param that has state. ``Lookahead``'s base optimizer state (``_base_optimizer.state``, with
    ``lookahead_slow_buff``) is unwrapped. The two agree whenever every param gets a grad at every step.
    """

    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def step(self) -> None:
        self.opt.step()

    @property
    def uses_group_counters(self) -> bool:
        base = getattr(self.opt, "_base_optimizer", self.opt)
        return any(k in g and any(k not in base.state.get(p, {}) for p in g["params"])
                   for g in base.param_groups for k in GROUP_COUNTERS)

    @property
    def state(self) -> dict:
        base = getattr(self.opt, "_base_optimizer", self.opt)
        out = {}
        for group in base.param_groups:
            for p in group["params"]:
                st = dict(base.state.get(p, {}))
                if st or "lookahead_step" in group:
                    st.update({k: group[k] for k in GROUP_COUNTERS if k in group and k not in st})
                out[p] = st
        return out


def _probe_group_counters(make: Callable[[list], TimmStateView]) -> bool:
    """Whether the oracle counts steps per param group (one step on a tiny problem, a param without a grad)."""
    import torch

    try:
        with torch_default_dtype(torch.float64):
            ps = [torch.ones(3, requires_grad=True), torch.ones(2, 2, requires_grad=True)]
            view = make([{"params": ps}])
            ps[0].grad = torch.full((3,), 0.5)
            view.step()
            return view.uses_group_counters
    except Exception:  # noqa: BLE001 - the real run reports the oracle's error
        return False


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _timm_names() -> set[str]:
    import timm.optim

    return set(timm.optim.list_optimizers())


def oracle_for(name: str, against: str | None = None, *, lr: float | None = None,
               weight_decay: float | None = None) -> OracleSpec | Skip:
    """The oracle for a registry name, derived from its record's ``anchor`` (no per-name table).

    * ``against='timm'`` (the default for ``timm.optim.*`` anchors and ``lookahead_`` names): the name must be in
      timm's registry; both sides are built from the same keywords (``timm.optim.create_optimizer_v2(params,
      opt=name, lr=..., weight_decay=...)`` beside ``ao.create_optimizer(name, lr=..., weight_decay=...)``), so
      timm's registry defaults are verified too.
    * ``against='torch'`` (the default for ``torch.optim.*`` anchors): the anchor class is built with arrayoptim's
      complete hyperparameter record (registry defaults applied), so every field must be a constructor argument.

    Parameters
    ----------
    lr, weight_decay
        Passed to both sides where the optimizer has them (None: each side's default).

    Returns
    -------
    OracleSpec or Skip
    """
    import arrayoptim as ao
    from ._registry import LOOKAHEAD_PREFIX

    lookahead = name.startswith(LOOKAHEAD_PREFIX)
    base = name[len(LOOKAHEAD_PREFIX):] if lookahead else name
    info = ao.get_optimizer_info(base)
    lib, _, cls_name = info.anchor.rpartition(".")
    anchor_lib = "timm" if lookahead or lib.startswith("timm") else "torch" if lib.startswith("torch") else lib
    against = against or anchor_lib
    if against not in ("torch", "timm"):
        raise ValueError(f"against must be 'torch' or 'timm', got against={against!r}")
    if info.second_order:
        return Skip("needs Hessian-vector products (backward with create_graph): not drivable by a grad stream")
    if info.step_fn is not None and {"seed", "draws"} & set(inspect.signature(info.step_fn).parameters):
        return Skip("needs its random draws explicitly (seed= or draws=); its oracle test replays timm's draws")
    fields = set(info.hyperparams.field_names())
    kw = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None and k in fields}
    for mod in ("torch", "timm") if against == "timm" else ("torch",):
        if not _installed(mod):
            return Skip(f"oracle not installed: {mod} (pip install {mod})", missing=mod)

    if against == "timm":
        if base not in _timm_names():
            return Skip(f"not in timm's registry (anchor {info.anchor}); try --against torch")
        import timm.optim

        def make(groups, _name=name, _kw=dict(kw)):
            return TimmStateView(timm.optim.create_optimizer_v2(groups, opt=_name, **_kw))

        group_counted = _probe_group_counters(make)
        note = "every param gets a grad every step (timm counts steps per param group)" if group_counted else ""
        return OracleSpec(f"timm:{name}", kw, make, all_grads=group_counted, note=note)

    if lookahead:
        return Skip("torch has no Lookahead; use --against timm")
    if anchor_lib != "torch":
        return Skip(f"no torch oracle (anchor {info.anchor}); use --against timm")
    import torch.optim

    cls = getattr(torch.optim, cls_name, None)
    if cls is None:
        return Skip(f"{info.anchor} does not exist in this torch ({torch.__version__})")
    record = ao.create_optimizer(name, **kw).hyperparams.as_dict()
    accepted = set(inspect.signature(cls).parameters)
    args = {k: v for k, v in record.items() if k in accepted}
    own = {f.name: f.default for f in dataclasses.fields(info.hyperparams)}
    # arrayoptim-only fields at their record default reproduce the anchor; fields the class fixes itself (AdamW's
    # decoupled_weight_decay=True) must equal its defaults
    fixed = {k: v for k, v in record.items() if k not in accepted and not (k in own and own[k] == v)}
    if fixed:
        try:
            probe = cls([torch.zeros(2, 2, requires_grad=True)], **args).defaults
        except Exception as e:  # noqa: BLE001 - reported
            return Skip(f"{info.anchor} rejects the record: {type(e).__name__}: {e}")
        differ = sorted(k for k, v in fixed.items() if k not in probe or to_py(probe[k]) != v)
        if differ:
            return Skip(f"record fields {differ} are neither {info.anchor} arguments nor equal to its defaults")
    return OracleSpec(info.anchor, record, lambda groups, _cls=cls, _args=args: _cls(groups, **_args))


def verify_name(name: str, against: str | None = None, *, steps: int = 12, dtype: str = "float64",
                rtol: float | None = None, lr: float | None = None, weight_decay: float | None = None,
                on_step: Callable[[int, int], None] | None = None) -> tuple[str, ParityResult | Skip | Exception]:
    """Verify one name against its oracle on the standard problem.

    Returns
    -------
    (str, ParityResult or Skip or Exception)
        The oracle's label and the outcome: a :class:`ParityResult`, a :class:`Skip` (nothing to compare: oracle not
        installed, or the oracle cannot run a plain grad stream, or the step needs inputs beyond grads), or the
        exception arrayoptim raised (an error: counts as a failure).
    """
    if dtype not in DEFAULT_RTOL:
        raise ValueError(f"dtype must be one of {sorted(DEFAULT_RTOL)}, got dtype={dtype!r}")
    spec = oracle_for(name, against, lr=lr, weight_decay=weight_decay)
    if isinstance(spec, Skip):
        return "-", spec
    import torch

    t_dtype = getattr(torch, dtype)
    np_params, _ = make_params(0, t_dtype)
    grads = grad_schedule(np_params, steps, missing=not spec.all_grads)
    import arrayoptim as ao

    documented = ao.get_optimizer_info(name.removeprefix("lookahead_")).oracle_rtol
    if rtol is None:
        rtol = DEFAULT_RTOL[dtype] if documented is None else max(DEFAULT_RTOL[dtype], documented)
    run = dict(steps=steps, grads=grads, dtype=t_dtype, rtol=rtol, wrap_oracle_errors=True, on_step=on_step)
    note = spec.note
    if documented is not None:
        note = "; ".join(filter(None, [note, f"documented gap to the anchor: rtol {rtol:g}"]))
    try:
        try:
            res = run_parity(name, spec.ours_kwargs, spec.make_oracle, **run)
        except OracleError as first:
            # matrix-only optimizers (Muon): the same problem restricted to its 2-D params
            matrices = [n for n, v in np_params.items() if np.ndim(v) == 2]
            try:
                res = run_parity(name, spec.ours_kwargs, spec.make_oracle, only=matrices, **run)
            except OracleError:
                raise first from None
            note = "; ".join(filter(None, [note, f"2-D params only (the oracle: {first})"]))
    except OracleError as e:
        return spec.label, Skip(f"the oracle cannot run a plain grad stream: {e}")
    except TypeError as e:
        if "step()" in str(e) and ("keyword" in str(e) or "argument" in str(e)):
            return spec.label, Skip(f"step needs inputs beyond grads: {e}")
        return spec.label, e
    except Exception as e:  # noqa: BLE001 - an arrayoptim error is a failed verification, reported
        return spec.label, e
    res.note = note
    return spec.label, res
