"""``state_dict`` interop of :class:`~arrayoptim.torch.ArrayOptimizer` with the torch.optim / timm class of the same
algorithm (its registry ``anchor``).

The adapter keeps its state as the core computes with it: one slot dict per param, counters as 0-d tensors,
L-BFGS's history as fixed-shape arrays. ``state_dict()`` writes it in the anchor's layout
(:func:`export_state_dict`); ``load_state_dict`` reads the anchor's layout or the adapter's own
(:func:`prepare_load`, then :func:`finish_load`). What gets converted:

* **Group counters.** timm's Adan and LAMB count steps per param group (``group['step']``: a Python int in Adan,
  a 0-d CPU tensor in LAMB; registry field ``counter='group'``) and timm's Lookahead counts
  ``group['lookahead_step']``. The adapter keeps them there too (the core's per-param ``step`` /
  ``lookahead_step`` slots are made from the group's count for each step and not stored), so they save and load
  as they are; loading gives them the anchor's type. The core's ``stepped`` slot (Adan: whether a param has had a
  grad) is whether the adapter has state for the param, as in timm.
* **Host numbers.** Some anchors keep slots as Python numbers: an ``int`` ``step`` in timm's AdaBelief, Adafactor,
  Adahessian, AdamP, MADGRAD, Mars, NAdamLegacy, NvNovoGrad, RAdamLegacy and torch's SparseAdam; NAdamLegacy's
  ``m_schedule`` and LaProp's ``exp_avg_lr_1`` as ``float``. They are saved as such and loaded as 0-d tensors in
  the core's dtype.
* **Group hyperparameters spelled differently.** timm's Adafactor stores ``beta1`` and ``relative_step`` (the
  adapter: ``betas``, ``lr=None``); AdafactorBigVision's ``momentum_dtype`` is saved as a ``torch.dtype`` (``None``,
  which keeps the momentum unrounded in the param dtype, as the group's param dtype); ``exp_avg`` travels in the
  param dtype both ways (its values are ``momentum_dtype`` values; torch casts it to the param dtype on load and
  timm back to ``momentum_dtype``); Mars's
  ``betas_1d=None`` means ``betas`` (saved as ``betas``, as timm's constructor resolves it).
* **Group keys.** The adapter's groups carry the anchor's own keys: the implementation selectors its constructor
  takes (``foreach``, ``capturable``, ``differentiable``, ``fused``, with its defaults unless given; read from the
  signature for torch.optim classes, declared in :data:`ANCHOR_LAYOUTS` for timm's), and saving leaves out record
  fields the anchor keeps elsewhere (timm Adahessian's ``n_samples``, ...) while they hold their default.
* **L-BFGS's history.** torch keeps ``old_dirs``/``old_stps``/``ro`` as lists of the current history length and
  ``al`` as a list with ``None`` for entries not yet filled; the core keeps ``(history_size, n)`` /
  ``(history_size,)`` arrays (zero rows past the history; ``ro == 0`` marks them).

What no state_dict carries (timm's neither): random sources other than Kron's ``rng_state`` (Adahessian's
Rademacher ``generator``, torch's global RNG that non-``deterministic`` Kron draws from) and timm Adahessian's
Hessian estimate, which timm keeps on the param (``p.hess``; the adapter saves it as a ``hess`` slot, which timm
ignores). A resumed run therefore continues exactly for every name except Adahessian (fresh draws from the seed,
as a resumed timm run) and non-deterministic Kron (unless torch's RNG state is restored too).

Before anything is loaded the (converted) state_dict is checked against these params; a mismatch raises
``ValueError`` and leaves the optimizer unchanged: the number and sizes of the groups, every loaded group's
hyperparameters (the record's validation), the shapes of param-shaped and ``init``-created slots, slots ``init``
creates missing from a param's non-empty state, and slot names this optimizer never creates (compared with one
step of the core on a small probe of each param's rank and dtype; skipped for optimizers whose step needs more
than grads, e.g. a closure).
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Mapping

import numpy as np
import torch

import arrayoptim as ao
from arrayoptim._hyper import IMPLEMENTATION_SELECTORS
from arrayoptim._registry import LOOKAHEAD_PREFIX

__all__ = ["AnchorLayout", "ANCHOR_LAYOUTS", "STEPPED", "anchor_layout", "anchor_selectors", "core_only_slots",
           "export_state_dict", "prepare_load", "finish_load", "reference_slots"]

_LOOKAHEAD_KEYS = ("lookahead_alpha", "lookahead_k")
_LOOKAHEAD_COUNTER = "lookahead_step"
#: the core's 0-d boolean "this param has had a grad" slot (Adan; see ``OptimInfo.counter``): never stored here,
#: since the adapter, as timm, has state for a param exactly when it has had a grad
STEPPED = "stepped"


@dataclasses.dataclass(frozen=True)
class AnchorLayout:
    """How an anchor class's ``state_dict`` differs from the adapter's state (nothing, by default).

    Attributes
    ----------
    numbers
        Slot name -> Python type (``int``/``float``) for slots the anchor keeps as Python numbers.
    tensor_counters
        The anchor keeps its group ``step`` counter as a 0-d tensor (timm's LAMB), not a Python int (timm's Adan).
    to_group
        ``to_group(group, params)``: sets the anchor's own keys on a saved group dict (derived from the adapter's
        keys and the group's param tensors).
    from_group
        ``from_group(loaded, current)``: turns the anchor's keys of a loaded group dict into the adapter's (in place);
        ``current`` is this optimizer's group it replaces.
    to_state, from_state
        ``(state, groups, params)``: whole-state conversions (L-BFGS's history), in place on copies; ``params`` is
        this optimizer's param list, in state_dict order.
    selectors
        The implementation selectors the anchor keeps in every group, with its defaults; None: those of the
        torch.optim class's constructor signature (none for other anchors).
    ungrouped
        Record fields the anchor does not keep in its groups (constructor attributes, or options it reads only when
        a group sets them): left out of saved groups while they hold the record's default.
    eager
        The anchor creates the initial state of the params this predicate accepts when it is constructed, before
        any grad (torch's Adagrad: every param; timm's Adahessian: those requiring grad); None: at a param's first
        grad, as most do. The adapter creates the core's initial slots for them then too.
    """

    numbers: Mapping[str, type] = dataclasses.field(default_factory=dict)
    tensor_counters: bool = False
    to_group: Callable[[dict, list], None] | None = None
    from_group: Callable[[dict, dict], None] | None = None
    to_state: Callable[[dict, list, list], None] | None = None
    from_state: Callable[[dict, list, list], None] | None = None
    selectors: Mapping[str, Any] | None = None
    ungrouped: tuple[str, ...] = ()
    eager: Callable[[torch.Tensor], bool] | None = None


# ----------------------------------------------------------------------------------------- per-anchor conversions

def _adafactor_to(g: dict, params: list) -> None:
    betas = g.pop("betas", None)
    g["beta1"] = None if betas is None else betas[0]
    g["relative_step"] = g.get("lr") is None


def _adafactor_from(g: dict, current: dict) -> None:
    g.pop("relative_step", None)  # timm derives it from lr (None: relative step), as the core does
    if "beta1" in g:
        b1 = g.pop("beta1")
        old = g.get("betas", current.get("betas"))
        g["betas"] = None if b1 is None else (b1, old[1] if old is not None else 0.999)


def _adafactor_bv_to(g: dict, params: list) -> None:
    name = g.get("momentum_dtype")
    if name is not None:  # timm compares it with grad.dtype: a torch.dtype, not its name
        g["momentum_dtype"] = getattr(torch, name) if isinstance(name, str) else name
        return
    dtype = None  # None: the core keeps the momentum unrounded in the param dtype, so timm continues likewise
    for p in params:
        dtype = p.dtype if dtype is None else torch.promote_types(dtype, p.dtype)
    g["momentum_dtype"] = dtype or torch.bfloat16  # (timm's default for a group without params)


def _mars_to(g: dict, params: list) -> None:
    if g.get("betas_1d") is None:
        g["betas_1d"] = g.get("betas")  # timm's constructor: betas_1d or betas


def _lbfgs_to(state: dict, groups: list, params: list) -> None:
    first = groups[0]["params"][0] if groups and groups[0]["params"] else None
    st = state.get(first)
    if not st or not isinstance(st.get("ro"), torch.Tensor):
        return
    k = int((st["ro"] > 0).sum())
    for name in ("old_dirs", "old_stps"):
        if isinstance(st.get(name), torch.Tensor):
            st[name] = [st[name][i] for i in range(k)]
    st["ro"] = [st["ro"][i] for i in range(k)]
    if isinstance(st.get("al"), torch.Tensor):
        st["al"] = [st["al"][i] if i < k else None for i in range(st["al"].shape[0])]
    for name in ("t", "prev_loss"):
        if isinstance(st.get(name), torch.Tensor):
            st[name] = float(st[name])


def _lbfgs_from(state: dict, groups: list, params: list) -> None:
    first = groups[0]["params"][0] if groups and groups[0]["params"] else None
    st = state.get(first)
    if st:
        lbfgs_fixed_shape(st, sum(p.numel() for p in params), int(groups[0]["history_size"]), params[0])


def lbfgs_fixed_shape(st: dict, n: int, h: int, like: torch.Tensor) -> dict:
    """torch LBFGS's ``state[first param]`` (history lists of the current length, ``None`` in ``al``, Python
    numbers) in arrayoptim's fixed-shape form, in place: ``(h, n)`` / ``(h,)`` tensors with zero rows past the
    history, 0-d tensors for the scalars (``like``'s dtype and device). Validated against ``n`` param elements and
    ``history_size=h`` first; returns ``st``."""
    from arrayoptim.optimizers.lbfgs import SLOTS

    unknown = sorted(k for k in st if k not in SLOTS)
    if unknown:
        raise ValueError(f"loaded state dict has slots L-BFGS does not use: {unknown} (a state_dict of another "
                         "optimizer?)")

    def check(name, v, shape):
        if not isinstance(v, torch.Tensor) or tuple(v.shape) != shape:
            raise ValueError(f"loaded state dict does not fit these params: L-BFGS's {name} has shape "
                             f"{tuple(getattr(v, 'shape', ()))}, expected {shape} ({n} param elements in all, "
                             f"history_size={h}; a state_dict for a different param layout?)")

    def scalar(v):
        return v.reshape(()) if isinstance(v, torch.Tensor) else torch.tensor(float(v), dtype=like.dtype)

    for name in ("d", "prev_flat_grad"):
        if st.get(name) is not None:
            check(name, st[name], (n,))
    hist = {name: st.get(name) for name in ("old_dirs", "old_stps", "ro")}
    if any(isinstance(v, (list, tuple)) for v in hist.values()):
        lens = {name: len(v) for name, v in hist.items() if v is not None}
        if len(set(lens.values())) > 1 or max(lens.values(), default=0) > h:
            raise ValueError(f"loaded state dict's L-BFGS history has lengths {lens}, expected equal lengths of at "
                             f"most history_size={h}")
        for name in ("old_dirs", "old_stps"):
            rows = list(hist[name] or [])
            for i, r in enumerate(rows):
                check(f"{name}[{i}]", r, (n,))
            pad = [torch.zeros(n, dtype=like.dtype, device=like.device)] * (h - len(rows))
            st[name] = torch.stack([r.to(like.dtype) for r in rows] + pad) if h else torch.zeros(0, n)
        ro = [scalar(v) for v in (hist["ro"] or [])]
        st["ro"] = torch.stack(ro + [torch.zeros((), dtype=like.dtype)] * (h - len(ro)))
    if isinstance(st.get("al"), (list, tuple)):
        al = [torch.zeros((), dtype=like.dtype) if v is None else scalar(v) for v in st["al"]]
        if len(al) > h:
            raise ValueError(f"loaded state dict's L-BFGS 'al' has {len(al)} entries, expected history_size={h}")
        st["al"] = torch.stack(al + [torch.zeros((), dtype=like.dtype)] * (h - len(al)))
    for name in ("t", "prev_loss", "H_diag"):
        if st.get(name) is not None:
            st[name] = scalar(st[name])
    for name, shape in (("old_dirs", (h, n)), ("old_stps", (h, n)), ("ro", (h,)), ("al", (h,)), ("t", ()),
                        ("H_diag", ()), ("prev_loss", ())):
        if st.get(name) is not None:
            check(name, st[name], shape)
    return st


_INT_STEP = {"step": int}
_FOREACH = {"foreach": None}

#: anchor (``OptimInfo.anchor``) -> how its state_dict differs; anchors not listed store what the adapter stores
ANCHOR_LAYOUTS: dict[str, AnchorLayout] = {
    "timm.optim.AdaBelief": AnchorLayout(numbers=_INT_STEP, selectors=_FOREACH),
    "timm.optim.Adafactor": AnchorLayout(numbers=_INT_STEP, to_group=_adafactor_to, from_group=_adafactor_from),
    "timm.optim.AdafactorBigVision": AnchorLayout(to_group=_adafactor_bv_to),
    "timm.optim.AdamP": AnchorLayout(numbers=_INT_STEP),
    "timm.optim.AdamWLegacy": AnchorLayout(selectors={"capturable": False, "foreach": None}),
    "timm.optim.Adan": AnchorLayout(selectors=_FOREACH),
    "timm.optim.Adopt": AnchorLayout(selectors={"capturable": False, "differentiable": False, "foreach": None}),
    "timm.optim.adahessian.Adahessian": AnchorLayout(numbers=_INT_STEP, eager=lambda p: p.requires_grad,
                                                     ungrouped=("avg_conv_kernel", "n_samples", "update_each")),
    "timm.optim.kron.Kron": AnchorLayout(ungrouped=("deterministic",)),
    "timm.optim.LaProp": AnchorLayout(numbers={"exp_avg_lr_1": float}, selectors=_FOREACH),
    "timm.optim.Lamb": AnchorLayout(tensor_counters=True, selectors=_FOREACH),
    "timm.optim.Lars": AnchorLayout(selectors=_FOREACH),
    "timm.optim.Lion": AnchorLayout(selectors=_FOREACH),
    "timm.optim.MADGRAD": AnchorLayout(numbers=_INT_STEP),
    "timm.optim.Mars": AnchorLayout(numbers=_INT_STEP, to_group=_mars_to),
    "timm.optim.muon.Muon": AnchorLayout(selectors={"capturable": False},
                                         ungrouped=("adamw_lr", "ns_dtype", "use_fallback", "use_muon")),
    "timm.optim.NAdamLegacy": AnchorLayout(numbers={"step": int, "m_schedule": float}),
    "timm.optim.NAdamW": AnchorLayout(selectors={"capturable": False, "foreach": None}),
    "timm.optim.NvNovoGrad": AnchorLayout(numbers=_INT_STEP),
    "timm.optim.RAdamLegacy": AnchorLayout(numbers=_INT_STEP),
    "timm.optim.RMSpropTF": AnchorLayout(selectors=_FOREACH),
    "timm.optim.SGDW": AnchorLayout(selectors={"differentiable": False, "foreach": None}),
    "torch.optim.Adagrad": AnchorLayout(eager=lambda p: True),
    "torch.optim.LBFGS": AnchorLayout(to_state=_lbfgs_to, from_state=_lbfgs_from),
    "torch.optim.Muon": AnchorLayout(ungrouped=("ns_dtype",)),
    "torch.optim.SparseAdam": AnchorLayout(numbers=_INT_STEP),
}
_IDENTITY = AnchorLayout()


def anchor_layout(opt: Any) -> AnchorLayout:
    """The :class:`AnchorLayout` of ``opt``'s anchor (the identity for anchors not listed)."""
    return ANCHOR_LAYOUTS.get(opt._info.anchor, _IDENTITY)


def anchor_selectors(info: Any) -> dict[str, Any]:
    """The implementation selectors the anchor of ``info`` (an ``OptimInfo``) keeps in every param group, with
    its defaults (see :attr:`AnchorLayout.selectors`)."""
    declared = ANCHOR_LAYOUTS.get(info.anchor, _IDENTITY).selectors
    return dict(_signature_selectors(info.anchor) if declared is None else declared)


@functools.lru_cache(maxsize=None)
def _signature_selectors(anchor: str) -> dict[str, Any]:
    module, _, name = anchor.rpartition(".")
    cls = getattr(torch.optim, name, None) if module == "torch.optim" else None
    if cls is None:
        return {}
    params = inspect.signature(cls).parameters
    return {k: v.default for k, v in params.items() if k in IMPLEMENTATION_SELECTORS and v.default is not v.empty}


def _lookahead(opt: Any) -> bool:
    return opt.opt_name.startswith(LOOKAHEAD_PREFIX)


def core_only_slots(opt: Any) -> tuple[str, ...]:
    """Per-param slots of the core that the anchor keeps elsewhere: group counters (in the group dict) and
    ``stepped`` (whether the anchor has state for the param)."""
    out = ("step",) if opt._info.counter == "group" else ()
    return out + ((_LOOKAHEAD_COUNTER,) if _lookahead(opt) else ()) + (STEPPED,)


def _group_counter(v: Any, tensor: bool, copies: dict[int, torch.Tensor]) -> Any:
    """A loaded group counter as the anchor keeps it: a 0-d CPU tensor (its dtype kept; a number gets timm's
    default-dtype one) or a Python int. Groups that share one tensor share its copy (torch's ``load_state_dict``
    deep-copies the groups, which keeps such sharing: timm then advances the shared counter once per group)."""
    if not tensor:
        return _as_number(v)
    if isinstance(v, torch.Tensor):
        if id(v) not in copies:
            copies[id(v)] = v.detach().reshape(()).to("cpu", copy=True)
        return copies[id(v)]
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(float(v), dtype=dtype)


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - tensors and other values without a plain equality: not equal
        return False


def _as_number(v: Any, typ: type = int) -> Any:
    return typ(v.item()) if isinstance(v, torch.Tensor) else typ(v)


def _params_in_order(groups: list) -> list:
    return [p for g in groups for p in g["params"]]


# ------------------------------------------------------------------------------------------------------ saving

def export_state_dict(opt: Any, state_dict: dict) -> dict:
    """``state_dict`` (torch's packing of ``opt``'s state) in the anchor's layout; ``opt``'s state is not touched
    (slot dicts are copied; tensors are the live ones, as torch's ``state_dict`` returns them)."""
    layout = anchor_layout(opt)
    state = {pid: dict(st) for pid, st in state_dict["state"].items() if st}
    groups = [dict(g) for g in state_dict["param_groups"]]
    if layout.to_state is not None:
        layout.to_state(state, groups, _params_in_order(opt.param_groups))
    defaults = opt._info.effective_defaults()
    for g, own in zip(groups, opt.param_groups):
        for k, v in anchor_selectors(opt._info).items():  # groups loaded from another layout may lack them
            g.setdefault(k, v)
        for k in layout.ungrouped:
            if k in g and _equal(g[k], defaults.get(k)):
                del g[k]
        if layout.to_group is not None:
            layout.to_group(g, own["params"])
    for st in state.values():
        for k, typ in layout.numbers.items():
            if isinstance(st.get(k), torch.Tensor) and st[k].numel() == 1:
                st[k] = _as_number(st[k], typ)
    return {**state_dict, "state": state, "param_groups": groups}


# ----------------------------------------------------------------------------------------------------- loading

def _check_structure(opt: Any, state_dict: Any) -> None:
    if not isinstance(state_dict, Mapping) or "state" not in state_dict or "param_groups" not in state_dict:
        raise ValueError("state_dict must be a dict with 'state' and 'param_groups' (from Optimizer.state_dict()),"
                         f" got {type(state_dict).__name__} with keys "
                         f"{sorted(state_dict) if isinstance(state_dict, Mapping) else None}")
    saved = state_dict["param_groups"]
    if len(saved) != len(opt.param_groups):
        raise ValueError(f"loaded state dict has a different number of parameter groups ({len(saved)}, this "
                         f"optimizer has {len(opt.param_groups)})")
    for gi, (sg, g) in enumerate(zip(saved, opt.param_groups)):
        if not isinstance(sg, Mapping) or len(sg.get("params", ())) != len(g["params"]):
            raise ValueError(f"loaded state dict contains a parameter group that doesn't match the size of "
                             f"optimizer's group (group {gi}: {len(sg.get('params', ()))} params saved, "
                             f"{len(g['params'])} here)")


def _hparams(opt: Any, g: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: opt.defaults[k] for k in opt._fields if k in opt.defaults}
    out.update({k: g[k] for k in opt._fields if k in g})
    return out


def _lookahead_values(opt: Any, groups: list) -> dict[str, Any]:
    """The loaded groups' ``lookahead_alpha``/``lookahead_k`` (timm keeps them per group; the core has one)."""
    out = {}
    for k in _LOOKAHEAD_KEYS:
        vals = {g[k] for g in groups if k in g}
        if len(vals) > 1:
            raise ValueError(f"loaded state dict's groups have different {k} values {sorted(vals)}; arrayoptim's "
                             "Lookahead has one value for all groups")
        if vals:
            out[k] = vals.pop()
    return out


def prepare_load(opt: Any, state_dict: Any) -> tuple[dict, dict]:
    """``state_dict`` converted to the adapter's layout and checked against ``opt``'s params.

    Returns the dict for torch's ``load_state_dict`` and what :func:`finish_load` needs. Raises ``ValueError`` when
    the state_dict does not fit; ``state_dict`` and ``opt`` are never modified.
    """
    _check_structure(opt, state_dict)
    layout = anchor_layout(opt)
    groups = []
    for i, (sg, g) in enumerate(zip(state_dict["param_groups"], opt.param_groups)):
        new = dict(sg)
        if layout.from_group is not None:
            new = dict(new)
            layout.from_group(new, g)
        keep = opt._fields + (_LOOKAHEAD_KEYS if _lookahead(opt) else ())
        for k in keep:  # hyperparameters the anchor does not save keep this optimizer's values
            if k not in new and k in g:
                new[k] = g[k]
        if _lookahead(opt):
            new.setdefault(_LOOKAHEAD_COUNTER, 0)  # timm's Lookahead: its default for a group saved without it
        try:
            opt._info.hyperparams(**{k: new[k] for k in opt._fields if k in new})
        except (TypeError, ValueError) as e:
            raise ValueError(f"loaded state dict's param group {i} has hyperparameters this optimizer refuses: {e}"
                             ) from None
        groups.append(new)
    extra = {}
    if _lookahead(opt):
        extra = _lookahead_values(opt, groups)
        try:
            ao.create_optimizer(opt.opt_name, **extra)
        except (TypeError, ValueError) as e:
            raise ValueError(f"loaded state dict's lookahead settings are invalid: {e}") from None
    id_map, group_of = {}, {}
    for gi, (sg, g) in enumerate(zip(groups, opt.param_groups)):
        for pid, p in zip(sg["params"], g["params"]):
            id_map[pid], group_of[pid] = p, gi
    state = {}
    for pid, st in state_dict["state"].items():
        if pid not in id_map:
            raise ValueError(f"loaded state dict has state for param id {pid!r}, which no saved group lists")
        if not isinstance(st, Mapping):
            raise ValueError(f"loaded state dict's state[{pid!r}] is a {type(st).__name__}, expected a dict of slots")
        state[pid] = dict(st)
    if layout.from_state is not None:
        layout.from_state(state, groups, _params_in_order(opt.param_groups))
    skip = core_only_slots(opt)
    copies: dict[int, torch.Tensor] = {}  # one copy per loaded counter tensor: groups sharing one keep sharing it
    for g in groups:
        for pid in g["params"]:  # per-param counters (a functional state_dict): the group's, where timm has them
            for c in skip:
                v = state.get(pid, {}).pop(c, None)
                if v is not None and c != STEPPED and (c == _LOOKAHEAD_COUNTER or opt._info.counter == "group"):
                    g.setdefault(c, v)
        if opt._info.counter == "group" and "step" in g:
            g["step"] = _group_counter(g["step"], layout.tensor_counters, copies)
        if _LOOKAHEAD_COUNTER in g:
            g[_LOOKAHEAD_COUNTER] = _as_number(g[_LOOKAHEAD_COUNTER])
    refs: dict[int, dict] = {}
    cache: dict[tuple, tuple] = {}
    for pid, st in state.items():
        p, gi = id_map[pid], group_of[pid]
        key = (gi, tuple(p.shape), p.dtype)
        if key not in cache:
            cache[key] = reference_slots(opt, p, groups[gi], extra)
        ref, known = cache[key]
        _check_slots(opt, pid, p, st, {k: v for k, v in ref.items() if k not in skip}, known)
        refs[id(p)] = _with_numbers(ref, layout, p)
    out = {**state_dict, "state": state, "param_groups": groups}
    return out, {"refs": refs, "lookahead": extra}


def _check_slots(opt: Any, pid: Any, p: torch.Tensor, st: dict, ref: dict, known: set | None) -> None:
    param_slots = set(opt._info.param_slots)
    for k, v in st.items():
        if not isinstance(v, torch.Tensor):
            continue
        want = None
        r = ref.get(k)
        if r is not None and _is_array(r) and not getattr(r, "_probe", False):
            want = tuple(r.shape)
        elif k in param_slots:
            want = tuple(p.shape)
        if want is not None and tuple(v.shape) != want and not (want == () and v.numel() == 1):
            raise ValueError(f"loaded state dict does not fit this optimizer's params: state[{pid!r}][{k!r}] "
                             f"has shape {tuple(v.shape)}, expected {want} for a param of shape "
                             f"{tuple(p.shape)} (a state_dict for a different param layout?)")
    if not st:
        return
    missing = sorted(k for k, r in ref.items() if k not in st and not getattr(r, "_probe", False))
    if missing:
        raise ValueError(f"loaded state dict's state[{pid!r}] lacks the slots {missing} that {opt.opt_name} keeps "
                         f"(has {sorted(st)}; a state_dict of another optimizer?)")
    if known is not None:
        unknown = sorted(k for k in st if k not in known)
        if unknown:
            raise ValueError(f"loaded state dict's state[{pid!r}] has slots {opt.opt_name} does not use: {unknown} "
                             f"(a state_dict of another optimizer?)")


class _ProbeRef(np.ndarray):
    """A reference slot seen only in the probe step (its shape is the probe's, not the param's)."""

    _probe = True


def reference_slots(opt: Any, p: torch.Tensor, group: Mapping[str, Any] | None = None,
                    lookahead: Mapping[str, Any] | None = None) -> tuple[dict, set | None]:
    """``(ref, known)`` for a param of ``p``'s shape and dtype under ``group``'s hyperparameters.

    ``ref``: the slots ``init`` creates (on a zero param of ``p``'s shape), plus the slots one core step on a small
    probe of ``p``'s rank creates that ``init`` does not (marked as probe values: names, types and dtypes only).
    ``known``: every slot name this optimizer keeps, or None when the probe step cannot run (its step needs more
    than grads: a closure, a Hessian, random draws).
    """
    group = opt.param_groups[0] if group is None else group
    hp = _hparams(opt, group)
    if _lookahead(opt):
        hp.update({k: opt.defaults[k] for k in _LOOKAHEAD_KEYS if k in opt.defaults})
        hp.update(lookahead or {})
    try:
        core = ao.create_optimizer(opt.opt_name, **hp)
    except (TypeError, ValueError):  # pragma: no cover - validated before
        return {}, None
    np_dtype = {torch.float64: np.float64, torch.float16: np.float16}.get(p.dtype, np.float32)
    zero = np.zeros(tuple(p.shape), dtype=np_dtype)
    try:
        ref = dict(core.init({"x": zero})["x"])
    except Exception:  # pragma: no cover - an init that needs more than a zero param: no reference
        ref = {}
    probe = np.full(tuple(min(d, 2) for d in p.shape), 0.5, dtype=np_dtype)
    try:
        _, state = core.step({"x": probe}, {"x": np.ones_like(probe)}, core.init({"x": probe}))
    except Exception:  # its step needs more than grads (closure, hessian, draws, ...)
        return ref, None
    known = set(ref) | set(state["x"]) | set(opt._info.param_slots)
    if _lookahead(opt):
        known |= {_LOOKAHEAD_COUNTER, "lookahead_slow_buff"}  # the slow weights appear at the k-th step
    for k, v in state["x"].items():
        if k in ref:
            continue
        if _is_array(v):
            v = np.asarray(v)
            if v.shape == probe.shape:  # param-shaped: a zero-strided stand-in of the param's shape
                v = np.broadcast_to(np.zeros((), dtype=v.dtype), tuple(p.shape))
            v = v.view(_ProbeRef)
        ref[k] = v
    return ref, known


def _with_numbers(ref: dict, layout: AnchorLayout, p: torch.Tensor) -> dict:
    """``ref`` plus stand-ins for the anchor's host-number slots it lacks (when no probe step could run): 0-d, in
    the dtype the core keeps them (``step``: float64 for float64 params, float32 otherwise; others: the param's)."""
    missing = [k for k in layout.numbers if k not in ref]
    if not missing:
        return ref
    out = dict(ref)
    for k in missing:
        if k == "step":
            dtype = np.float64 if p.dtype == torch.float64 else np.float32
        else:
            dtype = {torch.float64: np.float64, torch.float16: np.float16}.get(p.dtype, np.float32)
        out[k] = np.zeros((), dtype=dtype)
    return out


def finish_load(opt: Any, plan: Mapping[str, Any]) -> None:
    """After torch's ``load_state_dict``: slot types as the core computes with them, and Lookahead's settings."""
    refs = plan["refs"]
    for p, st in list(opt.state.items()):
        if st:
            opt._normalize(p, st, refs.get(id(p), {}))
    for k, v in plan["lookahead"].items():
        opt.defaults[k] = v
    for g in opt.param_groups:
        for k, v in plan["lookahead"].items():
            g[k] = v
    opt._core_cache = None


def _is_array(v: Any) -> bool:
    return hasattr(v, "__dlpack__") or isinstance(v, np.generic)
