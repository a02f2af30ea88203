r"""Lookahead (``lookahead_<name>`` wraps any registered optimizer), with timm's semantics."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .._hyper import Hyperparams, hyperfield
from array_api_compat import is_jax_array

from .._xp import assign


def _maximum(a: Any, b: Any) -> Any:
    if is_jax_array(a) or is_jax_array(b):
        from array_api_compat import array_namespace

        xp = array_namespace(a if is_jax_array(a) else b)
        return xp.maximum(xp.asarray(a, dtype=xp.int32), xp.asarray(b, dtype=xp.int32))
    return max(a, b)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LookaheadHyperparams(Hyperparams):
    r"""timm.optim.Lookahead: ``k`` fast steps of the base optimizer, then one step back toward slow weights.

    Every ``k``-th step of a param (counted in its ``lookahead_step`` slot), after the base step:

    .. math::

        \phi &\leftarrow \phi + \alpha(\theta - \phi) \qquad \theta \leftarrow \phi

    where :math:`\theta` is the param (fast weights) and :math:`\phi` the ``lookahead_slow_buff`` slot.

    Warnings
    --------
    * As in timm, the slow weights are created **lazily at the first sync**, as a copy of the fast weights at
      step ``k`` (not of the initial weights), so the first sync changes nothing; the paper starts
      :math:`\phi` at the initial weights.
    * timm counts ``lookahead_step`` per param group (every ``step()`` call) and skips params without a gradient
      at a sync step. Here each param has a ``lookahead_step`` slot; a param with a gradient takes its group's
      count (the largest slot in its group) plus one, so syncs happen at timm's steps, also for params that miss
      gradients. Params without a gradient stay untouched, so one case differs: a ``step()`` in which no param of
      a group has a gradient advances timm's count and not this one.

    * JAX params get a traceable state (an int32 ``lookahead_step`` and ``lookahead_slow_buff`` from ``init``) and
      the sync is an ``xp.where``, so a Lookahead step runs under ``jax.jit`` and keeps one state structure; other
      backends keep timm's layout (an ``int`` counter, the slow buffer created at the first sync).

    References
    ----------
    Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back", arXiv:1907.08610.
    """

    anchor = "timm.optim.Lookahead"
    alpha: float = 0.5
    k: int = hyperfield(6, "int")

    def validate(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"Invalid slow update rate: {self.alpha} (lookahead alpha={self.alpha!r} must be in [0, 1])")
        if not 1 <= self.k:
            raise ValueError(f"Invalid lookahead steps: {self.k} (lookahead k={self.k!r} must be >= 1)")


class Lookahead:
    """A registered optimizer wrapped in Lookahead; same ``init``/``step`` contract as :class:`Optimizer`."""

    def __init__(self, base: Any, **hparams: Any) -> None:
        self.base = base
        self.lookahead = LookaheadHyperparams(**hparams)

    @property
    def name(self) -> str:
        return "lookahead_" + self.base.name

    @property
    def info(self):
        return self.base.info

    @property
    def hyperparams(self):
        return self.base.hyperparams

    def __repr__(self) -> str:
        return f"Lookahead({self.base!r}, alpha={self.lookahead.alpha!r}, k={self.lookahead.k!r})"

    def init(self, params: Mapping[str, Any]) -> dict:
        """The base state plus ``lookahead_step = 0``. JAX params get a traceable layout instead (for
        ``jax.jit``/``lax.scan``): a 0-d int32 counter and ``lookahead_slow_buff`` from the start (its values are
        first used at the first sync, where they are replaced by the fast weights, as timm creates them there)."""
        state = self.base.init(params)
        for name, s in state.items():
            p = params[name]
            if is_jax_array(p):
                from array_api_compat import array_namespace

                xp = array_namespace(p)
                s["lookahead_step"] = xp.zeros((), dtype=xp.int32)
                s["lookahead_slow_buff"] = xp.asarray(p, copy=True)
            else:
                s["lookahead_step"] = 0
        return state

    def step(self, params, grads, state, *, copy: bool | None = True, **kwargs):
        """The base optimizer's step, then the slow-weight sync on every ``k``-th step of each param."""
        group = self.base.hyperparams_for  # params sharing a record are a param group
        counts: dict[int, Any] = {}
        for name in params:  # timm's per-group count: the largest count among the group's params
            c = state.get(name, {}).get("lookahead_step", 0)
            c = c if is_jax_array(c) else int(c)
            key = id(group(name))
            counts[key] = c if key not in counts else _maximum(counts[key], c)
        new_params, new_state = self.base.step(params, grads, state, copy=copy, **kwargs)
        alpha, k = self.lookahead.alpha, self.lookahead.k
        for name in new_params:
            if grads.get(name) is None:
                continue
            s = new_state[name]
            count = counts.get(id(group(name)), 0) + 1
            if is_jax_array(count) or is_jax_array(new_params[name]):  # traced: the sync decided by xp.where
                new_params[name] = self._traced_sync(new_params[name], s, count)
                continue
            s["lookahead_step"] = count
            if count % k:
                continue
            fast = new_params[name]  # claimed by the base step
            slow = s.get("lookahead_slow_buff")
            if slow is None:
                from array_api_compat import array_namespace

                slow = array_namespace(fast).asarray(fast, copy=True)
            slow += alpha * (fast - slow)
            s["lookahead_slow_buff"] = slow
            new_params[name] = assign(fast, slow)
        return new_params, new_state

    def _traced_sync(self, fast: Any, s: dict, count: Any) -> Any:
        """The sync without host decisions (JAX): every step computes it and ``where`` keeps it on sync steps."""
        from array_api_compat import array_namespace

        xp = array_namespace(fast)
        alpha, k = self.lookahead.alpha, self.lookahead.k
        count = xp.asarray(count, dtype=xp.int32)
        sync = count % k == 0
        slow = s.get("lookahead_slow_buff")
        slow = xp.where(count == k, fast, fast if slow is None else slow)  # the first sync starts from the fast weights
        synced = slow + alpha * (fast - slow)
        s["lookahead_step"] = count
        s["lookahead_slow_buff"] = xp.where(sync, synced, slow)
        return xp.where(sync, synced, fast)
