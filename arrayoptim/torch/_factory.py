"""``create_optimizer_v2``: timm's factory signature and param-group rules, returning an ``ArrayOptimizer``.

The grouping is :mod:`arrayoptim.grouping` (pure Python) applied to ``model.named_parameters()``; timm is not
imported.
"""
from __future__ import annotations

from typing import Any, Callable, Collection

import torch

import arrayoptim as ao
from arrayoptim import grouping
from arrayoptim._registry import LOOKAHEAD_PREFIX

from ._optimizer import ArrayOptimizer

__all__ = ["create_optimizer_v2", "param_groups_weight_decay", "param_groups_layer_decay"]


def _by_name(model: torch.nn.Module, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    params = dict(model.named_parameters())
    return [{**g, "params": [params[n] for n in g["params"]]} for g in groups]


def param_groups_weight_decay(model: torch.nn.Module, weight_decay: float = 1e-5,
                              weight_decay_exclude_1d: bool = True, no_weight_decay_list: Collection[str] = (),
                              fallback_list: Collection[str] = (), fallback_no_weight_decay: bool = False,
                              ) -> list[dict[str, Any]]:
    """timm's ``param_groups_weight_decay`` for a module (tensors in the groups); see
    :func:`arrayoptim.grouping.param_groups_weight_decay`."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return _by_name(model, grouping.param_groups_weight_decay(
        named, weight_decay, weight_decay_exclude_1d, no_weight_decay_list, fallback_list, fallback_no_weight_decay))


def _layer_map(model: torch.nn.Module) -> dict[str, int]:
    names = [n for n, _ in model.named_parameters()]
    if hasattr(model, "group_matcher"):
        return grouping.group_with_matcher(names, model.group_matcher(coarse=False))
    head = getattr(model, "pretrained_cfg", {}).get("classifier", None)
    return grouping.auto_group_layers(names, head)


def param_groups_layer_decay(model: torch.nn.Module, weight_decay: float = 0.05,
                             no_weight_decay_list: Collection[str] = (), fallback_list: Collection[str] = (),
                             fallback_no_weight_decay: bool = False, weight_decay_exclude_1d: bool = True,
                             layer_decay: float = 0.75, min_scale: float = 0.0, no_opt_scale: float | None = None,
                             ) -> list[dict[str, Any]]:
    """timm's ``param_groups_layer_decay`` for a module: layer ids from ``model.group_matcher(coarse=False)``
    (else timm's auto grouping); params below ``no_opt_scale`` get ``requires_grad=False``, as timm does."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups, excluded = grouping.param_groups_layer_decay(
        named, _layer_map(model), weight_decay=weight_decay, no_weight_decay_list=no_weight_decay_list,
        fallback_list=fallback_list, fallback_no_weight_decay=fallback_no_weight_decay,
        weight_decay_exclude_1d=weight_decay_exclude_1d, layer_decay=layer_decay, min_scale=min_scale,
        no_opt_scale=no_opt_scale)
    params = dict(model.named_parameters())
    for n in excluded:
        params[n].requires_grad = False
    return _by_name(model, groups)


def create_optimizer_v2(
    model_or_params: Any,
    opt: str = "sgd",
    lr: float | None = None,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    foreach: bool | None = None,
    filter_bias_and_bn: bool = True,
    fallback_list: Collection[str] = (),
    fallback_no_weight_decay: bool = False,
    layer_decay: float | None = None,
    layer_decay_min_scale: float = 0.0,
    layer_decay_no_opt_scale: float | None = None,
    param_group_fn: Callable[[torch.nn.Module], Any] | None = None,
    **kwargs: Any,
) -> ArrayOptimizer:
    """timm's ``create_optimizer_v2``, building an :class:`ArrayOptimizer` for registry name ``opt``.

    Parameters
    ----------
    model_or_params
        An ``nn.Module`` (grouped by timm's rules below) or params / param-group dicts (passed through, and
        ``weight_decay`` is then the optimizer default).
    opt
        A registry name, optionally ``lookahead_``-prefixed (timm's Lookahead defaults ``alpha=0.5, k=6``).
    lr
        Only passed when not None (else the optimizer's default).
    weight_decay, filter_bias_and_bn
        For a module: decay for params that are not 1-d / ``.bias`` (when ``filter_bias_and_bn``) and not named by
        the model's ``no_weight_decay()``; the groups carry it and the top-level value becomes 0.
    momentum
        Set (if not in ``kwargs``) for optimizers registered with ``has_momentum``, as timm does.
    foreach
        Passed when not None (no effect on the math).
    layer_decay, layer_decay_min_scale, layer_decay_no_opt_scale
        Layer-wise lr decay: groups get ``lr_scale`` from ``model.group_matcher(coarse=False)`` (timm's auto
        grouping without one); a timm-style scheduler (:func:`arrayoptim.torch.create_scheduler_v2`) applies it.
    fallback_list, fallback_no_weight_decay
        Hybrid optimizers' fallback params (groups with ``use_fallback=True``).
    param_group_fn
        ``param_group_fn(model) -> groups`` replaces the grouping; ``weight_decay`` stays the default.
    **kwargs
        The optimizer's own hyperparameters. Unlike timm, ``eps``/``betas`` given to an optimizer without them
        raise ``TypeError`` instead of being dropped silently.

    Returns
    -------
    ArrayOptimizer
    """
    if not isinstance(opt, str):
        raise TypeError(f"opt must be a registry name (str), got opt={opt!r}")
    if isinstance(model_or_params, torch.nn.Module):
        model = model_or_params
        no_wd = getattr(model, "no_weight_decay", lambda: set())()
        if param_group_fn:
            params = param_group_fn(model)
        elif layer_decay is not None:
            params = param_groups_layer_decay(
                model, weight_decay=weight_decay, layer_decay=layer_decay, no_weight_decay_list=no_wd,
                fallback_list=fallback_list, fallback_no_weight_decay=fallback_no_weight_decay,
                weight_decay_exclude_1d=filter_bias_and_bn, min_scale=layer_decay_min_scale,
                no_opt_scale=layer_decay_no_opt_scale)
            weight_decay = 0.0
        else:
            params = param_groups_weight_decay(
                model, weight_decay=weight_decay, weight_decay_exclude_1d=filter_bias_and_bn,
                no_weight_decay_list=no_wd, fallback_list=fallback_list,
                fallback_no_weight_decay=fallback_no_weight_decay)
            weight_decay = 0.0
    else:
        params = model_or_params
    key = opt.lower()
    base = key[len(LOOKAHEAD_PREFIX):] if key.startswith(LOOKAHEAD_PREFIX) and key != LOOKAHEAD_PREFIX else key
    info = ao.get_optimizer_info(base)
    args: dict[str, Any] = {"weight_decay": weight_decay, **kwargs}
    if lr is not None:
        args["lr"] = lr
    if info.has_momentum:
        args.setdefault("momentum", momentum)
    if foreach is not None:
        args.setdefault("foreach", foreach)
    if "weight_decay" not in info.hyperparams.field_names() and not args["weight_decay"]:
        args.pop("weight_decay")  # an optimizer without weight decay: timm's 0.0 default means nothing
    return ArrayOptimizer(params, opt=key, **args)
