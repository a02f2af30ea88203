"""Checkpoints of functional optimizer state that never execute code on load, and torch's state_dict layout.

``save_checkpoint(path, opt, state)`` writes one ``.npz`` file (loaded with ``allow_pickle=False``): every array slot,
plus a JSON header with a format version, the optimizer's name, its hyperparameters (top level and per group), and
the non-array slots (Python numbers and bools that some anchors keep in state). ``load_checkpoint(path, params)``
validates everything against the params (names, slot shapes and dtypes) before returning anything, and raises
``ValueError`` on a mismatch or on a truncated/corrupted file.

``to_state_dict`` / ``from_state_dict`` convert between arrayoptim's ``{name: {slot: array}}`` and torch's
``{'state': {index: {slot: value}}, 'param_groups': [...]}`` layout (values are left as they are: convert arrays
to tensors with ``torch.from_dlpack`` where needed). Counters timm keeps per param group (Adan's and LAMB's
``step``, Lookahead's ``lookahead_step``), which the functional state holds in every param's slot, go to the group.
"""
from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from typing import Any, Mapping, Sequence

import numpy as np
from array_api_compat import array_namespace, is_array_api_obj, is_cupy_array
from array_api_compat import device as _device

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "to_state_dict", "from_state_dict"]

FORMAT_VERSION = 1
_HEADER = "__arrayoptim_header__"


def _to_host(x: Any) -> np.ndarray:
    if is_cupy_array(x):
        return x.get()
    try:
        return np.asarray(x)
    except Exception:  # e.g. array-api-strict on a non-CPU device
        return np.from_dlpack(x.to_device("CPU_DEVICE") if hasattr(x, "to_device") else x)


def _describe(opt: Any) -> dict[str, Any]:
    base = getattr(opt, "base", opt)
    out: dict[str, Any] = {
        "optimizer": opt.name,
        "hyperparams": base.hyperparams.as_dict(),
        "groups": [{"params": list(g.names), **g.hyperparams.as_dict()} for g in base.groups],
    }
    if base is not opt:
        out["lookahead"] = dataclasses.asdict(opt.lookahead)
    return out


def save_checkpoint(path: str | os.PathLike, opt: Any, state: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``state`` of ``opt`` to ``path`` (a ``.npz`` file; arrays are copied to host memory).

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao, tempfile, os
    >>> opt = ao.create_optimizer('adamw', lr=1e-3)
    >>> params = {'w': np.ones(3)}
    >>> params, state = opt.step(params, {'w': np.ones(3)}, opt.init(params))
    >>> path = os.path.join(tempfile.mkdtemp(), 'ckpt.npz')
    >>> ao.save_checkpoint(path, opt, state)
    >>> opt2, state2 = ao.load_checkpoint(path, params)
    >>> opt2.hyperparams == opt.hyperparams, float(state2['w']['step'])
    (True, 1.0)
    """
    header = {"format_version": FORMAT_VERSION, **_describe(opt), "slots": {}, "scalars": {}}
    arrays: dict[str, np.ndarray] = {}
    for name, slots in state.items():
        header["slots"][name] = {}
        for slot, value in slots.items():
            if is_array_api_obj(value):
                key = f"a{len(arrays)}"
                arrays[key] = _to_host(value)
                header["slots"][name][slot] = key
            elif isinstance(value, (list, tuple)) and value and all(is_array_api_obj(v) for v in value):
                keys = []  # a list of arrays (e.g. Kron's per-dimension preconditioner factors)
                for v in value:
                    keys.append(f"a{len(arrays)}")
                    arrays[keys[-1]] = _to_host(v)
                header["slots"][name][slot] = keys
            elif isinstance(value, (bool, int, float, str)) or value is None:
                header["scalars"].setdefault(name, {})[slot] = value
            else:
                raise TypeError(f"state[{name!r}][{slot!r}] of type {type(value).__name__} cannot be checkpointed")
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **{_HEADER: blob}, **arrays)


def _read(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            if _HEADER not in data.files:
                raise ValueError(f"{os.fspath(path)!r} is not an arrayoptim checkpoint (no header)")
            header = json.loads(bytes(data[_HEADER]).decode())
            arrays = {k: data[k] for k in data.files if k != _HEADER}
    except (zipfile.BadZipFile, EOFError, OSError, json.JSONDecodeError, UnicodeDecodeError, KeyError) as e:
        raise ValueError(f"checkpoint {os.fspath(path)!r} is truncated or corrupted: {e}") from None
    except ValueError as e:
        if "arrayoptim checkpoint" in str(e):
            raise
        raise ValueError(f"checkpoint {os.fspath(path)!r} is truncated or corrupted: {e}") from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"checkpoint format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    return header, arrays


def load_checkpoint(path: str | os.PathLike, params: Mapping[str, Any], opt: Any = None) -> tuple[Any, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`, validated against ``params``.

    Returns ``(opt, state)``: the optimizer rebuilt from the file's name and hyperparameters (or ``opt`` itself
    when given, after checking it has the same name and hyperparameters), and the state with every array on the
    array library and device of its param. Raises ``ValueError`` on any mismatch and on a damaged file.
    """
    from ._core import create_optimizer

    header, arrays = _read(path)
    if opt is None:
        hp = dict(header["hyperparams"])
        la = header.get("lookahead")
        if la:
            hp.update(lookahead_alpha=la["alpha"], lookahead_k=la["k"])
        opt = create_optimizer(header["optimizer"], groups=header["groups"] or None, **hp)
    mine = _describe(opt)
    for key in ("optimizer", "hyperparams", "groups", "lookahead"):
        if json.loads(json.dumps(mine.get(key))) != header.get(key):
            raise ValueError(f"checkpoint {key} {header.get(key)!r} does not match the optimizer's {mine.get(key)!r}")
    names = set(header["slots"])
    if names != set(params):
        raise ValueError(f"checkpoint params do not match: missing from checkpoint {sorted(set(params) - names)}, "
                         f"not in params {sorted(names - set(params))}")
    info = getattr(opt, "info")
    state: dict[str, dict[str, Any]] = {}
    for name, slots in header["slots"].items():
        p = params[name]
        xp = array_namespace(p)
        out: dict[str, Any] = {}
        for slot, key in slots.items():
            if isinstance(key, list):
                missing = [k for k in key if k not in arrays]
                if missing:
                    raise ValueError(f"checkpoint is missing arrays for state[{name!r}][{slot!r}]")
                out[slot] = [xp.asarray(arrays[k], device=_device(p)) for k in key]
                continue
            if key not in arrays:
                raise ValueError(f"checkpoint is missing the array for state[{name!r}][{slot!r}]")
            a = arrays[key]
            if slot in info.param_slots and (a.shape != tuple(p.shape) or str(a.dtype) != _dtype_name(p)):
                raise ValueError(f"checkpoint state[{name!r}][{slot!r}] has shape {a.shape} and dtype {a.dtype}, "
                                 f"its param {tuple(p.shape)} and {_dtype_name(p)}")
            out[slot] = xp.asarray(a, device=_device(p))
        out.update(header["scalars"].get(name, {}))
        state[name] = out
    return opt, state


def _dtype_name(p: Any) -> str:
    return str(p.dtype).rsplit(".", 1)[-1]


def to_state_dict(opt: Any, state: Mapping[str, Mapping[str, Any]],
                  order: Sequence[str] | None = None) -> dict[str, Any]:
    """torch's ``Optimizer.state_dict()`` layout: params numbered in ``order`` (default: ``state``'s order),
    one param group per arrayoptim group (params in no group first, as the top-level record), with
    ``param_names``. Params without state are left out of ``'state'``, as torch does. A per-group counter (see
    ``OptimInfo.counter``; Lookahead's ``lookahead_step``) goes to its group, where timm keeps it; Lookahead's
    groups also carry ``lookahead_alpha`` and ``lookahead_k``, as timm's."""
    order = list(state) if order is None else list(order)
    index = {n: i for i, n in enumerate(order)}
    base = getattr(opt, "base", opt)
    grouped = {n for g in base.groups for n in g.names}
    groups = [(base.hyperparams, [n for n in order if n not in grouped])]
    groups += [(g.hyperparams, [n for n in order if n in g.names]) for g in base.groups]
    counters = _group_counters(opt)
    out_state = {index[n]: {k: v for k, v in state[n].items() if k not in counters} for n in order if state.get(n)}
    out_groups = []
    for hp, names in groups:
        if not names:
            continue
        g = {**hp.as_dict(), "params": [index[n] for n in names], "param_names": names}
        if base is not opt:
            g.update(lookahead_alpha=opt.lookahead.alpha, lookahead_k=opt.lookahead.k, lookahead_step=0)
        for c in counters:  # every param of a group holds the group's count: the first one's
            count = next((state[n][c] for n in names if c in state.get(n, {})), None)
            if count is not None:
                g[c] = count
        out_groups.append(g)
    return {"state": out_state, "param_groups": out_groups}


def _group_counters(opt: Any) -> tuple[str, ...]:
    base = getattr(opt, "base", opt)
    return (("step",) if base.info.counter == "group" else ()) + (("lookahead_step",) if base is not opt else ())


def from_state_dict(sd: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """arrayoptim state from torch's layout, matching params by ``param_names`` when present, else by position
    (torch's rule: the order of ``params``). Values are kept as they are (convert tensors with DLPack). A group's
    ``step`` / ``lookahead_step`` (timm's per-group counters) goes into the state of each of its params that has
    state."""
    if not isinstance(sd, Mapping) or "state" not in sd or "param_groups" not in sd:
        raise ValueError("a state_dict needs 'state' and 'param_groups'")
    ids = [i for g in sd["param_groups"] for i in g["params"]]
    names_in_sd = [n for g in sd["param_groups"] for n in g.get("param_names", [])]
    if len(ids) != len(params):
        raise ValueError(f"state_dict holds {len(ids)} params, params has {len(params)}")
    if names_in_sd:
        if set(names_in_sd) != set(params):
            raise ValueError(f"state_dict param_names {sorted(names_in_sd)} do not match params {sorted(params)}")
        mapping = dict(zip(ids, names_in_sd))
    else:
        mapping = dict(zip(ids, params))
    out = {n: {} for n in params}
    # a group's counter (only timm's per-group counters sit in a group) goes to each of its params' state
    counts = {i: {c: g[c] for c in ("step", "lookahead_step") if c in g} for g in sd["param_groups"]
              for i in g["params"]}
    for i, slots in sd["state"].items():
        if i not in mapping:
            raise ValueError(f"state_dict state has index {i!r} that no param group lists")
        n = mapping[i]
        p = params[n]
        for k, v in slots.items():
            if is_array_api_obj(v) and getattr(v, "ndim", 0) and tuple(v.shape) != tuple(p.shape) and \
                    len(v.shape) == len(p.shape):
                raise ValueError(f"state_dict state[{i}][{k!r}] has shape {tuple(v.shape)}, "
                                 f"param {n!r} has {tuple(p.shape)}")
        out[n] = {**counts.get(i, {}), **slots}
    return out
