"""Parity with the real thing: run torch.optim / timm beside arrayoptim and compare after every step.

This is the one parity harness of the project: the oracle test suites (``tests/test_oracle_*.py``, through the
re-export ``tests/oracles.py``) and ``arrayoptim verify`` both use it.

After each step it compares params **and every state slot** (keys and values), then re-syncs arrayoptim from the
oracle (torch's ``TensorTracker`` idea), so a failure names the first divergent step and slot instead of an
accumulated drift.

The problem always includes a 4-D conv weight, a matrix, a vector, a 0-d param and a non-contiguous (transposed)
param, and steps where some grads are missing.

Optimizers whose step takes more than grads are driven by a :class:`Driver`, chosen by the step's keyword
(:data:`STEP_INPUT_DRIVERS`): ``closure=`` (torch's LBFGS: both sides call a closure of one seeded objective),
``grad_mask=`` (torch's SparseAdam: sparse COO grads for torch, dense grads and a mask for arrayoptim),
``hessian=`` (timm's Adahessian: grads with a graph for timm, timm's own Hutchinson estimate for arrayoptim) and
``draws=`` (timm's Kron: timm's random streams cloned and replayed).

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
    "SELECTORS", "torch_default_dtype", "to_py", "hparams_from_torch", "make_params", "torch_groups", "grad_schedule", "rel_diff",
    "assert_close", "ParityResult", "OracleError", "run_parity", "check_parity", "OracleSpec", "Skip",
    "oracle_for", "verify_name", "DEFAULT_RTOL", "TimmStateView", "GROUP_COUNTERS", "Driver", "ClosureDriver",
    "SparseGradDriver", "HutchinsonDriver", "ReplayedDrawsDriver", "STEP_INPUT_DRIVERS",
]

#: torch's implementation selectors (``foreach``, ...): part of ``optimizer.defaults``, no effect on the math.
SELECTORS = {"foreach", "fused", "capturable", "differentiable"}

#: Default tolerance per dtype name (one step, after a re-sync, relative to ``max(1, max|oracle|)``).
DEFAULT_RTOL = {"float64": 1e-10, "float32": 1e-5}
#: Documented gaps to an anchor run with its own internals, per registry name (test metadata, kept with the
#: oracles): ``verify`` compares within the larger of this and the dtype's default, and says so.
DOCUMENTED_GAPS = {
    "torchmuon": 1e-3,  # torch's Newton-Schulz runs in bfloat16 (measured 1e-5..3e-4 per step)
    "radamlegacy": 1e-6,  # timm computes RAdamLegacy in float32 for every param dtype (~5e-8)
}


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
    driver: Driver | None = None,
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
    driver
        How each step reaches both sides when the optimizer needs more than a grad stream (a :class:`Driver`:
        a closure, sparse grads, a Hessian estimate, replayed random draws). None: plain grads.
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

    with contextlib.ExitStack() as stack, torch_default_dtype(dtype):
        np_params, t_params = make_params(seed, dtype)
        if only is not None:
            only = list(only)
            np_params = {n: np_params[n] for n in only}
            t_params = {n: t_params[n] for n in only}
        names = list(np_params)
        t_groups = torch_groups(t_params, groups)
        oracle = oracle_call(make_oracle, t_groups)
        opt = ao.create_optimizer(name, groups=groups, **ours_kwargs)
        params, state = np_params, opt.init(np_params)
        grads = grads or grad_schedule(np_params, steps)
        if only is not None:
            grads = [{n: g.get(n) for n in names} for g in grads]

        if driver is not None:
            stack.callback(driver.close)
            driver.bind(oracle, opt, t_params)
            if slot_map is None:
                slot_map = driver.slot_map
        unused = driver.unused_without_grad if driver is not None else ()

        def oracle_state(n, p):
            theirs = dict(oracle.state.get(p, {}))
            theirs = slot_map(n, theirs) if slot_map else theirs
            if STEPPED in state[n] and STEPPED not in theirs:  # whether the oracle has state for the param
                theirs[STEPPED] = any(k not in GROUP_COUNTERS for k in theirs)
            return theirs

        def check(d, why, where, kind):
            if kind == "param":
                res.max_param_diff = max(res.max_param_diff, d)
            else:
                res.max_state_diff = max(res.max_state_diff, d)
            if res.failure is None and (why is not None or not d <= rtol):
                res.failure = f"{where}: {why}" if why else f"{where}: relative difference {d:.3g} > rtol {rtol:g}"

        for t, g in enumerate(grads):
            if driver is None:
                for n, p in t_params.items():
                    p.grad = None if g[n] is None else torch.tensor(g[n], dtype=p.dtype)
                oracle_call(oracle.step)
                params, state = opt.step(params, g, state)
            else:
                g = oracle_call(driver.feed_oracle, t, g)
                extra = driver.ours_inputs(t, g, params, state)  # before the oracle steps: it may clone its RNGs
                oracle_call(driver.oracle_step)
                params, state = opt.step(params, g, state, **extra)
                for ours_v, theirs_v, what in driver.extra_pairs():
                    check(*rel_diff(ours_v, theirs_v), f"{name} step {t + 1} {what}", "state")
            for n, p in t_params.items():
                where = f"{name} step {t + 1} param {n!r}"
                check(*rel_diff(params[n], p), where, "param")
                theirs = oracle_state(n, p)
                if set(state[n]) != set(theirs):
                    check(math.inf, f"state slots {sorted(state[n])} != {sorted(theirs)}", where, "state")
                    continue
                for k, v in theirs.items():
                    if g[n] is None and k in unused:
                        continue  # the driver documents it: changed by the oracle without a grad, unread until renewed
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
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(ours) == len(theirs):
        return type(ours)(_resync(o, r) for o, r in zip(ours, theirs))  # Kron's list of factors Q
    theirs = _np(theirs)
    if isinstance(ours, np.ndarray) and isinstance(theirs, np.ndarray):
        out = np.array(ours, copy=True)
        out[...] = theirs
        return out
    return ours


# ------------------------------------------------------------------------------------- step inputs beyond grads

class Driver:
    """How one step reaches both sides when the optimizer needs more than a grad stream.

    The plain harness sets each oracle param's ``.grad``, calls ``oracle.step()`` and
    ``opt.step(params, grads, state)``. A driver replaces that for one step input of arrayoptim's step
    (``closure=``, ``grad_mask=``, ``hessian=``, ``draws=``; see :data:`STEP_INPUT_DRIVERS`): it feeds the oracle
    what its anchor takes instead (a closure, sparse grads, grads with a graph, its own random streams) and
    arrayoptim the same information as an explicit input. Per step :func:`run_parity` calls
    :meth:`feed_oracle`, :meth:`ours_inputs` (before the oracle steps, so it can clone the oracle's random
    streams), :meth:`oracle_step`, ``opt.step(params, grads, state, **inputs)``, then compares params, state
    (through :meth:`slot_map`) and :meth:`extra_pairs`.

    Attributes
    ----------
    note
        How the problem was adapted (the note column of ``arrayoptim verify``).
    unused_without_grad
        Slots the oracle changes on a param without a grad where arrayoptim keeps them; they are not read until
        they are renewed, so they are not compared at such a step (they are still re-synced).
    """

    note = ""
    unused_without_grad: tuple[str, ...] = ()

    def bind(self, oracle: Any, opt: Any, t_params: dict) -> None:
        """Called once per run, after both sides are built (``t_params``: the oracle's params by name)."""
        self.oracle, self.opt, self.t_params = oracle, opt, t_params

    @property
    def raw(self) -> Any:
        """The oracle's torch optimizer (a :class:`TimmStateView` and timm's Lookahead unwrapped)."""
        opt = getattr(self.oracle, "opt", self.oracle)
        return getattr(opt, "_base_optimizer", opt)

    def feed_oracle(self, t: int, grads: dict) -> dict:
        """Give the oracle step ``t``'s input; return the grads arrayoptim gets (default: ``grads``)."""
        import torch

        for n, p in self.t_params.items():
            p.grad = None if grads[n] is None else torch.tensor(grads[n], dtype=p.dtype)
        return grads

    def ours_inputs(self, t: int, grads: dict, params: dict, state: dict) -> dict:
        """arrayoptim's extra step keywords for step ``t``."""
        return {}

    def oracle_step(self) -> None:
        self.oracle.step()

    def close(self) -> None:
        """Called once when the run ends (also on error): undo what :meth:`bind` changed outside the run."""

    def slot_map(self, name: str, theirs: dict) -> dict:
        """The oracle's state of one param in arrayoptim's form (documented differences only)."""
        return theirs

    def rtol_for(self, dtype: str) -> float | None:
        """A tolerance this driver documents for runs in ``dtype`` (None: the dtype's default)."""
        return None

    def note_for(self, dtype: str) -> str:
        """The note column for a run in ``dtype``."""
        gap = self.rtol_for(dtype)
        return self.note if gap is None else f"{self.note}; documented gap in {dtype}: rtol {gap:g}"

    def extra_pairs(self) -> list[tuple[Any, Any, str]]:
        """``(ours, oracle's, what)`` compared after the step besides params and state (counted as state)."""
        return []

    def _name_of(self) -> dict[int, str]:
        return {id(p): n for n, p in self.t_params.items()}


def _torch_dtype_of(a: Any) -> Any:
    import torch

    return torch.from_numpy(np.empty(0, dtype=np.asarray(a).dtype)).dtype


class ClosureDriver(Driver):
    """``closure=``: torch's LBFGS re-evaluates the objective through a closure, several times per step.

    The objective is smooth and seeded: :math:`\\sum a (x - c)^2 / 2 + x^4 / 10` over the params with a grad at
    this step (curvatures :math:`a` in :math:`10^{[-1, 1]}`); a param whose scheduled grad is missing is left out
    of it for that step (torch's closure leaves its ``.grad`` None and LBFGS gathers zeros; arrayoptim's closure
    returns None for it). Both closures evaluate it with torch's arithmetic on contiguous tensors, so equal points
    give bit-identical losses and grads (the line search would amplify an ulp of difference in the *objective*);
    the grads are written out (no autograd) and the oracle's closure stores them contiguous (torch's LBFGS
    ``view``s each grad: the transposed param). The
    losses of every closure call of the step are compared (their number too). torch keeps all state as lists
    under the first param; it is shown in arrayoptim's flat form (history rows padded with zeros to
    ``history_size``, ``al``'s unfilled entries 0).

    In float32 the documented gap :data:`LBFGS_FLOAT32_RTOL` applies (see ``LBFGSHyperparams``' Warnings: the
    line-search scalars are doubles here, float32 tensors in torch; the two-loop's dot products cancel, so their
    summation order shows): measured on this problem 1.9e-4 in state (``d``, ``al``), 6.9e-7 in params. In
    float64 the largest difference is ``al``, the two-loop's scratch buffer (3.8e-13: summation order).
    """

    note = "closure-driven: a seeded smooth objective (quadratic + quartic); every closure call's loss compared"

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        rng = np.random.default_rng(11)
        self.coef = {n: (torch.tensor(10.0 ** rng.uniform(-1, 1, tuple(p.shape)), dtype=p.dtype),
                         torch.tensor(rng.standard_normal(tuple(p.shape)), dtype=p.dtype))
                     for n, p in t_params.items()}
        self.history = int(self.raw.param_groups[0]["history_size"])
        self.live: list[str] = []
        self.ours_losses: list[float] = []
        self.theirs_losses: list[float] = []

    def _loss_and_grads(self, values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The objective and its gradient over ``values`` (torch tensors), with torch's arithmetic, no autograd."""
        import torch

        total = torch.zeros((), dtype=next(iter(self.coef.values()))[0].dtype)
        grads = {}
        with torch.no_grad():
            for n, x in values.items():
                a, c = self.coef[n]
                x = x.detach().contiguous()
                total = total + torch.sum(a * (x - c) ** 2 / 2 + x ** 4 / 10)
                grads[n] = a * (x - c) + 0.4 * x ** 3
        return total, grads

    def feed_oracle(self, t, grads):
        self.live = [n for n in self.t_params if grads[n] is not None]
        self.ours_losses, self.theirs_losses = [], []
        # the grads argument only selects the params that take part (all: torch's LBFGS moves every param)
        return {n: np.zeros_like(_np(p)) for n, p in self.t_params.items()}

    def ours_inputs(self, t, grads, params, state):
        import torch

        def closure(point):
            loss, g = self._loss_and_grads({n: torch.from_numpy(np.asarray(point[n])) for n in self.live})
            self.ours_losses.append(float(loss))
            return float(loss), {n: (g[n].numpy() if n in g else None) for n in point}

        return {"closure": closure}

    def oracle_step(self):
        raw = self.raw

        def closure():
            raw.zero_grad()
            loss, g = self._loss_and_grads({n: self.t_params[n] for n in self.live})
            for n, gn in g.items():
                self.t_params[n].grad = gn  # contiguous: torch's LBFGS views each grad flat
            self.theirs_losses.append(float(loss))
            return loss

        raw.step(closure)

    def slot_map(self, name, theirs):
        return lbfgs_state_as_arrays(theirs, self.history)

    def extra_pairs(self):
        return [(self.ours_losses, self.theirs_losses, "closure losses")]

    def rtol_for(self, dtype):
        return LBFGS_FLOAT32_RTOL if dtype == "float32" else None


def lbfgs_state_as_arrays(theirs: Mapping[str, Any], history_size: int) -> dict[str, Any]:
    """torch LBFGS's ``state[first param]`` (history lists, ``None`` in ``al``, Python numbers) in arrayoptim's
    fixed-shape form: ``(history_size, n)`` / ``(history_size,)`` arrays with zero rows past the history."""
    if not theirs:
        return dict(theirs)
    h, out = history_size, {}
    n = int(theirs["d"].numel()) if "d" in theirs else 0
    for k, v in theirs.items():
        if k in ("old_dirs", "old_stps"):
            out[k] = np.stack([_np(x) for x in v] + [np.zeros(n, dtype=_np(theirs["d"]).dtype)] * (h - len(v)))
        elif k == "ro":
            out[k] = np.array([float(x) for x in v] + [0.0] * (h - len(v)))
        elif k == "al":
            out[k] = np.array([0.0 if x is None else float(x) for x in v])
        elif k in ("t", "H_diag", "prev_loss"):
            out[k] = np.array(float(v))
        else:
            out[k] = v
    return out


#: LBFGS against torch in float32: scalars in double here, float32 tensors in torch (see ClosureDriver)
LBFGS_FLOAT32_RTOL = 1e-3


class SparseGradDriver(Driver):
    """``grad_mask=``: torch's SparseAdam takes sparse COO grads only.

    Each step's grad keeps a seeded subset of its entries (whole rows of a 2-D param, as an embedding's grad;
    single entries otherwise); the oracle gets it as a coalesced COO tensor, arrayoptim the dense grad (zeros
    elsewhere) and ``grad_mask``. The first present entry of each param with an entry holds an explicit 0
    (present by layout, not by value), and every fourth step the smallest param with a grad has a sparse grad with
    no entry at all (torch still counts its step).
    """

    note = "sparse COO grads (seeded, an explicitly stored 0, an empty one) vs dense grads + grad_mask"

    def bind(self, oracle, opt, t_params):
        super().bind(oracle, opt, t_params)
        self.rng = np.random.default_rng(3)
        self.masks: dict[str, Any] = {}

    def feed_oracle(self, t, grads):
        import torch

        self.masks, dense = {}, {}
        live = [n for n in self.t_params if grads[n] is not None]
        empty = min(live, key=lambda n: np.size(grads[n])) if live and t % 4 == 3 else None
        for n, p in self.t_params.items():
            g = grads[n]
            if g is None:
                p.grad, dense[n] = None, None
                continue
            g = np.array(g, copy=True, order="C")
            if g.ndim == 2:
                m = np.zeros(g.shape, bool)
                m[self.rng.random(g.shape[0]) < 0.5] = True
            else:
                m = np.asarray(self.rng.random(g.shape) < 0.5)
            if n == empty:
                m[...] = False
            if m.any():
                g.reshape(-1)[int(np.flatnonzero(m.reshape(-1))[0])] = 0.0  # an explicitly stored zero
            g = np.where(m, g, np.zeros((), g.dtype))
            idx = np.stack(np.nonzero(m)) if g.ndim else np.zeros((0, int(m)), dtype=np.int64)
            vals = g[m] if g.ndim else g.reshape(1)[: int(m)]
            p.grad = torch.sparse_coo_tensor(torch.tensor(idx, dtype=torch.int64), torch.tensor(vals, dtype=p.dtype),
                                             tuple(p.shape), check_invariants=True)
            self.masks[n], dense[n] = m, g
        return dense

    def ours_inputs(self, t, grads, params, state):
        return {"grad_mask": self.masks}


class HutchinsonDriver(Driver):
    """``hessian=``: timm's Adahessian estimates the Hessian diagonal itself, :math:`z \\odot (H z)` with
    Rademacher :math:`z` from its own ``torch.Generator``, by double backward through grads made with
    ``create_graph=True``.

    The loss is seeded and has curvature across params: :math:`L(x) = a^\\top x + x^\\top M x / 2 + \\sum x^4 / 100`
    over all params flattened together (:math:`M` positive definite, diagonally dominant). The grads are
    :math:`\\nabla L` at the current point (a param whose scheduled grad is missing gets none). The estimate is
    made for the params arrayoptim says are due (:func:`arrayoptim.optimizers.adahessian.hessian_due`), in timm's
    param order, with a clone of timm's generator, and passed as ``hessian=``; a different due set or order on
    either side draws differently and fails. timm zeroes its stored estimate (``p.hess``) of a param without a grad
    where arrayoptim keeps it; neither reads it before renewing it, so ``hess`` is not compared at such a step.
    """

    note = "grads and Hessian estimate of a seeded coupled loss (quadratic + quartic), drawn with timm's generator"
    unused_without_grad = ("hess",)

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        dtype = next(iter(t_params.values())).dtype
        size = sum(p.numel() for p in t_params.values())
        rng = np.random.default_rng(5)
        B = rng.standard_normal((size, size)) / size ** 0.5
        self.a = torch.tensor(rng.standard_normal(size), dtype=dtype)
        self.M = torch.tensor(4.0 * np.eye(size) + 0.25 * (B + B.T), dtype=dtype)

    def _loss(self) -> Any:
        import torch

        x = torch.cat([p.reshape(-1) for p in self.t_params.values()])
        return self.a @ x + 0.5 * x @ (self.M @ x) + (x ** 4).sum() / 100

    def feed_oracle(self, t, grads):
        import torch

        live = [n for n in self.t_params if grads[n] is not None]
        gs = torch.autograd.grad(self._loss(), [self.t_params[n] for n in live], create_graph=True)
        for p in self.t_params.values():
            p.grad = None
        for n, g in zip(live, gs):
            self.t_params[n].grad = g
        return {n: (_np(self.t_params[n].grad) if n in live else None) for n in self.t_params}

    def ours_inputs(self, t, grads, params, state):
        import torch

        from .optimizers.adahessian import hessian_due

        raw, name_of = self.raw, self._name_of()
        live = [n for n in self.t_params if grads[n] is not None]
        wanted = set(hessian_due(self.opt, state, live))
        due = [name_of[id(p)] for p in raw.get_params() if name_of.get(id(p)) in wanted]
        if not due:
            return {}
        gen = torch.Generator().set_state(raw.generator.get_state())
        n_samples = int(self.opt.hyperparams.n_samples)
        est: dict[str, Any] = {}
        ps = [self.t_params[n] for n in due]
        for _ in range(n_samples):
            zs = [torch.randint(0, 2, tuple(p.shape), generator=gen) * 2.0 - 1.0 for p in ps]
            hzs = torch.autograd.grad([p.grad for p in ps], ps, grad_outputs=zs, retain_graph=True)
            for n, z, hz in zip(due, zs, hzs):
                term = _np(hz * z / n_samples)
                est[n] = term if n not in est else est[n] + term
        return {"hessian": est}

    def slot_map(self, name, theirs):
        import torch

        hess = getattr(self.t_params[name], "hess", None)
        if isinstance(hess, torch.Tensor):
            theirs["hess"] = hess
        return theirs


def _solve_upper_right(X: Any, A: Any) -> Any:
    """``X @ inv(A)`` for upper-triangular ``A``, in the inputs' dtype (timm's Kron casts to float32)."""
    import torch

    flat = X.reshape(-1, X.shape[-1])
    return torch.linalg.solve_triangular(A, flat, upper=True, left=False).reshape(X.shape)


class ReplayedDrawsDriver(Driver):
    """``draws=``: timm's Kron draws from its own ``random.Random`` (balancing, stochastic weight decay and, with
    ``deterministic=True``, the seeds of a torch generator per param) and from torch's global RNG (the probe
    vectors ``V``).

    Before each step both streams are cloned (the Python RNG's state; torch's global RNG state, restored after
    drawing) and replayed in timm's param order through :func:`arrayoptim.optimizers.kron.kron_draws` into
    ``draws=``. timm solves its triangular systems in float32 whatever the dtype; during the oracle's step its
    ``_solve_triangular_right`` is swapped for the same solve in the inputs' dtype (restored after the step), so
    float64 is compared at 1e-10. If this timm has no such function the step runs as it is and the documented gap
    :data:`KRON_FLOAT32_SOLVE_RTOL` is the tolerance. The oracle's ``torch.compile``'d helpers are replaced on this
    instance by the plain functions they compile (the same math, no compilation time).
    """

    def __init__(self) -> None:
        import timm.optim.kron as tk

        self.tk = tk
        self.patch = callable(getattr(tk, "_solve_triangular_right", None))

    @property
    def note(self) -> str:  # type: ignore[override]
        solve = "run in the param dtype" if self.patch else "kept (no _solve_triangular_right in this timm)"
        return f"timm's draws replayed into draws=; timm's float32 triangular solve {solve}"

    def rtol_for(self, dtype):
        return None if self.patch else KRON_FLOAT32_SOLVE_RTOL

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        # torch's global RNG (timm's V when not deterministic) from a fixed seed: the same draws on every run
        self._saved_rng = torch.get_rng_state()
        torch.default_generator.manual_seed(1337)
        raw = self.raw
        for fn in ("_calc_A_and_conjB", "_q_terms", "_precond_grad", "_balance_Q"):
            plain = getattr(self.tk, fn, None)
            if fn in vars(raw) and callable(plain):
                setattr(raw, fn, plain)

    def ours_inputs(self, t, grads, params, state):
        import random

        import torch

        from .optimizers.kron import kron_draws

        raw, name_of = self.raw, self._name_of()
        order = [name_of[id(p)] for g in raw.param_groups for p in g["params"] if id(p) in name_of]
        rng = random.Random()
        rng.setstate(raw.rng.getstate())
        precond = getattr(self.opt.hyperparams, "precond_dtype", None)

        def dtype_of(p):
            return getattr(torch, precond) if precond else _torch_dtype_of(p)

        if raw.deterministic:
            def normal(shape, p):
                gen = torch.Generator().manual_seed(rng.randint(0, 2 ** 31))
                return torch.randn(tuple(shape), generator=gen, dtype=dtype_of(p)).numpy()

            return {"draws": kron_draws(self.opt, params, grads, state, uniform=rng.random, normal=normal,
                                        order=order)}
        saved = torch.get_rng_state()

        def normal(shape, p):
            return torch.randn(tuple(shape), dtype=dtype_of(p)).numpy()

        try:
            return {"draws": kron_draws(self.opt, params, grads, state, uniform=rng.random, normal=normal,
                                        order=order)}
        finally:
            torch.set_rng_state(saved)

    def close(self):
        import torch

        if getattr(self, "_saved_rng", None) is not None:
            torch.set_rng_state(self._saved_rng)
            self._saved_rng = None

    def oracle_step(self):
        if not self.patch:
            self.oracle.step()
            return
        tk, orig = self.tk, self.tk._solve_triangular_right
        tk._solve_triangular_right = _solve_upper_right
        try:
            self.oracle.step()
        finally:
            tk._solve_triangular_right = orig


#: timm's Kron solves in float32 whatever the dtype: the gap arrayoptim verify allows when it cannot run that solve
#: in the param dtype (measured against timm's float32 solve on the verify problem, float64, 12 steps, the same
#: draws: 7.8e-9 in state, 5.8e-10 in params)
KRON_FLOAT32_SOLVE_RTOL = 1e-6

#: arrayoptim step keywords (beyond grads) -> the driver that feeds them and the oracle
STEP_INPUT_DRIVERS: dict[str, type[Driver]] = {
    "closure": ClosureDriver,
    "grad_mask": SparseGradDriver,
    "hessian": HutchinsonDriver,
    "draws": ReplayedDrawsDriver,
}


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
    note: str = ""
    driver: Callable[[], Driver] | None = None  # the step needs inputs beyond grads: how both sides get them


#: counters timm keeps per param group (not per param): shown as the per-param slots arrayoptim keeps
GROUP_COUNTERS = ("step", "lookahead_step")
#: a kernel's "has this param had a grad" slot (Adan): the anchor has state for the param exactly then
STEPPED = "stepped"


class TimmStateView:
    """A timm optimizer's state seen as arrayoptim's per-param slots.

    timm counts some steps per param group (``group['step']`` in Adan and LAMB, ``group['lookahead_step']`` in
    Lookahead) where arrayoptim keeps the group's count in every param's slot (advanced with or without a grad);
    a group counter is shown in the per-param state of each param that has state. ``Lookahead``'s base optimizer
    state (``_base_optimizer.state``, with ``lookahead_slow_buff``) is unwrapped.
    """

    def __init__(self, opt: Any) -> None:
        self.opt = opt

    def step(self) -> None:
        self.opt.step()

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
    * A step that takes an input of :data:`STEP_INPUT_DRIVERS` (``closure``, ``grad_mask``, ``hessian``,
      ``draws``) gets that driver (``OracleSpec.driver``); ``lookahead_`` over such a name is skipped.

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
    step_inputs = set(info.step_keywords)
    driver = next((cls for k, cls in STEP_INPUT_DRIVERS.items() if k in step_inputs), None)
    if driver is not None and lookahead:
        return Skip(f"its step takes {sorted(k for k in STEP_INPUT_DRIVERS if k in step_inputs)} beyond grads: "
                    f"verified without the lookahead_ wrapper ({base})")
    if driver is None and info.second_order:
        return Skip("needs Hessian-vector products (backward with create_graph): not drivable by a grad stream")
    if driver is None and {"seed", "draws"} & step_inputs:
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

        if driver is not None:  # the driver feeds the oracle itself (no plain-grad probe)
            return OracleSpec(f"timm:{name}", kw, make, driver=driver)
        return OracleSpec(f"timm:{name}", kw, make)

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
    return OracleSpec(info.anchor, record, lambda groups, _cls=cls, _args=args: _cls(groups, **_args), driver=driver)


def verify_name(name: str, against: str | None = None, *, steps: int = 12, dtype: str = "float64",
                rtol: float | None = None, lr: float | None = None, weight_decay: float | None = None,
                on_step: Callable[[int, int], None] | None = None) -> tuple[str, ParityResult | Skip | Exception]:
    """Verify one name against its oracle on the standard problem.

    Returns
    -------
    (str, ParityResult or Skip or Exception)
        The oracle's label and the outcome: a :class:`ParityResult`, a :class:`Skip` (nothing to compare: oracle not
        installed, or the oracle cannot run a plain grad stream, or the step needs inputs beyond grads that no
        driver provides), or the exception arrayoptim raised (an error: counts as a failure). A driver's documented
        gap for ``dtype`` (:meth:`Driver.rtol_for`) widens the default tolerance, and the note says so.
    """
    if dtype not in DEFAULT_RTOL:
        raise ValueError(f"dtype must be one of {sorted(DEFAULT_RTOL)}, got dtype={dtype!r}")
    spec = oracle_for(name, against, lr=lr, weight_decay=weight_decay)
    if isinstance(spec, Skip):
        return "-", spec
    import torch

    t_dtype = getattr(torch, dtype)
    np_params, _ = make_params(0, t_dtype)
    grads = grad_schedule(np_params, steps)
    import arrayoptim as ao

    documented = DOCUMENTED_GAPS.get(name.removeprefix("lookahead_"))
    try:
        driver = spec.driver() if spec.driver is not None else None
    except Exception as e:  # noqa: BLE001 - the oracle's module could not be prepared: reported
        return spec.label, Skip(f"the oracle cannot be driven here: {type(e).__name__}: {e}")
    note = "; ".join(filter(None, [spec.note, driver.note_for(dtype) if driver is not None else ""]))
    gap = driver.rtol_for(dtype) if driver is not None else None
    if gap is not None and rtol is None:
        rtol = max(DEFAULT_RTOL[dtype], gap)
    if rtol is None:
        rtol = DEFAULT_RTOL[dtype] if documented is None else max(DEFAULT_RTOL[dtype], documented)
    run = dict(steps=steps, grads=grads, dtype=t_dtype, rtol=rtol, wrap_oracle_errors=True, on_step=on_step,
               driver=driver)
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
