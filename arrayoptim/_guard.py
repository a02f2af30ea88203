"""Opt-in guard against non-finite gradients (optax's ``apply_if_finite`` is the model)."""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, is_array_api_obj, is_jax_array

__all__ = ["skip_nonfinite"]


def skip_nonfinite(opt: Any) -> "SkipNonFinite":
    """Wrap ``opt`` so that a step whose grads contain a NaN or an infinity changes nothing.

    By default arrayoptim does what torch does: non-finite grads propagate into params and state. Wrapped, such a
    step returns params and state unchanged (same values; with ``copy=False`` nothing is written).

    On libraries with concrete arrays the check is one host sync per step. Under ``jax.jit`` the decision is
    traced: every array is selected with ``xp.where(ok, new, old)``; a slot that an optimizer creates lazily at its
    first step (e.g. SGD's ``momentum_buffer``) is then created even when that first step is skipped.

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


class SkipNonFinite:
    """See :func:`skip_nonfinite`. Same ``init``/``step`` contract as the wrapped optimizer."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __getattr__(self, name: str) -> Any:  # name, info, hyperparams, groups, hyperparams_for, ...
        return getattr(self.base, name)

    def __repr__(self) -> str:
        return f"skip_nonfinite({self.base!r})"

    def init(self, params):
        return self.base.init(params)

    def step(self, params, grads, state, *, copy: bool | None = True, **kwargs):
        present = [g for g in grads.values() if is_array_api_obj(g)]
        if not present:
            return self.base.step(params, grads, state, copy=copy, **kwargs)
        xp = array_namespace(*present)
        ok = xp.all(xp.stack([xp.all(xp.isfinite(g)) for g in present]))
        if not is_jax_array(ok):
            if not bool(ok):
                # validate as a real step would, so bad input still raises
                from ._core import validate_step

                validate_step(params, grads, state, copy=copy)
                return dict(params), {n: dict(s) for n, s in state.items()}
            return self.base.step(params, grads, state, copy=copy, **kwargs)
        new_p, new_s = self.base.step(params, grads, state, copy=copy, **kwargs)
        sel = {n: xp.where(ok, new_p[n], params[n]) for n in params}
        out_s = {}
        for n, slots in new_s.items():
            old = state.get(n, {})
            out_s[n] = {k: (xp.where(ok, v, old[k]) if k in old and is_array_api_obj(v) else v)
                        for k, v in slots.items()}
        return sel, out_s
