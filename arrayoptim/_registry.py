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

__all__ = ["OptimInfo", "register", "list_optimizers", "get_optimizer_info", "LOOKAHEAD_PREFIX"]

LOOKAHEAD_PREFIX = "lookahead_"


@dataclasses.dataclass(frozen=True)
class OptimInfo:
    """Everything the registry knows about one optimizer name.

    Attributes
    ----------
    name, description
        The registry name (timm's spelling) and timm's description where timm registers the name.
    hyperparams
        The frozen record class; its field defaults are the anchor class's constructor defaults.
    defaults
        Registry defaults applied on top of the record's own (timm's ``OptimInfo.defaults``, e.g. ``sgd`` has
        ``nesterov=True``), before the user's keywords.
    kernel
        ``kernel(xp, p, g, s, hp, ctx) -> p``: the per-array update. ``p`` and the arrays in the slot dict ``s``
        are already claimed (safe to update with augmented operators); new slots are stored into ``s``; the
        (possibly rebound) param is returned. ``ctx`` holds global quantities computed by ``prepare``.
    init
        ``init(xp, p, hp) -> dict``: the slots that exist before the first step (torch creates some lazily:
        those appear in ``s`` during the first step instead).
    step_fn
        For optimizers that are not a per-array map (Lookahead, LBFGS): replaces the per-array driver.
    param_slots
        Slots that always have the param's shape and dtype (checked before every step).
    prepare
        ``prepare(xp, params, grads, state, hps) -> Mapping``: global quantities (e.g. a global grad norm).
    has_eps, has_momentum, has_betas, num_betas, second_order
        timm's capability flags (``has_momentum`` makes ``momentum`` default to 0.9, as timm's factory does).
    oracle_rtol
        The documented gap to the anchor run with its own internals (torch's Muon runs Newton-Schulz in bfloat16,
        timm's RAdamLegacy computes in float32, ...): ``arrayoptim verify`` compares within it instead of the
        dtype's default tolerance, and says so.
    jit_compatible
        False where the algorithm needs host-side decisions (LBFGS's line search): its step runs eagerly.
    group_step
        True where the anchor counts steps per *param group* (timm's Adan and LAMB keep ``group['step']``): before
        a step, the ``step`` slot of every param with a grad is set to the largest ``step`` slot in its group, so
        the kernel's increment gives the group's count, and the kernel's ``ctx['fresh']`` says whether this is the
        param's first grad (its own count was 0); params without a grad stay untouched (see
        :func:`arrayoptim._core.sync_group_steps`).
    upcast_half
        True where the anchor computes float16/bfloat16 params in float32 (timm's AdaBelief, Adafactor and
        RAdamLegacy): the core hands the kernel float32 copies of such a param and its grad, keeps its state in
        float32, and rounds the result back into the param once per step.
    elementwise
        True where the update of every element depends only on that element of the param, grad and slots (and on
        scalars): the kernel may run over many params packed into one buffer (:func:`arrayoptim.flat`). Options
        that take per-tensor quantities (``caution``) are refused by flat mode at construction.
    """

    name: str
    description: str
    hyperparams: type[Hyperparams]
    kernel: Callable[..., Any] | None = None
    init: Callable[..., dict] | None = None
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    step_fn: Callable[..., Any] | None = None
    prepare: Callable[..., Mapping[str, Any]] | None = None
    param_slots: tuple[str, ...] = ()
    has_eps: bool = True
    has_momentum: bool = False
    has_betas: bool = False
    num_betas: int = 2
    second_order: bool = False
    jit_compatible: bool = True
    oracle_rtol: float | None = None
    group_step: bool = False
    upcast_half: bool = False
    elementwise: bool = False

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
