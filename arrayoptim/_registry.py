"""The optimizer registry: one :class:`OptimInfo` per name, registered next to each optimizer's kernel.

Mirrors timm's ``timm.optim._optim_factory`` API (``OptimInfo``, ``list_optimizers`` with fnmatch filters,
``get_optimizer_info``) without its repetition: a family module registers its base spec once, with its named
variants as data (``{"cadamw": ("Cautious AdamW", {"caution": True})}``).
"""
from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from typing import Any, Callable, Iterable, Mapping

from ._hyper import Hyperparams

__all__ = ["OptimInfo", "StepInput", "StepView", "LOCALITIES", "COUNTERS", "HALF_COMPUTE", "register", "list_optimizers", "get_optimizer_info", "LOOKAHEAD_PREFIX"]

LOOKAHEAD_PREFIX = "lookahead_"


#: How far an update reaches, from the narrowest: each element on its own; reductions over one tensor (norms,
#: means, factored moments); whole-matrix algebra (Newton-Schulz, Kronecker factors); the whole step at once
#: (a line search over every param).
LOCALITIES = ("element", "tensor", "matrix", "step")
#: Who owns the ``step`` counter: each param (torch's ``state[p]['step']``) or each param group (timm's
#: ``group['step']`` in Adan and LAMB).
COUNTERS = ("param", "group")
#: Where the state of float16/bfloat16 params lives; both compute element-wise in float32 (torch's CPU "opmath"):
#: ``"param"``, each slot in the dtype it was created in (half, as torch's Adam keeps them), rounded once per
#: stored value per step; ``"float32"``, float32 state and one rounding back into the param per step (timm's
#: AdaBelief, Adafactor, RAdamLegacy).
HALF_COMPUTE = ("param", "float32")


@dataclasses.dataclass(frozen=True)
class StepView:
    """What a step input's ``prepare`` (and a whole-step ``step_fn``) sees: params, grads and state after every
    check has passed, before anything is written."""

    xp: Any  # None when no param has a grad
    params: Mapping[str, Any]
    grads: Mapping[str, Any]
    state: Mapping[str, Mapping[str, Any]]  # as given
    slots: Mapping[str, Mapping[str, Any]]  # active name -> its slots (the initial ones on its first step)
    active: tuple[str, ...]  # the params with a grad, in params' order
    records: Mapping[str, Hyperparams]  # param name -> this step's record

    def record(self, name: str) -> Hyperparams:
        return self.records[name]


@dataclasses.dataclass(frozen=True)
class StepInput:
    """An input a step takes beyond grads, passed to ``opt.step`` by keyword.

    Attributes
    ----------
    name
        The keyword (``'grad_mask'``, ``'hessian'``, ``'draws'``, ``'closure'``).
    doc
        One line: what it is and its form.
    prepare
        ``prepare(view, **values) -> {param name: ctx entries}``: validates the given values (``values`` maps
        ``name`` and every keyword in ``also`` to what the caller passed, None when absent) against the validated
        :class:`StepView` and returns what each param's kernel finds in its ``ctx``. It runs before anything is
        written and raises ``TypeError``/``ValueError`` naming the keyword. None for an input that a whole-step
        function reads itself (LBFGS's closure).
    also
        Further keywords read by the same ``prepare`` (Kron's ``seed``, an alternative to ``draws``).
    host
        True when the input or what ``prepare`` decides needs concrete values on the host (data-dependent
        schedules): such a step cannot be traced by ``jax.jit``.
    """

    name: str
    doc: str
    prepare: Callable[..., Mapping[str, Mapping[str, Any]]] | None = None
    also: tuple[str, ...] = ()
    host: bool = False

    @property
    def keywords(self) -> tuple[str, ...]:
        return (self.name,) + self.also


@dataclasses.dataclass(frozen=True)
class OptimInfo:
    """Everything the registry knows about one optimizer name: what the algorithm is, not how the loop bends.

    The minimal registration is ``OptimInfo(name, description, HyperparamsClass, kernel=kernel, init=init,
    param_slots=(...))``; every other field has a default that describes a plain per-tensor optimizer.

    Attributes
    ----------
    name, description
        The registry name (timm's spelling) and timm's description where timm registers the name.
    hyperparams
        The frozen record class; its field defaults are the anchor class's constructor defaults.
    kernel
        ``kernel(xp, p, g, s, hp, ctx) -> p``: the per-array update. ``p`` and the arrays in the slot dict ``s``
        are already claimed (safe to update with augmented operators); new slots are stored into ``s``; the
        (possibly rebound) param is returned. ``ctx`` holds the global quantities of ``prepare`` and this param's
        entries from the step inputs.
    init
        ``init(xp, p, hp) -> dict``: the slots that exist before the first step (torch creates some lazily:
        those appear in ``s`` during the first step instead).
    defaults
        Registry defaults applied on top of the record's own (timm's ``OptimInfo.defaults``, e.g. ``sgd`` has
        ``nesterov=True``), before the user's keywords.
    locality
        How far the update reaches (one of :data:`LOCALITIES`). ``'element'``: every element depends only on the
        same element of the param, grad and slots, so the kernel may run over many params packed into one buffer
        (:func:`arrayoptim.flat`; options with per-tensor quantities such as ``caution`` are refused there).
        ``'tensor'`` (the default): reductions over a tensor. ``'matrix'``: whole-matrix algebra. ``'step'``: the
        update needs every param at once; ``step_fn`` replaces the per-array loop.
    step_inputs
        The :class:`StepInput` s a step takes beyond grads, each validated before anything is written.
    half_compute
        The state dtype of float16/bfloat16 params (one of :data:`HALF_COMPUTE`); the kernel always computes in
        float32 for them (:func:`arrayoptim._half.run_kernel`). ``'param'`` (default, torch's rule): float32
        copies of the param, the grad and every half slot go in; the param and each such slot are rounded once
        back into their own storage and dtype (identity kept with ``copy=False``); a slot the kernel creates with
        the param's shape (a lazy momentum buffer) takes the param's dtype; the float32 ``step`` stays float32.
        ``'float32'``: the state is float32 and only the param is rounded back, once per step.
    counter
        Who owns the ``step`` count (one of :data:`COUNTERS`). ``'group'`` (timm's Adan and LAMB, which keep
        ``group['step']`` and advance it on every ``step()``, grads or not): the count is still state, one ``step``
        slot per param holding its group's count; the kernel advances it for a param with a grad, the core for
        every other param that has one, so all slots of a group stay equal and the state keeps one structure.
        Converters move it to where the anchor keeps it (the torch adapter's ``param_groups[i]['step']``,
        :func:`arrayoptim.to_state_dict`). A kernel that must tell a param's first grad from later ones keeps a
        0-d boolean ``stepped`` slot, false until then (Adan); anchors express it as the param having state.
    param_slots
        Slots that always have the param's shape and dtype (checked before every step).
    check_state
        ``check_state(xp, name, p, slots, hp)``: validates a param's slots beyond ``param_slots`` (lists of
        factors, host counters) before anything is written; raises ``ValueError`` naming the slot.
    prepare
        ``prepare(xp, params, grads, state, hps) -> Mapping``: global quantities (e.g. a global grad norm).
    step_fn
        For whole-step algorithms (``locality='step'``, LBFGS): ``step_fn(opt, view, *, copy, **inputs) ->
        (params, state)`` replaces the per-array loop; ``view`` is the validated :class:`StepView`.
    has_eps, has_momentum, has_betas, num_betas, second_order
        timm's capability flags (``has_momentum`` makes ``momentum`` default to 0.9, as timm's factory does).
    """

    name: str
    description: str
    hyperparams: type[Hyperparams]
    kernel: Callable[..., Any] | None = None
    init: Callable[..., dict] | None = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    locality: str = "tensor"
    step_inputs: tuple[StepInput, ...] = ()
    half_compute: str = "param"
    counter: str = "param"
    param_slots: tuple[str, ...] = ()
    check_state: Callable[..., None] | None = None
    prepare: Callable[..., Mapping[str, Any]] | None = None
    step_fn: Callable[..., Any] | None = None
    has_eps: bool = True
    has_momentum: bool = False
    has_betas: bool = False
    num_betas: int = 2
    second_order: bool = False

    def __post_init__(self) -> None:
        for field, allowed in (("locality", LOCALITIES), ("half_compute", HALF_COMPUTE), ("counter", COUNTERS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"OptimInfo {self.name!r}: {field}={getattr(self, field)!r} must be one of {allowed}")
        if (self.step_fn is None) == (self.kernel is None):
            raise ValueError(f"OptimInfo {self.name!r}: give a kernel (per-array) or a step_fn (whole step), not "
                             f"{'both' if self.kernel else 'neither'}")
        if (self.step_fn is not None) != (self.locality == "step"):
            raise ValueError(f"OptimInfo {self.name!r}: step_fn goes with locality='step' (got {self.locality!r})")
        if not isinstance(self.step_inputs, tuple) or not all(isinstance(i, StepInput) for i in self.step_inputs):
            raise TypeError(f"OptimInfo {self.name!r}: step_inputs must be a tuple of StepInput")

    @property
    def step_keywords(self) -> tuple[str, ...]:
        """Every keyword ``opt.step`` accepts beyond ``copy`` and ``hyperparams``."""
        return tuple(k for i in self.step_inputs for k in i.keywords)

    def takes(self, keyword: str) -> bool:
        """Whether a step takes ``keyword`` (``'closure'``, ``'grad_mask'``, ...)."""
        return keyword in self.step_keywords

    @property
    def traceable(self) -> bool:
        """Whether a step can run under ``jax.jit``: no whole-step host logic and no host-decided input."""
        return self.locality != "step" and not any(i.host for i in self.step_inputs)

    @property
    def anchor(self) -> str:
        return self.hyperparams.anchor

    def effective_defaults(self) -> dict[str, Any]:
        """The record's defaults with the registry's applied: what ``create_optimizer(name)`` uses."""
        out = {f.name: f.default for f in dataclasses.fields(self.hyperparams)}
        if self.has_momentum and "momentum" in out:
            out["momentum"] = 0.9  # timm's factory: momentum defaults to 0.9 for has_momentum optimizers
        out.update(self.defaults)
        return out


_REGISTRY: dict[str, OptimInfo] = {}


def register(info: OptimInfo, variants: Mapping[str, tuple[str, Mapping[str, Any]]] | None = None,
             aliases: Iterable[str] = ()) -> OptimInfo:
    """Register ``info`` and its named variants (``name -> (description, extra registry defaults)``)."""
    for name, entry in [(info.name, info)] + [
        (vname, dataclasses.replace(info, name=vname, description=desc, defaults={**info.defaults, **extra}))
        for vname, (desc, extra) in (variants or {}).items()
    ]:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"optimizer {key!r} is already registered")
        if key.startswith(LOOKAHEAD_PREFIX):
            raise ValueError(f"optimizer names may not start with {LOOKAHEAD_PREFIX!r}: {key!r}")
        unknown = set(entry.defaults) - set(entry.hyperparams.field_names())
        if unknown:
            raise ValueError(f"registry defaults of {key!r} name unknown hyperparameters: {sorted(unknown)}")
        _REGISTRY[key] = entry
    for alias in aliases:
        _REGISTRY[alias.lower()] = info
    return info


def _ensure_loaded() -> None:
    from . import optimizers  # noqa: F401  (importing the families registers them)


def list_optimizers(filter: str | Iterable[str] = "", exclude_filters: Iterable[str] | None = None,
                    with_description: bool = False) -> list:
    """Registered names, sorted, with timm's semantics.

    Parameters
    ----------
    filter
        An fnmatch pattern, or a list of them (union); ``''`` lists everything.
    exclude_filters
        Patterns removed from the result afterwards.
    with_description
        Return ``(name, description)`` tuples.

    Examples
    --------
    >>> import arrayoptim as ao
    >>> ao.list_optimizers(['adam', 'sgd'])
    ['adam', 'sgd']
    >>> ao.list_optimizers('adamw', with_description=True)
    [('adamw', 'torch.optim.AdamW, Adam with decoupled weight decay')]
    """
    _ensure_loaded()
    names = sorted(_REGISTRY)
    if filter:
        patterns = [filter] if isinstance(filter, str) else list(filter)
        names = sorted({n for p in patterns for n in fnmatch.filter(names, p)})
    for pattern in exclude_filters or ():
        names = [n for n in names if not fnmatch.fnmatch(n, pattern)]
    if with_description:
        return [(n, _REGISTRY[n].description) for n in names]
    return names


def get_optimizer_info(name: str) -> OptimInfo:
    """The :class:`OptimInfo` of ``name`` (``ValueError`` with close matches if unknown).

    A ``lookahead_`` prefix is not part of a registered name: look up the base name.
    """
    _ensure_loaded()
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a str, got {name!r}")
    key = name.lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown optimizer name {name!r}{hint} (see arrayoptim.list_optimizers())")
