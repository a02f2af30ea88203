"""timm's ``create_optimizer_v2`` param-group rules for named params, in pure Python (no torch, no timm).

Params are described by name and number of dimensions, so any array library works: pass a mapping
``{name: array}`` (``array.ndim`` is read) or ``{name: ndim}``. Groups come back as torch-style dicts addressed by
param name, ``[{'params': [names], 'weight_decay': ..., ...}]``, in timm's order (which fixes state_dict indices).

* :func:`param_groups_weight_decay` — timm's no-decay / decay split (``filter_bias_and_bn``, ``no_weight_decay``).
* :func:`param_groups_layer_decay` — BEiT-style layer-wise lr decay: groups carry ``lr_scale``.
* :func:`group_with_matcher` — timm's ``group_matcher`` semantics (regex specs -> layer ids).
* :func:`create_groups` — the factory's whole grouping decision, returning ``(groups, weight_decay)`` to pass to
  :func:`arrayoptim.create_optimizer` (``lr_scale`` dropped or folded into ``lr``, see ``apply_lr_scale``).

Examples
--------
>>> import numpy as np
>>> from arrayoptim.grouping import create_groups
>>> params = {'fc.weight': np.zeros((3, 4)), 'fc.bias': np.zeros(3)}
>>> groups, wd = create_groups(params, weight_decay=0.05)
>>> groups, wd
([{'params': ['fc.bias'], 'weight_decay': 0.0}, {'params': ['fc.weight'], 'weight_decay': 0.05}], 0.0)
"""
from __future__ import annotations

import fnmatch
import math
import re
from itertools import chain
from typing import Any, Callable, Collection, Iterable, Mapping

__all__ = ["param_groups_weight_decay", "param_groups_layer_decay", "group_with_matcher", "auto_group_layers",
           "create_groups", "MATCH_PREV_GROUP"]

#: a matcher suffix meaning "same layer as the previous group" (timm's value)
MATCH_PREV_GROUP = (99999,)


def _ndims(named: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[str, int]]:
    items = named.items() if isinstance(named, Mapping) else named
    out = []
    for name, v in items:
        if not isinstance(name, str):
            raise TypeError(f"param names must be str, got {name!r}")
        if isinstance(v, bool) or not (isinstance(v, int) or hasattr(v, "ndim")):
            raise TypeError(f"params[{name!r}] must be an array (with .ndim) or an int ndim, got {type(v).__name__}")
        out.append((name, int(v) if isinstance(v, int) else int(v.ndim)))
    return out


def _matches(name: str, patterns: Collection[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in patterns)


def param_groups_weight_decay(
    named_params: Mapping[str, Any] | Iterable[tuple[str, Any]],
    weight_decay: float = 1e-5,
    weight_decay_exclude_1d: bool = True,
    no_weight_decay_list: Collection[str] = (),
    fallback_list: Collection[str] = (),
    fallback_no_weight_decay: bool = False,
) -> list[dict[str, Any]]:
    """timm's weight-decay split.

    Parameters
    ----------
    named_params
        ``{name: array or ndim}`` (or ``(name, array)`` pairs), trainable params only, in model order.
    weight_decay
        Falsy (0): every param goes to a no-decay group.
    weight_decay_exclude_1d
        ``filter_bias_and_bn``: params with ``ndim <= 1`` or a name ending in ``.bias`` get no decay.
    no_weight_decay_list
        ``fnmatch`` patterns (the model's ``no_weight_decay()``) that get no decay.
    fallback_list, fallback_no_weight_decay
        Params for a hybrid optimizer's fallback path (Muon's AdamW): their groups carry ``use_fallback=True``;
        ``fallback_no_weight_decay`` adds the no-decay patterns to the fallback list.

    Returns
    -------
    list of dict
        Non-empty groups in timm's order: no-decay, decay, no-decay fallback, decay fallback.
    """
    if fallback_no_weight_decay:
        fallback_list = set(fallback_list) | set(no_weight_decay_list)
    buckets: dict[tuple[bool, bool], list[str]] = {(d, f): [] for d in (False, True) for f in (False, True)}
    for name, ndim in _ndims(named_params):
        fallback = _matches(name, fallback_list)
        decay = bool(weight_decay) and not (
            (weight_decay_exclude_1d and (ndim <= 1 or name.endswith(".bias"))) or _matches(name, no_weight_decay_list))
        buckets[(decay, fallback)].append(name)
    groups = []
    for fallback in (False, True):
        for decay in (False, True):
            names = buckets[(decay, fallback)]
            if names:
                g = {"params": names, "weight_decay": weight_decay if decay else 0.0}
                if fallback:
                    g["use_fallback"] = True
                groups.append(g)
    return groups


def group_with_matcher(names: Iterable[str], group_matcher: Mapping[str, Any] | Callable[[str], Any]) -> dict[str, int]:
    """Layer id per name from a timm ``group_matcher`` (``model.group_matcher(coarse=False)``).

    A dict matcher maps group names to a regex, or to a list of ``(regex, suffix)`` pairs; each name gets the
    ordinal tuple ``(group index, *captured ints, *suffix)`` of the first spec that matches (``inf`` if none: the
    head), the distinct tuples are sorted and numbered from 0, and a tuple ending in :data:`MATCH_PREV_GROUP`
    joins the previous id. A callable matcher returns the ordinal (or tuple) itself.
    """
    names = list(names)
    if isinstance(group_matcher, Mapping):
        specs = []
        for ordinal, spec in enumerate(group_matcher.values()):
            if spec is None:
                continue
            if isinstance(spec, (tuple, list)):
                specs += [(re.compile(s[0]), (ordinal,), s[1]) for s in spec]
            else:
                specs.append((re.compile(spec), (ordinal,), None))

        def key(name):
            for rx, prefix, suffix in specs:
                m = rx.match(name)
                if m:
                    return tuple(float(x) for x in chain.from_iterable(p for p in (prefix, m.groups(), suffix) if p))
            return (math.inf,)
    elif callable(group_matcher):
        def key(name):
            k = group_matcher(name)
            return tuple(k) if isinstance(k, Iterable) and not isinstance(k, str) else (k,)
    else:
        raise TypeError(f"group_matcher must be a dict of regex specs or a callable, got {group_matcher!r}")
    by_key: dict[tuple, list[str]] = {}
    for n in names:
        by_key.setdefault(key(n), []).append(n)
    out, lid = {}, -1
    for k in sorted(by_key):
        if lid < 0 or k[-1] != MATCH_PREV_GROUP[0]:
            lid += 1
        for n in by_key[k]:
            out[n] = lid
    return out


def auto_group_layers(names: Iterable[str], head_prefix: str | Collection[str] | None = None,
                      layers_per_group: int = 12, num_groups: int | None = None) -> dict[str, int]:
    """timm's fallback layer ids for models without a ``group_matcher``: head params (names starting with
    ``head_prefix``, the model's ``pretrained_cfg['classifier']``; every param when it is None) get the last id,
    the others are chunked ``layers_per_group`` consecutive params per layer."""
    def in_head(n):
        if not head_prefix:
            return True
        if isinstance(head_prefix, (tuple, list, set, frozenset)):
            return any(n.startswith(h) for h in head_prefix)
        return n.startswith(head_prefix)

    names = list(names)
    trunk = [n for n in names if not in_head(n)]
    head = [n for n in names if in_head(n)]
    if num_groups is not None:
        layers_per_group = -(len(trunk) // -num_groups)
    chunks = [trunk[i:i + layers_per_group] for i in range(0, len(trunk), layers_per_group)]
    out = {n: i for i, chunk in enumerate(chunks) for n in chunk}
    out.update({n: len(chunks) for n in head})
    return out


def param_groups_layer_decay(
    named_params: Mapping[str, Any] | Iterable[tuple[str, Any]],
    layer_map: Mapping[str, int],
    weight_decay: float = 0.05,
    no_weight_decay_list: Collection[str] = (),
    fallback_list: Collection[str] = (),
    fallback_no_weight_decay: bool = False,
    weight_decay_exclude_1d: bool = True,
    layer_decay: float = 0.75,
    min_scale: float = 0.0,
    no_opt_scale: float | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """BEiT-style layer-wise lr decay, timm's rules.

    Parameters
    ----------
    named_params
        Trainable params, ``{name: array or ndim}``, in model order.
    layer_map
        Layer id per name over **all** params (:func:`group_with_matcher` or :func:`auto_group_layers`); names
        missing from it get the last id.
    layer_decay, min_scale
        ``lr_scale = max(min_scale, layer_decay ** (num_layers - 1 - layer_id))``.
    no_opt_scale
        Params whose scale is below it are excluded from optimization.
    weight_decay, no_weight_decay_list, weight_decay_exclude_1d, fallback_list, fallback_no_weight_decay
        As :func:`param_groups_weight_decay`, except that the no-decay test is ``ndim <= 1`` or a pattern match
        (no ``.bias`` name test, as timm).

    Returns
    -------
    (groups, excluded)
        Groups ``{'params', 'lr_scale', 'weight_decay'[, 'use_fallback']}`` in first-encounter order of
        ``layer_{id}_{decay|no_decay}[_fallback]``, and the names dropped by ``no_opt_scale`` (timm sets
        ``requires_grad=False`` on those).
    """
    if fallback_no_weight_decay:
        fallback_list = set(fallback_list) | set(no_weight_decay_list)
    num_layers = max(layer_map.values()) + 1 if layer_map else 1
    layer_max = num_layers - 1
    scales = [max(min_scale, layer_decay ** (layer_max - i)) for i in range(num_layers)]
    groups: dict[str, dict[str, Any]] = {}
    excluded = []
    for name, ndim in _ndims(named_params):
        fallback = _matches(name, fallback_list)
        if (weight_decay_exclude_1d and ndim <= 1) or _matches(name, no_weight_decay_list):
            kind, wd = "no_decay", 0.0
        else:
            kind, wd = "decay", weight_decay
        lid = layer_map.get(name, layer_max)
        scale = scales[lid]
        if no_opt_scale and scale < no_opt_scale:
            excluded.append(name)
            continue
        key = f"layer_{lid}_{kind}{'_fallback' if fallback else ''}"
        if key not in groups:
            groups[key] = {"lr_scale": scale, "weight_decay": wd, "params": []}
            if fallback:
                groups[key]["use_fallback"] = True
        groups[key]["params"].append(name)
    return list(groups.values()), excluded


def create_groups(
    named_params: Mapping[str, Any] | Iterable[tuple[str, Any]],
    weight_decay: float = 0.0,
    filter_bias_and_bn: bool = True,
    no_weight_decay: Collection[str] = (),
    layer_decay: float | None = None,
    layer_id_fn: Callable[[str], Any] | Mapping[str, Any] | None = None,
    layer_decay_min_scale: float = 0.0,
    layer_decay_no_opt_scale: float | None = None,
    fallback_list: Collection[str] = (),
    fallback_no_weight_decay: bool = False,
    apply_lr_scale: bool = False,
    lr: float | None = None,
) -> tuple[list[dict[str, Any]], float]:
    """The grouping ``timm.optim.create_optimizer_v2`` does for a model, for named arrays.

    Returns ``(groups, weight_decay)``: ``ao.create_optimizer(name, groups=groups, weight_decay=weight_decay,
    lr=lr, ...)`` then builds what timm builds (the top-level ``weight_decay`` is 0, as timm zeroes it once groups
    carry their own).

    Parameters
    ----------
    named_params
        Trainable params, ``{name: array or ndim}``, in model order (frozen params left out).
    weight_decay, filter_bias_and_bn, no_weight_decay
        timm's ``weight_decay``, ``filter_bias_and_bn`` and the model's ``no_weight_decay()`` patterns.
    layer_decay, layer_id_fn
        With ``layer_decay``, layer-wise decay: ``layer_id_fn`` is a timm ``group_matcher`` (dict of regex specs or
        a callable ``name -> ordinal``) or a ready ``{name: layer_id}`` mapping; None uses
        :func:`auto_group_layers` with every param in the head (one layer, as timm without a classifier name).
    layer_decay_min_scale, layer_decay_no_opt_scale, fallback_list, fallback_no_weight_decay
        timm's arguments of the same names.
    apply_lr_scale, lr
        timm's groups carry ``lr_scale``, which only timm's schedulers apply. The core has no such field, so it is
        dropped (``apply_lr_scale=False``: exactly timm's optimizer without a scheduler) or folded into each
        group's ``lr = lr * lr_scale`` (``True``; needs ``lr``), which is what a timm scheduler writes at a step
        where its value is the base lr.
    """
    named = _ndims(named_params)
    if layer_decay is not None:
        names = [n for n, _ in named]
        if layer_id_fn is None:
            lmap = auto_group_layers(names)
        elif isinstance(layer_id_fn, Mapping) and all(isinstance(v, int) for v in layer_id_fn.values()):
            lmap = dict(layer_id_fn)
        else:
            lmap = group_with_matcher(names, layer_id_fn)
        groups, _ = param_groups_layer_decay(
            named, lmap, weight_decay=weight_decay, no_weight_decay_list=no_weight_decay, fallback_list=fallback_list,
            fallback_no_weight_decay=fallback_no_weight_decay, weight_decay_exclude_1d=filter_bias_and_bn,
            layer_decay=layer_decay, min_scale=layer_decay_min_scale, no_opt_scale=layer_decay_no_opt_scale)
    else:
        groups = param_groups_weight_decay(
            named, weight_decay=weight_decay, weight_decay_exclude_1d=filter_bias_and_bn,
            no_weight_decay_list=no_weight_decay, fallback_list=fallback_list,
            fallback_no_weight_decay=fallback_no_weight_decay)
    if apply_lr_scale and lr is None:
        raise ValueError("apply_lr_scale=True needs the base lr (lr=None given)")
    out = []
    for g in groups:
        g = dict(g)
        scale = g.pop("lr_scale", None)
        if not (fallback_list or fallback_no_weight_decay):
            g.pop("use_fallback", None)
        if apply_lr_scale and scale is not None:
            g["lr"] = lr * scale
        out.append(g)
    return out, 0.0
