r"""Lookahead (``lookahead_<name>`` wraps any registered optimizer), with timm's semantics."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from array_api_compat import is_jax_array

from .._hyper import Hyperparams, Range, hyperfield
from .._layout import Slot, check_slot
from .._xp import _kind, assign, claim


@dataclasses.dataclass(frozen=True, kw_only=True)
class LookaheadHyperparams(Hyperparams):
    r"""timm.optim.Lookahead: ``k`` fast steps of the base optimizer, then one step back toward slow weights.

    After the base step, on every ``k``-th count of its group (each param's ``lookahead_step`` slot), for each param
    with a gradient:

    .. math::

        \phi &\leftarrow \phi + \alpha(\theta - \phi) \qquad \theta \leftarrow \phi

    where :math:`\theta` is the param (fast weights) and :math:`\phi` the ``lookahead_slow_buff`` slot.

    Warnings
    --------
    * As in timm, the slow weights are created **lazily at the first sync**, as a copy of the fast weights at
      step ``k`` (not of the initial weights), so the first sync changes nothing; the paper starts
      :math:`\phi` at the initial weights.
    * **Counter.** timm counts ``lookahead_step`` per param group (``group['lookahead_step']``, an int),
      advanced on every ``step()`` call, grads or not, and skips params without a gradient at a sync step. Here
      the count is state: every param's ``lookahead_step`` slot holds its group's count and advances on every
      step, with or without a gradient, so syncs happen at timm's steps in every case, also after steps in which a
      whole group has no gradient. The torch adapter keeps the count where timm does
      (``param_groups[i]['lookahead_step']``).
    * JAX params get a traceable state (an int32 ``lookahead_step`` and ``lookahead_slow_buff`` from ``init``) and
      the sync is an ``xp.where``, so a Lookahead step runs under ``jax.jit`` and keeps one state structure; other
      backends keep timm's layout (an ``int`` counter, the slow buffer created at the first sync). One difference
      remains there: a JAX param without a gradient at the ``k``-th count takes its first slow weights at a later
      sync from ``init``'s copy of the initial weights (timm, and the other backends: from the fast weights then).

    References
    ----------
    Zhang et al., "Lookahead Optimizer: k steps forward, 1 step back", arXiv:1907.08610.
    """

    anchor = "timm.optim.Lookahead"
    alpha: float = 0.5
    k: int = hyperfield(6, "int")

    checks = {"alpha": Range(ge=0.0, le=1.0, message="Invalid slow update rate: {value} (lookahead {name}={value!r} "
                                                    "must be {bound})"),
              "k": Range(ge=1, message="Invalid lookahead steps: {value} (lookahead {name}={value!r} must be {bound})")}


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
        """The base optimizer's step, then :meth:`sync` on what it returned (its claimed arrays, in place).
        Lookahead's own slots are checked first (the base step checks the rest), so a bad state writes nothing."""
        self.validate(params, grads, state, copy=copy, **kwargs)
        new_params, new_state = self.base.step(params, grads, state, copy=copy, **kwargs)
        return self.sync(new_params, grads, new_state, copy=False)

    def validate(self, params, grads, state, *, copy: bool | None = True, **kwargs) -> None:
        """Every check of :meth:`step`, writing nothing: Lookahead's slots (``lookahead_step`` a counter >= 0,
        ``lookahead_slow_buff`` shaped like its param), then the base optimizer's."""
        self._check_own(params, state)
        self.base.validate(params, grads, state, copy=copy, **kwargs)

    def validate_state(self, params, state) -> None:
        """Lookahead's slots and the base optimizer's (see :meth:`Optimizer.validate_state`)."""
        self._check_own(params, state)
        self.base.validate_state(params, state)

    @staticmethod
    def _check_own(params, state) -> None:
        if not isinstance(state, Mapping) or not isinstance(params, Mapping):
            return  # the base optimizer names what is wrong
        for name, s in state.items():
            p = params.get(name)
            if not isinstance(s, Mapping) or p is None or _kind(p).ns is None:
                continue
            for slot, want in (("lookahead_step", Slot("number", pytype=int)),
                               ("lookahead_slow_buff", Slot("array", tuple(p.shape), p.dtype))):
                if slot in s:
                    check_slot(f"state[{name!r}][{slot!r}]", s[slot], want, p)

    def sync(self, params, grads, state, *, copy: bool | None = True):
        """timm's Lookahead half of a step, after the base step: every param's ``lookahead_step`` advances, and on
        every ``k``-th count the params with a grad move their slow weights toward the fast ones and take them.

        ``copy`` as in :meth:`Optimizer.step`: ``False`` updates the synced params and slow buffers in place (the
        counters are rebound, never written in place). Returns ``(params, state)``.
        """
        alpha, k = self.lookahead.alpha, self.lookahead.k
        new_params, new_state = dict(params), {n: dict(s) for n, s in state.items()}
        for name, s in new_state.items():
            count = s.get("lookahead_step", 0) + 1  # timm counts every group on every step
            s["lookahead_step"] = count
            if grads.get(name) is None:
                continue
            if is_jax_array(count) or is_jax_array(new_params[name]):  # traced: the sync decided by xp.where
                new_params[name] = self._traced_sync(new_params[name], s, count)
                continue
            if count % k:
                continue
            from array_api_compat import array_namespace

            xp = array_namespace(new_params[name])
            fast = claim(xp, new_params[name], copy)
            slow = s.get("lookahead_slow_buff")
            slow = xp.asarray(fast, copy=True) if slow is None else claim(xp, slow, copy)
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
