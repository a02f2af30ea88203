"""``ArrayOptimizer``: any registered arrayoptim optimizer as a drop-in ``torch.optim.Optimizer``.

The adapter only translates: torch param groups -> arrayoptim group records (read from ``param_group`` at every
step), torch tensors -> array views (:mod:`._bridge`), and the returned arrays -> the same torch storage. The
math is the functional core's.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable

import numpy as np
import torch
from array_api_compat import array_namespace

import arrayoptim as ao
from arrayoptim._hyper import IMPLEMENTATION_SELECTORS
from arrayoptim._registry import LOOKAHEAD_PREFIX

from ._inputs import kron_state_dict, persistent_attrs, pop_kron_rng_state, step_inputs
from ._bridge import Binding, bind, namespace_key, stream_context, to_torch, torch_dtype_of
from ._state import (STEPPED, anchor_layout, anchor_selectors, export_state_dict, finish_load, prepare_load,
                     reference_slots)

__all__ = ["ArrayOptimizer"]

_LOOKAHEAD_KEYS = ("lookahead_alpha", "lookahead_k")


def _hkey(v: Any) -> Any:
    """A hashable snapshot of a hyperparameter value (tensors by value: schedulers may ``fill_`` a tensor lr)."""
    if isinstance(v, torch.Tensor):
        return ("tensor", v.item()) if v.numel() == 1 else ("tensor", tuple(v.flatten().tolist()))
    if isinstance(v, (list, tuple)):
        return tuple(_hkey(x) for x in v)
    try:
        hash(v)
    except TypeError:
        return repr(v)
    return v


class ArrayOptimizer(torch.optim.Optimizer):
    """A registered arrayoptim optimizer driving torch tensors in place, through DLPack.

    Parameters
    ----------
    params : iterable of Tensor or dict
        What torch optimizers accept: tensors, or param-group dicts (``{'params': [...], 'lr': ..., ...}``),
        optionally ``(name, tensor)`` pairs.
    opt : str, default 'adamw'
        A registry name (:func:`arrayoptim.list_optimizers`), optionally prefixed ``lookahead_``
        (``lookahead_alpha`` / ``lookahead_k`` then set the wrapper's ``alpha`` / ``k``).
    **hparams
        The anchor's hyperparameters (``lr``, ``betas``, ``weight_decay``, ...). Unknown names raise ``TypeError``;
        torch's ``foreach``/``fused``/``capturable``/``differentiable`` are accepted and have no effect.

    Notes
    -----
    * Every step reads each group's hyperparameters from ``param_group`` (so torch's ``lr_scheduler`` and timm's
      schedulers drive it by writing ``param_group['lr']``); keys that are not hyperparameters of ``opt``
      (``lr_scale``, ``initial_lr``, ...) are kept and ignored.
    * CPU tensors of float16/float32/float64 are updated through zero-copy NumPy views (same ``data_ptr`` across
      steps, for params and state); CUDA tensors through CuPy views on torch's current stream. bfloat16, neg-bit
      and read-only cases take a working copy that is written back (see ``arrayoptim.torch._bridge``).
    * The layout is the anchor's: ``state[p]`` holds torch tensors under torch/timm's slot names, only for params
      that have stepped (or, like torch's Adagrad, at construction); each group carries the anchor's keys
      (torch's ``foreach``/``capturable``/``differentiable``/``fused``, timm's ``lookahead_*``); a per-group counter
      lives in the group where timm keeps it (Adan's and LAMB's ``group['step']``, Lookahead's
      ``group['lookahead_step']``) and advances on every step, grads or not. A group listed twice
      (``param_groups.extend(param_groups)``) is stepped twice per step, as timm does.
    * ``state_dict()`` is written in the layout of the torch/timm class of the same algorithm (the registry
      ``anchor``), and ``load_state_dict`` accepts that class's ``state_dict()`` or this class's: a run continues
      where it left off in either direction (every torch.optim class including LBFGS and SparseAdam, every timm
      name; Adahessian draws afresh from its seed, as a resumed timm run does). Converted on the way
      (:mod:`arrayoptim.torch._state`): Python-number slots (timm's ``int`` ``step`` in AdaBelief, Adafactor,
      AdamP, MADGRAD, Mars, NovoGrad, ...) <-> 0-d tensors, timm Adafactor's ``beta1``/``relative_step`` <-> ``betas``/``lr=None``, torch LBFGS's
      history lists <-> the core's fixed-shape arrays. A state_dict for a different param layout (group count or
      sizes, slot shapes), with another optimizer's slots or with hyperparameters the record refuses raises
      ``ValueError`` and changes nothing.
    * Inputs beyond grads are made here as timm makes them (:mod:`arrayoptim.torch._inputs`): Adahessian's
      Hessian-diagonal estimate through autograd (call ``loss.backward(create_graph=True)``; ``is_second_order``
      says so, as timm's train loop asks), drawing from timm's seeded ``generator``; Kron's random draws from timm's
      ``rng`` (``random.Random(1337)``) and torch's RNG. Same seeds, same trajectory as timm's optimizer.

    Examples
    --------
    >>> import torch
    >>> from arrayoptim.torch import ArrayOptimizer
    >>> w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    >>> opt = ArrayOptimizer([w], opt='adamw', lr=0.1)
    >>> w.grad = torch.ones(3, dtype=torch.float64)
    >>> opt.step()
    >>> w.detach()
    tensor([0.8990, 0.8990, 0.8990], dtype=torch.float64)
    """

    def __init__(self, params: Iterable[Any], opt: str = "adamw", **hparams: Any) -> None:
        if not isinstance(opt, str):
            raise TypeError(f"opt must be a registry name (str), got opt={opt!r}")
        key = opt.lower()
        lookahead = key.startswith(LOOKAHEAD_PREFIX) and key != LOOKAHEAD_PREFIX
        core = ao.create_optimizer(key, **hparams)  # validates names and values (TypeError / ValueError)
        record = core.hyperparams
        defaults = dict(record.as_dict())
        defaults.update({k: v for k, v in hparams.items() if k in IMPLEMENTATION_SELECTORS})
        for k, v in anchor_selectors(core.info).items():  # the anchor's own group keys (torch's foreach, ...)
            defaults.setdefault(k, v)
        if lookahead:  # timm's Lookahead adds these to every group, its counter included
            defaults.update(lookahead_alpha=core.lookahead.alpha, lookahead_k=core.lookahead.k, lookahead_step=0)
        self._opt_name = key
        self._info = core.info
        self._fields = tuple(record.field_names())
        self._core_cache: tuple | None = None
        super().__init__(params, defaults)
        eager = anchor_layout(self).eager
        if eager is not None:  # the anchor creates its initial state at construction (torch's Adagrad)
            base = getattr(core := self._core(), "base", core)
            for members in self._passes()[:1]:
                for name, p, _, _ in members:
                    if eager(p):
                        pb = bind(p)
                        self._store_state(p, pb, {}, base._init_one(array_namespace(pb.array), name, pb.array))

    # --------------------------------------------------------------------------------------------- torch API
    @property
    def opt_name(self) -> str:
        """The registry name this optimizer runs (with its ``lookahead_`` prefix, if any)."""
        return self._opt_name

    @property
    def is_second_order(self) -> bool:
        """Whether the loss needs ``backward(create_graph=True)`` (Adahessian), as timm's train loop asks."""
        return bool(self._info.second_order)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's ``add_param_group``, then the group's hyperparameters are validated at once."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            self._info.hyperparams(**{k: group[k] for k in self._fields if k in group})
        except (TypeError, ValueError) as e:
            self.param_groups.pop()
            raise type(e)(f"param group {len(self.param_groups)}: {e}") from None
        for p in group["params"]:
            if p.is_complex():
                self.param_groups.pop()
                raise TypeError(f"param group {len(self.param_groups)}: complex params are not supported "
                                f"(got a {p.dtype} param of shape {tuple(p.shape)}); use torch.view_as_real")
        self._core_cache = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(_opt_name=self._opt_name, _fields=self._fields)
        state.update(persistent_attrs(self))  # random sources of step inputs (Adahessian, Kron): continued by copies
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        base = self._opt_name[len(LOOKAHEAD_PREFIX):] if self._opt_name.startswith(LOOKAHEAD_PREFIX) else self._opt_name
        self._info = ao.get_optimizer_info(base)
        self._core_cache = None
        self.__dict__.pop("_init_key_cache", None)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimization step on every param with a ``.grad``; returns ``closure()``'s loss if given.

        Closure-driven optimizers (LBFGS) require ``closure`` and call it themselves, possibly several times, at the
        points they evaluate (the params are set to each point before the call); the first loss is returned, as
        torch's LBFGS does.
        """
        if self._closure_driven():
            if closure is None or not callable(closure):
                raise TypeError(f"{self._opt_name}.step() needs a closure that re-evaluates the model and returns "
                                f"the loss, got closure={closure!r}")
            with torch.no_grad():
                return self._step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._step()
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's ``load_state_dict`` for a ``state_dict()`` of this class or of the anchor's torch/timm class: the
        anchor's layout is converted (:mod:`arrayoptim.torch._state`) and checked against these params first
        (``ValueError`` otherwise, with nothing changed), then slot types are normalised to what the core computes
        with (e.g. a float32 ``step`` counter of a float64 param becomes float64). Loaded tensors are copied: the
        optimizer never updates the caller's ``state_dict`` in place."""
        state_dict, plan = prepare_load(self, state_dict)
        super().load_state_dict(pop_kron_rng_state(self, state_dict))
        finish_load(self, plan)

    def state_dict(self) -> dict[str, Any]:
        """torch's ``state_dict``, plus Kron's ``rng_state`` (its Python RNG) as timm's Kron saves it."""
        return export_state_dict(self, kron_state_dict(self, super().state_dict()))

    # --------------------------------------------------------------------------------------------- internals
    def _core(self) -> Any:
        fields = self._fields
        key = tuple((len(g["params"]), tuple(_hkey(g.get(k)) for k in fields)) for g in self.param_groups)
        key = (key, _hkey(self.defaults.get("lookahead_alpha")), _hkey(self.defaults.get("lookahead_k")))
        if self._core_cache is not None and self._core_cache[0] == key:
            return self._core_cache[1]
        groups, i = [], 0
        for g in self.param_groups:
            names = [f"p{i + j}" for j in range(len(g["params"]))]
            i += len(names)
            groups.append({"params": names, **{k: g[k] for k in fields if k in g}})
        top = {k: self.defaults[k] for k in fields if k in self.defaults}
        if len(groups) == 1:  # one torch group: its values are the top-level record (LBFGS refuses groups)
            top.update({k: v for k, v in groups.pop().items() if k != "params"})
        top.update({k: self.defaults[k] for k in _LOOKAHEAD_KEYS if k in self.defaults})
        core = ao.create_optimizer(self._opt_name, groups=groups or None, **top)
        self._core_cache = (key, core)
        return core

    def _closure_driven(self) -> bool:
        return self._info.takes("closure")

    def _extra_step_kwargs(self, core: Any, part: dict, closure: Callable[[], Any] | None,
                           losses: list) -> dict[str, Any]:
        """What a step needs beyond grads: the closure in the core's form ``f(point) -> (loss, grads)`` for
        closure-driven optimizers (LBFGS); Adahessian's Hessian estimate and Kron's draws come from
        :func:`._inputs.step_inputs`."""
        extra: dict[str, Any] = step_inputs(self, core, part)
        if part["mask"]:
            extra["grad_mask"] = part["mask"]
        if closure is not None:
            tensors = {name: pb for name, (p, pb, sb) in part["b"].items()}

            def core_closure(point):
                for name, arr in point.items():
                    tensors[name].write_back(arr)
                with torch.enable_grad():
                    loss = closure()
                losses.append(loss)
                grads = {}
                for name, pb in tensors.items():
                    g = pb.tensor.grad
                    grads[name] = None if g is None else bind(g.detach().clone()).array
                return float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss), grads

            extra["closure"] = core_closure
        return extra

    def _sparse_grads(self) -> bool:
        """Whether the registered step takes sparse gradients (as a dense grad plus a ``grad_mask``)."""
        return self._info.takes("grad_mask")

    def _passes(self) -> list[list[tuple[str, torch.Tensor, dict, dict[str, int]]]]:
        """The listings of ``param_groups`` as the core steps them: ``(name, param, group, earlier)`` with the
        core's names (``p0``, ``p1``, ... over every listing, as :meth:`_core` builds its groups) and ``earlier``
        the number of earlier listings that advance the same counter (``'step'``, ``'lookahead_step'``) in this
        step: the same group dict listed again, or another dict sharing the same counter tensor (torch's
        ``load_state_dict`` keeps such sharing). Pass ``v`` holds each param's ``v``-th listing: one pass unless a
        param is listed twice (``param_groups.extend(param_groups)``), which timm then steps twice, one listing
        after the other."""
        passes: list[list] = []
        visits: dict[int, int] = {}
        seen: dict[tuple, int] = {}
        i = 0
        for g in self.param_groups:
            earlier = {}
            for key in ("step", "lookahead_step"):
                c = g.get(key)
                ident = (key, id(c) if isinstance(c, torch.Tensor) else id(g))
                earlier[key] = seen.get(ident, 0)
                seen[ident] = earlier[key] + 1
            for p in g["params"]:
                v = visits.get(id(p), 0)
                visits[id(p)] = v + 1
                if v == len(passes):
                    passes.append([])
                passes[v].append((f"p{i}", p, g, earlier))
                i += 1
        return passes

    def _step(self, closure: Callable[[], Any] | None = None) -> Any:
        core = self._core()
        base = getattr(core, "base", core)  # the optimizer a lookahead_ wrapper drives
        passes = self._passes()
        extra = {}
        if len(passes) > 1 and base.info.takes("grad_norm"):  # LAMB's global clip spans every listing, as timm's
            extra["grad_norm"] = self._listed_grad_norm(passes)
        losses: list = []
        for members in passes:
            self._base_pass(base, members, closure, losses, extra)
        if self._info.counter == "group":  # timm: every listed group counts every step, grads or not
            self._advance_counters("step", anchor_layout(self).tensor_counters)
        if base is not core:
            for members in passes:
                self._sync_pass(core, members, closure)
            self._advance_counters("lookahead_step", False)
        return losses[0] if losses else None

    def _base_pass(self, base: Any, members: list, closure: Callable[[], Any] | None, losses: list,
                   extra: dict[str, Any]) -> None:
        """One core step over the params of one pass that have a grad (every param when closure-driven)."""
        parts: dict[tuple, dict[str, Any]] = {}
        counted = self._info.counter == "group"
        stepped = self._init_keys(base) & {STEPPED}
        for name, p, g, earlier in members:
            grad = p.grad
            if closure is not None:  # closure-driven: every param takes part; grads come from the closure
                grad = p.grad if p.grad is not None else torch.zeros_like(p)
            elif grad is None:
                continue  # untouched; a group counter is the group's (advanced in _step)
            i = int(name[1:])
            mask = None
            if self._sparse_grads():
                if not grad.is_sparse:
                    raise RuntimeError(f"{self._opt_name} does not support dense gradients (param {i}, shape "
                                       f"{tuple(p.shape)}), as torch's SparseAdam; consider Adam instead")
                grad, mask = _densify(grad)
            elif grad.is_sparse:
                raise RuntimeError(f"{self._opt_name} does not support sparse gradients (param {i}, "
                                   f"shape {tuple(p.shape)}); see SparseAdam")
            if torch._debug_has_internal_overlap(p) == 1:
                raise RuntimeError(f"param {i} (shape {tuple(p.shape)}, strides {p.stride()}) has internal "
                                   "overlap (e.g. expand()): it cannot be updated in place")
            part = parts.setdefault(namespace_key(p), {"params": {}, "grads": {}, "state": {}, "b": {}, "mask": {}})
            if mask is not None:
                part["mask"][name] = bind(mask).array
            pb = bind(p)
            ga = bind(grad).array  # read only: a view, or a float32 copy of bf16
            if ga.dtype != pb.array.dtype:  # e.g. a float32 working copy of a bfloat16 param
                ga = ga.astype(pb.array.dtype)
            slots, sb = self._bind_slots(p, i)
            if slots:  # a param that has stepped: what the anchor expresses by its having state
                slots.update({k: self._scalar(p, pb, True, torch.bool) for k in stepped})
            elif counted:  # its first step: the core's initial slots (for its group's record), then the count
                slots = base._init_one(array_namespace(pb.array), name, pb.array)
            if counted:
                slots["step"] = self._scalar(p, pb, self._count(g, "step") + earlier["step"])
            part["params"][name] = pb.array
            part["grads"][name] = ga
            if slots:  # no slots: a param the optimizer has not seen yet (the core's init applies)
                part["state"][name] = slots
            part["b"][name] = (p, pb, sb)
        drop = ({"step"} if counted else set()) | stepped
        for dev, part in parts.items():
            with stream_context(dev):
                kw = self._extra_step_kwargs(base, part, closure, losses)
                kw.update({k: bind(v.to(_torch_device(dev))).array for k, v in extra.items()})
                new_params, new_state = base.step(part["params"], part["grads"], part["state"], copy=False, **kw)
            for name, (p, pb, sb) in part["b"].items():
                pb.write_back(new_params[name])
                self._store_state(p, pb, sb, {k: v for k, v in new_state[name].items() if k not in drop})

    def _sync_pass(self, core: Any, members: list, closure: Callable[[], Any] | None) -> None:
        """timm's Lookahead after the base step, for one pass: params with a grad, each with its listing's count."""
        parts: dict[tuple, dict[str, Any]] = {}
        k = core.lookahead.k
        for name, p, g, earlier in members:
            count = self._count(g, "lookahead_step") + earlier["lookahead_step"]
            if p.grad is None and closure is None:
                continue  # timm's update_slow skips it; the group's count advances in _step
            if (count + 1) % k:
                continue  # not a sync step of this listing (timm decides per group too): nothing to bind
            part = parts.setdefault(namespace_key(p), {"params": {}, "grads": {}, "state": {}, "b": {}})
            pb = bind(p)
            slots, sb = self._bind_slots(p, int(name[1:]), only=("lookahead_slow_buff",))
            slots["lookahead_step"] = count
            part["params"][name] = pb.array
            part["grads"][name] = pb.array  # only whether a grad is there matters to the sync
            part["state"][name] = slots
            part["b"][name] = (p, pb, sb)
        for dev, part in parts.items():
            with stream_context(dev):
                new_params, new_state = core.sync(part["params"], part["grads"], part["state"], copy=False)
            for name, (p, pb, sb) in part["b"].items():
                pb.write_back(new_params[name])
                slow = new_state[name].get("lookahead_slow_buff")
                if slow is not None:
                    b = sb.get("lookahead_slow_buff")
                    if b is not None:
                        b.write_back(slow)
                    else:
                        self.state[p]["lookahead_slow_buff"] = self._new_state_tensor(p, pb, "lookahead_slow_buff",
                                                                                      slow)

    def _bind_slots(self, p: torch.Tensor, i: int, only: tuple[str, ...] | None = None) -> tuple[dict, dict]:
        """``(arrays, bindings)`` of ``p``'s state slots (``only`` these), without creating an entry in
        ``self.state`` for a param that has none."""
        slots, sb = {}, {}
        for k, v in self.state.get(p, {}).items():
            if only is not None and k not in only:
                continue
            if isinstance(v, torch.Tensor):
                if v.device != p.device:
                    raise ValueError(f"state slot {k!r} of param {i} is on {v.device}, the param on "
                                     f"{p.device}: load the state with load_state_dict after moving")
                sb[k] = bind(v)
                slots[k] = sb[k].array
            elif _is_tensor_list(v):  # a list of tensors (Kron's Q factors)
                sb[k] = [bind(x) for x in v]
                slots[k] = [b.array for b in sb[k]]
            else:
                slots[k] = v
        return slots, sb

    def _scalar(self, p: torch.Tensor, pb: Binding, value: Any, dtype: torch.dtype | None = None) -> Any:
        """A 0-d array on ``p``'s device holding ``value``: a group's count in the core's ``step`` dtype (float64
        for float64 params, float32 otherwise), or a ``stepped`` flag."""
        if dtype is None:
            dtype = torch.float64 if torch_dtype_of(pb.array) == torch.float64 else torch.float32
        return bind(torch.full((), value, dtype=dtype, device=p.device)).array

    @staticmethod
    def _count(g: dict, key: str) -> int:
        c = g.get(key, 0)
        return int(c.item()) if isinstance(c, torch.Tensor) else int(c)

    def _advance_counters(self, key: str, tensor: bool) -> None:
        """Advance ``group[key]`` once per listing of the group, where and as timm keeps it: a Python int, or a
        0-d CPU tensor in the default float dtype (timm's LAMB), updated in place."""
        for g in self.param_groups:
            c = g.get(key)
            if not tensor:
                g[key] = (0 if c is None else self._count(g, key)) + 1
            elif isinstance(c, torch.Tensor):
                c.add_(1)
            else:
                g[key] = torch.tensor(float(c or 0) + 1, dtype=_scalar_dtype())  # on the CPU, as timm

    def _listed_grad_norm(self, passes: list) -> torch.Tensor:
        """The global grad norm over every listing (a param listed twice counts twice), as timm's LAMB takes it."""
        grads = [p.grad for members in passes for _, p, _, _ in members if p.grad is not None]
        if not grads:
            return torch.zeros(())
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))

    def _init_keys(self, base: Any) -> set:
        """The slot names the core's ``init`` creates (on a one-element float64 param), cached."""
        keys = self.__dict__.get("_init_key_cache")
        if keys is None:
            try:
                keys = set(base._init_one(array_namespace(np.zeros(())), "", np.zeros((1, 1))))
            except Exception:  # noqa: BLE001 - an init that needs more than a small matrix: nothing implied
                keys = set()
            self._init_key_cache = keys
        return keys

    def _store_state(self, p: torch.Tensor, pb: Binding, sb: dict[str, Binding], new: dict[str, Any]) -> None:
        if not new and not self.state.get(p):  # no state (L-BFGS keeps its own on the first param only): no entry
            return
        st = self.state[p]
        for k in [k for k in st if k not in new]:
            del st[k]
        for k, v in new.items():
            b = sb.get(k)
            if isinstance(v, list) and v and all(_is_array(x) for x in v):  # Kron's Q factors
                bs = b if isinstance(b, list) and len(b) == len(v) else [None] * len(v)
                st[k] = [self._store_one(p, pb, bj, k, x) for bj, x in zip(bs, v)]
            elif not _is_array(v):
                st[k] = v
            elif b is not None and tuple(b.tensor.shape) == tuple(v.shape):
                b.write_back(v)
            else:
                st[k] = self._new_state_tensor(p, pb, k, v)

    def _store_one(self, p: torch.Tensor, pb: Binding, b: Binding | None, k: str, v: Any) -> torch.Tensor:
        if b is not None and tuple(b.tensor.shape) == tuple(v.shape):
            b.write_back(v)
            return b.tensor
        return self._new_state_tensor(p, pb, k, v)

    def _new_state_tensor(self, p: torch.Tensor, pb: Binding, k: str, v: Any) -> torch.Tensor:
        """A torch-allocated slot holding ``v`` (param-shaped float slots of a working-copy param take the
        param's dtype, as torch keeps them, unless the anchor keeps float32 state for half-precision params)."""
        dtype = torch_dtype_of(v)
        if (pb.copied and k != "step" and tuple(v.shape) == tuple(p.shape) and dtype.is_floating_point
                and not (self._info.half_compute == "float32" and p.dtype in (torch.float16, torch.bfloat16))):
            dtype = p.dtype
        out = torch.empty(tuple(v.shape), dtype=dtype, device=p.device)
        out.copy_(to_torch(v, p.device))
        return out

    # --------------------------------------------------------------------------------------------- state_dict
    def _reference_slots(self, p: torch.Tensor) -> dict[str, Any]:
        """The slots the core keeps for ``p`` under the first group's hyperparameters (see
        :func:`._state.reference_slots`)."""
        return reference_slots(self, p)[0]

    def _normalize(self, p: torch.Tensor, st: dict[str, Any], ref: dict[str, Any] | None = None) -> None:
        ref = self._reference_slots(p) if ref is None else ref
        for k, v in list(st.items()):
            r = ref.get(k)
            if isinstance(v, torch.Tensor):
                if r is not None and not _is_array(r) and v.numel() == 1:
                    v = type(r)(v.item()) if isinstance(r, numbers.Number) else v
                    st[k] = v
                    continue
                if r is not None and _is_array(r):
                    v = v.to(device=p.device)
                    if k == "step" or tuple(r.shape) != tuple(p.shape):  # non-param-shaped: the core's dtype
                        v = v.to(dtype=torch_dtype_of(r))
                st[k] = v.clone()  # never alias the caller's state_dict
            elif _is_tensor_list(v):  # Kron's Q: copies, in the dtypes init gives them (torch cast them to p's)
                refs = r if isinstance(r, list) and len(r) == len(v) and all(map(_is_array, r)) else [None] * len(v)
                st[k] = [x.to(device=p.device, dtype=torch_dtype_of(rj) if rj is not None else x.dtype, copy=True)
                         for x, rj in zip(v, refs)]
            elif r is not None and _is_array(r) and isinstance(v, numbers.Number):
                st[k] = torch.tensor(v, dtype=torch_dtype_of(r), device=p.device)


def _scalar_dtype() -> torch.dtype:
    """The dtype timm gives its tensor counters: float64 under a float64 default dtype, float32 otherwise."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _torch_device(key: tuple) -> torch.device:
    kind, index = key
    return torch.device(kind) if index is None else torch.device(kind, index)


def _densify(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse COO grad as (dense grad, mask of the entries present), duplicates summed (``coalesce``)."""
    g = grad.coalesce()
    mask = torch.zeros(tuple(g.shape), dtype=torch.bool, device=g.device)
    mask[tuple(g.indices())] = True
    return g.to_dense(), mask


def _is_tensor_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, torch.Tensor) for x in v)


def _is_array(v: Any) -> bool:
    return hasattr(v, "__dlpack__") or isinstance(v, np.generic)

