"""Opt-in guard against non-finite gradients (optax's ``apply_if_finite`` is the model)."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from array_api_compat import array_namespace, is_array_api_obj, is_jax_array

__all__ = ["skip_nonfinite"]


def skip_nonfinite(opt: Any) -> "SkipNonFinite":
    """Wrap ``opt`` so that a step whose grads or step inputs contain a NaN or an infinity changes nothing.

    By default arrayoptim does what torch does: non-finite grads propagate into params and state. Wrapped, such a
    step returns params and state unchanged (same values; with ``copy=False`` nothing is written).

    Every step is validated first, exactly as the wrapped optimizer's ``step`` validates it (params, grads,
    state layout, ``hyperparams=`` overrides, step inputs): invalid arguments raise whether or not the step would
    be skipped. Then the decision covers

    * the grads;
    * every floating array (and Python float) passed in a declared step input, e.g. Adahessian's ``hessian``
      mapping, Kron's ``draws``, LAMB's ``grad_norm`` (all of them, also entries the step would not use);
    * for an optimizer that evaluates a ``closure`` itself (LBFGS): the loss and grads of every evaluation. The
      closure is wrapped; the first evaluation that returns a non-finite loss or grad stops the step, which then
      returns params and state unchanged (LBFGS writes nothing before its end), even if earlier evaluations of
      the same step were finite.

    On libraries with concrete arrays the check is one host sync per step. Under ``jax.jit`` the decision is
    traced: every array is selected with ``xp.where(ok, new, old)``; a slot that an optimizer creates lazily at its
    first step (e.g. SGD's ``momentum_buffer``) is then created even when that first step is skipped.

    A guarded optimizer is saved and loaded by :func:`arrayoptim.save_checkpoint` /
    :func:`arrayoptim.load_checkpoint` like the optimizer it wraps (the file records the guard, and a load without
    ``opt=`` rebuilds it); the state is the wrapped optimizer's.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.skip_nonfinite(ao.create_optimizer('adam', lr=0.1))
    >>> p = {'w': np.ones(2)}
    >>> s = opt.init(p)
    >>> p2, s2 = opt.step(p, {'w': np.array([1.0, np.nan])}, s)
    >>> p2['w'], float(s2['w']['step'])
    (array([1., 1.]), 0.0)
    """
    return SkipNonFinite(opt)


class _NonFinite(Exception):
    """Raised by a guarded closure to abandon the step."""


class SkipNonFinite:
    """See :func:`skip_nonfinite`. Same ``init``/``step``/``validate`` contract as the wrapped optimizer."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __getattr__(self, name: str) -> Any:  # name, info, hyperparams, groups, hyperparams_for, ...
        if name == "base" or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)  # copy/pickle probe dunders before __init__ ran: no recursion
        return getattr(self.base, name)

    def __repr__(self) -> str:
        return f"skip_nonfinite({self.base!r})"

    def init(self, params):
        return self.base.init(params)

    def validate(self, params, grads, state, *, copy: bool | None = True, **kwargs) -> None:
        """Every check the wrapped optimizer's ``step`` makes with these arguments, writing nothing."""
        check = _find(self.base, "validate")
        if check is not None:
            check(params, grads, state, copy=copy, **kwargs)
        else:  # an optimizer without ``validate``: the core's checks of params, grads and state
            from ._core import validate_step

            validate_step(params, grads, state, copy=copy)

    def validate_state(self, params, state) -> None:
        """The wrapped optimizer's ``validate_state``."""
        check = _find(self.base, "validate_state")
        if check is None:
            raise AttributeError(f"{self.base!r} has no validate_state")
        check(params, state)

    def step(self, params, grads, state, *, copy: bool | None = True, **kwargs):
        self.validate(params, grads, state, copy=copy, **kwargs)
        arrays, numbers = [], []
        _collect(grads, arrays, numbers)
        info = self.base.info
        for keyword in info.step_keywords:
            if keyword != "closure" and kwargs.get(keyword) is not None:
                _collect(kwargs[keyword], arrays, numbers)
        if not all(math.isfinite(x) for x in numbers):
            return _unchanged(params, state)
        if callable(kwargs.get("closure")) and info.takes("closure"):
            kwargs = {**kwargs, "closure": _finite_closure(kwargs["closure"])}
        ok = _all_finite(arrays)
        if ok is None or not is_jax_array(ok):
            if ok is not None and not bool(ok):
                return _unchanged(params, state)
            try:
                return self.base.step(params, grads, state, copy=copy, **kwargs)
            except _NonFinite:  # a closure evaluation was not finite: nothing was written
                return _unchanged(params, state)
        xp = array_namespace(ok)
        new_p, new_s = self.base.step(params, grads, state, copy=copy, **kwargs)
        sel = {n: xp.where(ok, new_p[n], params[n]) for n in params}
        out_s = {}
        for n, slots in new_s.items():
            old = state.get(n, {})
            out_s[n] = {k: (xp.where(ok, v, old[k]) if k in old and is_array_api_obj(v) else v)
                        for k, v in slots.items()}
        return sel, out_s


def _find(opt: Any, method: str) -> Callable[..., Any] | None:
    """``opt``'s own ``method``, else that of the optimizer it wraps (``opt.base``: Lookahead), or None."""
    seen = 0
    while opt is not None and seen < 8:
        if callable(getattr(type(opt), method, None)):
            return getattr(opt, method)
        opt, seen = getattr(opt, "__dict__", {}).get("base"), seen + 1
    return None


def _unchanged(params: Mapping[str, Any], state: Mapping[str, Mapping]) -> tuple[dict, dict]:
    return dict(params), {n: dict(s) for n, s in state.items()}


def _collect(value: Any, arrays: list, numbers: list, depth: int = 0) -> None:
    """The floating arrays and Python floats in ``value`` (an array, a number, or mappings/lists of them)."""
    if is_array_api_obj(value):
        xp = array_namespace(value)
        if xp.isdtype(value.dtype, ("real floating", "complex floating")):
            arrays.append(value)
    elif isinstance(value, float):
        numbers.append(value)
    elif depth < 4 and isinstance(value, Mapping):
        for v in value.values():
            _collect(v, arrays, numbers, depth + 1)
    elif depth < 4 and isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, arrays, numbers, depth + 1)


def _all_finite(arrays: list) -> Any:
    """A 0-d boolean array (traced under ``jax.jit``), a Python bool, or None when there is nothing to check."""
    if not arrays:
        return None
    try:
        xp = array_namespace(*arrays)
    except TypeError:  # arrays of several libraries (a step input of another library was refused by validation)
        return all(bool(array_namespace(a).all(array_namespace(a).isfinite(a))) for a in arrays)
    return xp.all(xp.stack([xp.all(xp.isfinite(a)) for a in arrays]))


def _finite_closure(closure: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``closure`` that raises :class:`_NonFinite` when an evaluation returns a non-finite loss or grad (what it
    returns is otherwise checked by the optimizer itself)."""

    def guarded(point):
        out = closure(point)
        if isinstance(out, tuple) and len(out) == 2:
            loss, grads = out
            arrays, numbers = [], []
            _collect(grads, arrays, numbers)
            try:
                numbers.append(float(loss))
            except (TypeError, ValueError):
                return out  # not a number: the optimizer's own check names it
            ok = _all_finite(arrays)
            if not all(math.isfinite(x) for x in numbers) or (ok is not None and not bool(ok)):
                raise _NonFinite
        return out

    return guarded
