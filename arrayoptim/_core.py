"""The functional optimizer: ``create_optimizer(name, **hparams)``, ``opt.init(params)``, ``opt.step(...)``.

Data flows one way::

    params/grads/state --validate everything--> xp = array_namespace(...) --claim outputs--> kernel per array
        --> new params/state

Nothing is written before every check has passed, so a step that raises leaves params and state exactly as they
were, with ``copy=False`` too.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping

from array_api_compat import array_namespace
from array_api_compat import device as _device

from . import _accel
from ._hyper import IMPLEMENTATION_SELECTORS, Hyperparams
from ._registry import LOOKAHEAD_PREFIX, OptimInfo, StepView, get_optimizer_info
from ._half import run_kernel
from ._layout import Layout, structure_key
from ._xp import _kind, _unwriteable, _writeable, check_aliasing, claim, is_half, slot_arrays

__all__ = ["Optimizer", "create_optimizer"]


def create_optimizer(name: str, *, groups: Iterable[Mapping[str, Any]] | None = None, **hparams: Any) -> Any:
    """Create the optimizer registered as ``name`` with the anchor's hyperparameter names.

    Parameters
    ----------
    name
        A registry name (see :func:`list_optimizers`), optionally prefixed ``lookahead_`` to wrap it in Lookahead
        (``lookahead_alpha`` and ``lookahead_k`` then set the wrapper's ``alpha`` and ``k``).
    groups
        Per-group hyperparameters, torch's param groups addressed by param name: a list of dicts, each with
        ``'params'`` (a list of param names) and the hyperparameters that differ for those params. Params in no
        group use the top-level values. A group may carry timm's ``'lr_scale'`` (layer decay): as in timm it only
        acts through a scheduled lr, i.e. ``step(..., hyperparams={'lr': x})`` gives that group ``x * lr_scale``.
    **hparams
        The anchor constructor's keywords (``lr``, ``betas``, ``weight_decay``, ...). Unknown names raise
        ``TypeError``; torch's ``foreach``/``fused``/``capturable``/``differentiable`` are accepted and ignored.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adamw', lr=1e-3)
    >>> params = {'w': np.ones(3)}
    >>> state = opt.init(params)
    >>> params, state = opt.step(params, {'w': np.ones(3)}, state)
    >>> params['w']
    array([0.99899, 0.99899, 0.99899])
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a str, got {name!r}")
    key = name.lower()
    if key.startswith(LOOKAHEAD_PREFIX) and key != LOOKAHEAD_PREFIX:
        from .optimizers.lookahead import Lookahead

        la = {k[len("lookahead_"):]: hparams.pop(k) for k in ("lookahead_alpha", "lookahead_k") if k in hparams}
        return Lookahead(create_optimizer(key[len(LOOKAHEAD_PREFIX):], groups=groups, **hparams), **la)
    info = get_optimizer_info(key)
    return Optimizer(info, _make_record(info, info.effective_defaults(), hparams, where=key), groups=groups)


def _make_record(info: OptimInfo, base: Mapping[str, Any], overrides: Mapping[str, Any], where: str) -> Hyperparams:
    fields = set(info.hyperparams.field_names())
    unknown = [k for k in overrides if k not in fields and k not in IMPLEMENTATION_SELECTORS]
    if unknown:
        raise TypeError(
            f"{where}: unknown hyperparameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} (accepted: {', '.join(sorted(fields))})")
    values = {**base, **{k: v for k, v in overrides.items() if k in fields}}
    return info.hyperparams(**values)


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Params (by name) that share a hyperparameter record other than the optimizer's top-level one.

    ``lr_scale`` is timm's layer-decay factor: like timm, it has no effect by itself; a per-step ``lr`` override
    (what a timm scheduler writes) is multiplied by it for this group.
    """

    names: tuple[str, ...]
    hyperparams: Hyperparams
    lr_scale: float = 1.0


class Optimizer:
    """A registered optimizer bound to validated hyperparameters: visible data plus two pure functions.

    Attributes
    ----------
    info : OptimInfo
        The registry entry (name, description, kernel, capability flags).
    hyperparams : Hyperparams
        The frozen top-level record.
    groups : tuple of ParamGroup
        Per-group records, addressed by param name.
    """

    def __init__(self, info: OptimInfo, hyperparams: Hyperparams,
                 groups: Iterable[Mapping[str, Any]] | None = None) -> None:
        self.info = info
        self.hyperparams = hyperparams
        built = []
        seen: dict[str, int] = {}
        for i, g in enumerate(groups or ()):
            if not isinstance(g, Mapping) or "params" not in g:
                raise TypeError(f"groups[{i}] must be a dict with a 'params' list of names, got {g!r}")
            names = g["params"]
            if isinstance(names, str) or not all(isinstance(n, str) for n in names):
                raise TypeError(f"groups[{i}]['params'] must be a list of param names, got {names!r}")
            for n in names:
                if n in seen:
                    raise ValueError(f"param {n!r} appears in more than one group (groups[{seen[n]}] and groups[{i}])")
                seen[n] = i
            over = {k: v for k, v in g.items() if k not in ("params", "lr_scale")}
            lr_scale = g.get("lr_scale", 1.0)
            if isinstance(lr_scale, bool) or not isinstance(lr_scale, (int, float)) or not lr_scale >= 0:
                raise ValueError(f"groups[{i}]['lr_scale'] must be a number >= 0, got {lr_scale!r}")
            base = hyperparams.as_dict()
            built.append(ParamGroup(tuple(names), _make_record(info, base, over, where=f"groups[{i}]"),
                                    float(lr_scale)))
        self.groups = tuple(built)
        self._group_of = {n: grp.hyperparams for grp in self.groups for n in grp.names}
        self._lr_scale = {id(grp.hyperparams): grp.lr_scale for grp in self.groups}
        self._layouts: dict[tuple, Layout] = {}  # (record structure, shape, dtype, array type) -> the slots
        self._memory_checked: tuple | None = None  # the arrays whose memory the last in-place step checked

    @property
    def name(self) -> str:
        return self.info.name

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparams.as_dict().items())
        extra = f", groups={len(self.groups)}" if self.groups else ""
        return f"Optimizer({self.info.name!r}, {hp}{extra})"

    def hyperparams_for(self, name: str) -> Hyperparams:
        """The record that applies to the param called ``name``."""
        return self._group_of.get(name, self.hyperparams)

    # ------------------------------------------------------------------------------------------------- init
    def init(self, params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """The initial state: ``{name: {slot: array}}`` with torch's slot names (slots torch creates lazily at
        the first step, such as SGD's ``momentum_buffer``, appear after the first step)."""
        _check_params(params)
        missing = [n for n in self._group_of if n not in params]
        if missing:
            raise ValueError(f"groups name params that are not in params: {missing}")
        if not params:
            return {}
        xp = _namespace(params.values(), what="params")
        return {n: self._init_one(xp, n, p) for n, p in params.items()}

    def _init_one(self, xp: Any, name: str, p: Any, record: Hyperparams | None = None) -> dict[str, Any]:
        if not self.info.init:
            return {}
        if self.info.half_compute == "float32" and is_half(xp, p.dtype):
            p = xp.astype(p, xp.float32)  # float32 state for half-precision params (the anchor's own)
        return dict(self.info.init(xp, p, record if record is not None else self.hyperparams_for(name)))

    # ------------------------------------------------------------------------------------------------- step
    def step(self, params: Mapping[str, Any], grads: Mapping[str, Any | None], state: Mapping[str, Mapping],
             *, copy: bool | None = True, hyperparams: Mapping[str, Any] | None = None,
             **inputs: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """One optimization step; returns ``(new_params, new_state)``.

        Parameters
        ----------
        params, grads, state
            Mappings keyed by param name. A grad that is ``None`` or missing leaves that param and its state
            untouched (torch skips params without ``.grad``), except a per-group counter (``info.counter ==
            'group'``: timm's Adan and LAMB), whose ``step`` slot advances on every step, as timm advances
            ``group['step']``. Grads are never mutated.
        copy
            ``True`` (default): inputs are never mutated. ``False``: params and state arrays are updated in place
            (array identity preserved) and a read-only or immutable (JAX) array raises ``ValueError`` before
            anything is written. ``None``: in place where an array is writeable, copied where it is not.
            Always use the returned dicts: slots created by a step (e.g. SGD's ``momentum_buffer``) are only there.
        hyperparams
            Per-step overrides applied to every group's record (e.g. ``{'lr': schedule(t)}``), validated.
        **inputs
            The step inputs the optimizer declares (``info.step_inputs``: LBFGS's ``closure``, SparseAdam's
            ``grad_mask``, Adahessian's ``hessian``, Kron's ``draws`` or ``seed``), validated before anything is
            written. Any other keyword raises ``TypeError``.
        """
        plan = self._plan(params, grads, state, copy, hyperparams, inputs)
        info, xp, view = self.info, plan.view.xp, plan.view
        with _no_autograd(xp):
            if info.step_fn is not None:  # a whole-step algorithm (LBFGS)
                return info.step_fn(self, view, copy=copy, **inputs)
            new_params = dict(params)
            new_state = {n: dict(s) for n, s in state.items()}
            for name in plan.idle:  # timm advances a group's counter on every step, grads or not
                new_state[name]["step"] = _advance(state[name]["step"], copy)
            if not view.active:
                return new_params, new_state
            ctx = info.prepare(xp, params, grads, state, plan.hps) if info.prepare else {}
            kernel = _accel.select(info.kernel, xp)  # the one accelerator seam: info.kernel unless one is enabled
            for name in view.active:
                p, g, hp, extra = params[name], grads[name], view.records[name], plan.per[name]
                s = {k: claim(xp, v, copy) for k, v in view.slots[name].items()} if name in state \
                    else dict(view.slots[name])
                new_params[name] = run_kernel(kernel, xp, p, g, s, hp, {**ctx, **extra} if extra else ctx, copy=copy,
                                              half_compute=info.half_compute)
                new_state[name] = s
            return new_params, new_state

    def validate(self, params: Mapping[str, Any], grads: Mapping[str, Any | None], state: Mapping[str, Mapping],
                 *, copy: bool | None = True, hyperparams: Mapping[str, Any] | None = None, **inputs: Any) -> None:
        """Every check :meth:`step` makes with these arguments, writing nothing: raises ``ValueError`` or
        ``TypeError`` where ``step`` would, returns None where ``step`` would run."""
        self._plan(params, grads, state, copy, hyperparams, inputs)

    def validate_state(self, params: Mapping[str, Any], state: Mapping[str, Mapping]) -> None:
        """Check that ``state`` (as :meth:`init` and :meth:`step` make it) is this optimizer's for ``params``: every
        param's slots present, none foreign, each an array of the expected shape, dtype, library and device, a
        list of such arrays, or a Python number of the expected type. Raises ``ValueError``/``TypeError`` naming
        the param and the slot."""
        _check_params(params)
        if not isinstance(state, Mapping):
            raise TypeError(f"state must be a mapping from names to slot dicts, got {type(state).__name__}")
        stray = [n for n in state if n not in params]
        if stray:
            raise ValueError(f"state has entries for names that are not params: {stray} (state of other params?)")
        if self.info.locality == "step":
            return  # a whole-step algorithm (LBFGS) checks its own state when it steps
        recs = self._records(None)
        self._check_layouts(params, state, {n: recs.get(n, recs[None]) for n in state})

    def _plan(self, params, grads, state, copy, hyperparams, inputs) -> "_Plan":
        """Validate the whole step (arguments, every slot of every param, step inputs) before anything is
        written; what the writing half needs."""
        if copy not in (True, False, None):
            raise ValueError(f"copy must be True, False or None, got {copy!r}")
        info = self.info
        unknown = sorted(k for k in inputs if k not in info.step_keywords)
        if unknown:
            takes = f" (it takes {', '.join(info.step_keywords)})" if info.step_keywords else ""
            raise TypeError(f"{info.name}.step() got unexpected keyword arguments: {unknown}{takes}")
        hps = self._records(hyperparams)
        xp, active = validate_step(params, grads, state, copy=copy)
        idle = idle_group_counters(params, active, state, copy=copy) if info.counter == "group" else ()
        records = {n: hps.get(n, hps[None]) for n in params}
        slots: dict[str, dict[str, Any]] = {}
        if info.locality != "step":  # a whole-step algorithm (LBFGS) checks its own state
            self._check_layouts(params, state, records)
        for n in active:
            if n not in slots:
                slots[n] = dict(state[n]) if n in state else self._init_one(xp, n, params[n])
        if copy is not True:
            _check_memory(self, params, grads, state, active, copy)
        if info.check_state is not None:
            for n in active:
                info.check_state(xp, n, params[n], slots[n], records[n])
        view = StepView(xp, params, grads, state, slots, tuple(active), {n: records[n] for n in active})
        per: dict[str, dict[str, Any]] = {n: {} for n in active}
        for inp in info.step_inputs:  # each input validated against the validated view; nothing written yet
            if inp.prepare is not None:
                for n, entries in inp.prepare(view, **{k: inputs.get(k) for k in inp.keywords}).items():
                    per[n].update(entries)
        return _Plan(view, tuple(idle), hps, per)

    def _check_layouts(self, params, state, records) -> None:
        """Check every param's slots against its layout (:mod:`arrayoptim._layout`), decided once per param
        shape, dtype and record structure."""
        keys: dict[int, tuple] = {}
        for n, slots in state.items():
            p, rec = params[n], records[n]
            rk = keys.get(id(rec))
            if rk is None:
                rk = keys[id(rec)] = structure_key(rec)
            try:
                key = (rk, tuple(p.shape), p.dtype, type(p))
                layout = self._layouts.get(key)
            except TypeError:  # an unhashable dtype: decide every time
                key, layout = None, None
            if layout is None:
                initial = self._init_one(array_namespace(p), n, p, rec)
                layout = Layout.probe(self.info, array_namespace(p), p, initial)
                if key is not None:
                    self._layouts[key] = layout
            layout.check(f"state[{n!r}]", p, slots, self.info.name)

    def _records(self, overrides: Mapping[str, Any] | None) -> dict[str | None, Hyperparams]:
        """name -> record for this step (key None: the top-level record), with per-step overrides applied."""
        recs: dict[str | None, Hyperparams] = {None: self.hyperparams}
        recs.update(self._group_of)
        if not overrides:
            return recs
        fields = set(self.info.hyperparams.field_names())
        unknown = [k for k in overrides if k not in fields]
        if unknown:
            raise TypeError(f"{self.info.name}: unknown hyperparameter override(s) {unknown}")
        cache: dict[int, Hyperparams] = {}
        for k, rec in recs.items():
            if id(rec) not in cache:
                over = dict(overrides)
                scale = self._lr_scale.get(id(rec), 1.0)
                if "lr" in over and scale != 1.0:
                    over["lr"] = over["lr"] * scale  # timm's schedulers: group lr = scheduled lr * lr_scale
                cache[id(rec)] = dataclasses.replace(rec, **over)
            recs[k] = cache[id(rec)]
        return recs


# ----------------------------------------------------------------------------------------------------- helpers

@dataclasses.dataclass(frozen=True)
class _Plan:
    """A validated step: the view, the idle group counters to advance, the records, each param's step inputs."""

    view: StepView
    idle: tuple[str, ...]
    hps: Mapping[str | None, Hyperparams]
    per: Mapping[str, Mapping[str, Any]]


def _check_memory(opt: "Optimizer", params, grads, state, active, copy) -> None:
    """With ``copy=False`` (or ``None``, for the arrays it takes in place): no array the step writes has elements
    that share memory, or shares memory with another array of the step (:func:`check_aliasing`).

    Decided once per set of arrays: the arrays checked last are kept (so their ids stay theirs), and a step over
    the same array objects at the same addresses skips the sweep. Any change (another array, a torch tensor whose
    storage moved) checks again."""
    written, read = [], []
    for n in active:
        for what, x in [(f"params[{n!r}]", params[n])] + [(f"state[{n!r}]{k}", v) for k, v in
                                                           slot_arrays(state.get(n, {}))]:
            if copy is False or _writeable(x, _kind(x)):
                written.append((what, x))
        read.append((f"grads[{n!r}]", grads[n]))
    key = (copy, tuple(id(x) for _, x in written), tuple(id(x) for _, x in read),
           tuple(x.data_ptr() for _, x in written if _kind(x).torch))
    last = opt._memory_checked
    if last is not None and last[0] == key:
        return
    check_aliasing(written, read)
    opt._memory_checked = (key, [x for _, x in written], [x for _, x in read])


class _no_autograd:
    """torch's optimizers step under ``torch.no_grad()``: so does a step on torch tensors (no graph is recorded,
    and a leaf that requires grad is updated in place as torch.optim updates it)."""

    def __init__(self, xp: Any) -> None:
        self.ctx = None
        if xp is not None and "torch" in getattr(xp, "__name__", ""):
            import sys

            self.ctx = sys.modules["torch"].no_grad()

    def __enter__(self) -> None:
        if self.ctx is not None:
            self.ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.ctx is not None:
            self.ctx.__exit__(*exc)


def idle_group_counters(params: Mapping[str, Any], active: list[str], state: Mapping[str, Mapping],
                        *, copy: bool | None) -> list[str]:
    """The params without a grad whose ``step`` slot a ``counter='group'`` step advances (checked before anything
    is written: with ``copy=False`` a read-only counter raises ``ValueError``).

    timm keeps one counter per param group and advances it on every ``step()``, also for a group in which no param
    has a grad; here every param's ``step`` slot holds its group's count, so the slots of the params without a grad
    advance too (their other slots stay untouched). A param with a grad has its slot advanced by its kernel.
    """
    out = []
    busy = set(active)
    for name in params:
        slots = state.get(name)
        if name in busy or not isinstance(slots, Mapping) or "step" not in slots:
            continue
        t = state[name]["step"]
        reason = _unwriteable(t) if copy is False and _kind(t).ns is not None else ""
        if reason:
            raise ValueError(f"copy=False but state[{name!r}]['step'] is read-only ({reason}); use copy=None or True")
        out.append(name)
    return out


def _advance(t: Any, copy: bool | None) -> Any:
    """``t + 1`` for a counter slot: in place on a claimed array, rebound on JAX arrays and Python numbers."""
    k = _kind(t)
    if k.ns is None:
        return t + 1
    t = claim(k.ns, t, copy)
    t += 1
    return t


_REAL_FLOATING: dict[tuple[int, Any], bool] = {}


def _real_floating(k: _Kind, dtype: Any) -> bool:
    try:
        return _REAL_FLOATING[id(k.ns), dtype]
    except KeyError:
        ok = bool(k.ns.isdtype(dtype, "real floating"))
        _REAL_FLOATING[id(k.ns), dtype] = ok
        return ok
    except TypeError:  # an unhashable dtype: ask every time
        return bool(k.ns.isdtype(dtype, "real floating"))


def _check_params(params: Any) -> None:
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping from names to arrays, got {type(params).__name__}")
    for n, p in params.items():
        if not isinstance(n, str):
            raise TypeError(f"param names must be str, got {n!r}")
        k = _kind(p)
        if k.ns is None:
            raise TypeError(f"params[{n!r}] must be an array, got {type(p).__name__}")
        if not _real_floating(k, p.dtype):
            raise ValueError(f"params[{n!r}] must have a real floating dtype, got {p.dtype}")


def _namespace(arrays: Iterable[Any], what: str) -> Any:
    try:
        return array_namespace(*arrays)
    except TypeError as e:
        raise ValueError(f"{what} mix array libraries: {e}") from None


def _same_device(a: Any, b: Any) -> bool:
    if _kind(a).numpy and _kind(b).numpy:
        return True
    try:
        return _device(a) == _device(b)
    except Exception:  # tracers without a concrete device: nothing to compare
        return True


def validate_step(params: Mapping[str, Any], grads: Mapping[str, Any], state: Mapping[str, Mapping],
                  *, copy: bool | None) -> tuple[Any, list[str]]:
    """The checks of a step's arrays that need no optimizer: params, grads, the state's shape (a dict of slot
    dicts keyed like params) and, with ``copy=False``, that every array the step writes can be written in place.
    Returns ``(xp, names with a grad)``. The slots themselves are checked against the optimizer's layout."""
    _check_params(params)
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads must be a mapping from names to arrays, got {type(grads).__name__}")
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping from names to slot dicts, got {type(state).__name__}")
    stray = [n for n in grads if n not in params]
    if stray:
        raise ValueError(f"grads has entries for names that are not params: {stray}")
    stray = [n for n in state if n not in params]
    if stray:
        raise ValueError(f"state has entries for names that are not params: {stray} (state of other params?)")
    for n, slots in state.items():
        if not isinstance(slots, Mapping):
            raise TypeError(f"state[{n!r}] must be a dict of slots, got {type(slots).__name__}")
    active = [n for n in params if grads.get(n) is not None]
    if not active:
        return None, active
    for n in active:
        p, g = params[n], grads[n]
        kp, kg = _kind(p), _kind(g)
        if kg.ns is None:
            raise TypeError(f"grads[{n!r}] must be an array or None, got {type(g).__name__}")
        if kg.ns is not kp.ns:
            raise ValueError(
                f"grads[{n!r}] is a {type(g).__module__}.{type(g).__name__} but its param is a "
                f"{type(p).__module__}.{type(p).__name__}: one array library per step")
        if tuple(g.shape) != tuple(p.shape):
            raise ValueError(f"grads[{n!r}] has shape {tuple(g.shape)}, its param has shape {tuple(p.shape)}")
        if not _real_floating(kg, g.dtype):
            raise ValueError(f"grads[{n!r}] must have a real floating dtype like its param, got {g.dtype}")
        if not _same_device(p, g):
            raise ValueError(f"grads[{n!r}] is on device {_device(g)}, its param on {_device(p)}")
        if copy is False:
            for what, x in [(f"params[{n!r}]", p)] + [(f"state[{n!r}]{k}", v) for k, v in
                                                       slot_arrays(state.get(n, {}))]:
                reason = _unwriteable(x)
                if reason:
                    raise ValueError(f"copy=False but {what} is read-only ({reason}); use copy=None or True")
    xp = _namespace([params[n] for n in active] + [grads[n] for n in active], what="params and grads")
    return xp, active

