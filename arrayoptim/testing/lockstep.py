"""The lockstep runner: arrayoptim and the oracle step side by side, every param and state slot compared after
each step, then re-synced from the oracle so a failure names the first divergent step and slot."""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .compare import to_numpy, rel_diff
from .drivers import Driver
from .problem import grad_schedule, make_params, torch_default_dtype, torch_groups


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
            params = {n: resync(params[n], p) for n, p in t_params.items()}
            for n, p in t_params.items():
                state[n] = {k: resync(state[n][k], v) for k, v in oracle_state(n, p).items()}
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


def resync(ours: Any, theirs: Any) -> Any:
    """``ours`` with the oracle's values (a new array of our dtype; lists item by item; other values kept)."""
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) and len(ours) == len(theirs):
        return type(ours)(resync(o, r) for o, r in zip(ours, theirs))  # Kron's list of factors Q
    theirs = to_numpy(theirs)
    if isinstance(ours, np.ndarray) and isinstance(theirs, np.ndarray):
        out = np.array(ours, copy=True)
        out[...] = theirs
        return out
    return ours



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
