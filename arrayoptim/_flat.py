"""Flat multi-tensor mode: all params (and their grads and state) in one contiguous buffer per segment.

A *segment* is the set of params that share a dtype, a device and a hyperparameter record (param group). Each
segment is one 1-D buffer; every param is a view of it. An elementwise optimizer's kernel then runs **once per
segment** over the whole buffer: one pass over all params with O(1) Python overhead, whatever the number of
tensors, and the same numbers as the per-tensor step (elementwise math does not care where an element lives).

Only for optimizers registered with ``locality='element'`` (Adam/AdamW, SGD/SGDW, Lion families); their
``caution`` option takes a per-tensor mean and is refused here.

Examples
--------
>>> import numpy as np, arrayoptim as ao
>>> fo = ao.flat(ao.create_optimizer('adamw', lr=0.1))
>>> params = fo.pack({'w': np.ones((2, 2)), 'b': np.zeros(2)})
>>> state = fo.init(params)
>>> grads = fo.pack({'w': np.ones((2, 2)), 'b': np.ones(2)})   # or a dict of arrays, gathered every step
>>> params, state = fo.step(params, grads, state, copy=False)
>>> fo.unpack(params)['b']
array([-0.1, -0.1])
>>> sorted(fo.unpack_state(params, state)['w'])
['exp_avg', 'exp_avg_sq', 'step']
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _device

from . import _accel
from ._core import Optimizer, validate_step
from ._half import run_kernel
from ._xp import _kind, _writeable, check_aliasing, claim, slot_arrays

__all__ = ["flat", "FlatOptimizer", "Packed", "Segment"]


@dataclasses.dataclass(frozen=True)
class Segment:
    """One flat buffer's layout: which params, where, and the record they share."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    offsets: tuple[int, ...]
    size: int
    dtype: Any
    device: Any
    group: int  # index into the records seen, for the hyperparameters of this segment


@dataclasses.dataclass(frozen=True)
class Packed:
    """Flat buffers (one per segment) and their layout. ``views()`` gives ``{name: array}`` sharing the buffers."""

    segments: tuple[Segment, ...]
    buffers: tuple[Any, ...]

    def views(self) -> dict[str, Any]:
        out = {}
        for seg, buf in zip(self.segments, self.buffers):
            xp = array_namespace(buf)
            for n, shape, off in zip(seg.names, seg.shapes, seg.offsets):
                out[n] = xp.reshape(buf[off:off + math.prod(shape)], shape)
        return out


def flat(opt: Optimizer) -> "FlatOptimizer":
    """The flat multi-tensor form of ``opt`` (an elementwise optimizer from :func:`create_optimizer`)."""
    return FlatOptimizer(opt)


class FlatOptimizer:
    """``pack`` params into flat buffers, then ``init``/``step`` on them like :class:`Optimizer`, and ``unpack``.

    Parameters
    ----------
    opt
        An :class:`Optimizer` whose registry entry has ``elementwise=True``.
    """

    def __init__(self, opt: Optimizer) -> None:
        if not isinstance(opt, Optimizer):
            raise TypeError(f"flat() needs an Optimizer from create_optimizer, got {type(opt).__name__}")
        info = opt.info
        if info.locality != "element" or info.prepare is not None or info.step_inputs:
            raise ValueError(f"optimizer {info.name!r} is not elementwise (its update needs per-tensor or global "
                             f"quantities), so it has no flat mode; use its per-tensor step")
        for rec in [opt.hyperparams] + [g.hyperparams for g in opt.groups]:
            if getattr(rec, "caution", False):
                raise ValueError(f"optimizer {info.name!r} with caution=True takes a per-tensor mean: no flat mode")
        self.opt = opt

    def __repr__(self) -> str:
        return f"flat({self.opt!r})"

    # ------------------------------------------------------------------------------------------------ layout
    def pack(self, arrays: Mapping[str, Any], like: Packed | None = None) -> Packed:
        """Copy ``arrays`` (``{name: array}``) into new flat buffers; ``like``: use that layout (same names)."""
        if not isinstance(arrays, Mapping) or not arrays:
            raise TypeError(f"pack() needs a non-empty mapping of names to arrays, got {arrays!r}")
        for n, a in arrays.items():
            if not is_array_api_obj(a):
                raise TypeError(f"arrays[{n!r}] must be an array, got {type(a).__name__}")
        xp = array_namespace(*arrays.values())
        segments = like.segments if like is not None else self._layout(xp, arrays)
        names = {n for seg in segments for n in seg.names}
        if set(arrays) != names:
            raise ValueError(f"pack(): names {sorted(set(arrays) ^ names)} are not in both the arrays and the layout")
        buffers = []
        for seg in segments:
            parts = []
            for n, shape in zip(seg.names, seg.shapes):
                a = arrays[n]
                if tuple(a.shape) != shape:
                    raise ValueError(f"arrays[{n!r}] has shape {tuple(a.shape)}, the layout {shape}")
                parts.append(xp.reshape(xp.astype(a, seg.dtype), (-1,)))
            buffers.append(xp.concat(parts) if len(parts) > 1 else xp.asarray(parts[0], copy=True))
        return Packed(tuple(segments), tuple(buffers))

    def _layout(self, xp: Any, params: Mapping[str, Any]) -> tuple[Segment, ...]:
        records: list[int] = []
        keyed: dict[tuple, list[str]] = {}
        meta: dict[tuple, tuple] = {}
        for n, p in params.items():
            if not xp.isdtype(p.dtype, "real floating"):
                raise ValueError(f"params[{n!r}] must have a real floating dtype, got {p.dtype}")
            rid = id(self.opt.hyperparams_for(n))
            if rid not in records:
                records.append(rid)
            key = (str(p.dtype), str(_device(p)), rid)
            keyed.setdefault(key, []).append(n)
            meta[key] = (p.dtype, _device(p), records.index(rid))
        segs = []
        for key, names in keyed.items():
            shapes = tuple(tuple(params[n].shape) for n in names)
            sizes = [math.prod(s) for s in shapes]
            offsets = tuple(sum(sizes[:i]) for i in range(len(sizes)))
            dtype, dev, group = meta[key]
            segs.append(Segment(tuple(names), shapes, offsets, sum(sizes), dtype, dev, group))
        return tuple(segs)

    def unpack(self, packed: Packed) -> dict[str, Any]:
        """``{name: view}``: each param as a view of its buffer (copies on libraries without views, e.g. JAX)."""
        return packed.views()

    # ----------------------------------------------------------------------------------------------- init/step
    def init(self, params: Packed) -> list[dict[str, Any]]:
        """The flat state: one slot dict per segment (slots are flat buffers; ``step`` is 0-d)."""
        out = []
        for seg, buf in zip(params.segments, params.buffers):
            xp = array_namespace(buf)
            info = self.opt.info
            out.append(dict(info.init(xp, buf, self.opt.hyperparams_for(seg.names[0]))) if info.init else {})
        return out

    def step(self, params: Packed, grads: Packed | Mapping[str, Any], state: list[dict[str, Any]], *,
             copy: bool | None = True, hyperparams: Mapping[str, Any] | None = None) -> tuple[Packed, list]:
        """One step over every segment; returns ``(new_params, new_state)``.

        ``grads`` is a :class:`Packed` with the params' layout (``pack(grads, like=params)``: no gathering), or
        ``{name: array}`` with a grad for **every** param (gathered into flat buffers each step). ``copy`` and
        ``hyperparams`` as in :meth:`Optimizer.step`.
        """
        if copy not in (True, False, None):
            raise ValueError(f"copy must be True, False or None, got {copy!r}")
        if not isinstance(params, Packed):
            raise TypeError(f"params must be a Packed from pack(), got {type(params).__name__}")
        if isinstance(grads, Packed):
            if grads.segments != params.segments:
                raise ValueError("grads were packed with another layout than params (use pack(grads, like=params))")
        elif isinstance(grads, Mapping):
            missing = [n for seg in params.segments for n in seg.names if grads.get(n) is None]
            if missing:
                raise ValueError(f"flat mode steps every param together: grads missing or None for {missing}")
            grads = self.pack(grads, like=params)
        else:
            raise TypeError(f"grads must be a Packed or a mapping of names to arrays, got {type(grads).__name__}")
        if not isinstance(state, (list, tuple)) or len(state) != len(params.segments):
            raise ValueError(f"state must be the list of {len(params.segments)} slot dicts from init(), got "
                             f"{type(state).__name__} of length {len(state) if hasattr(state, '__len__') else '?'}")
        hps = self.opt._records(hyperparams)
        # every segment is validated before the first one is stepped
        labels = [f"segment {i} ({', '.join(seg.names[:3])}{', ...' if len(seg.names) > 3 else ''})"
                  for i, seg in enumerate(params.segments)]
        bufs = dict(zip(labels, params.buffers))
        gbufs = dict(zip(labels, grads.buffers))
        slots = {}
        for label, seg, p, g, s in zip(labels, params.segments, params.buffers, grads.buffers, state):
            if not isinstance(s, Mapping):
                raise TypeError(f"state of {label} must be a dict of slots, got {type(s).__name__}")
            slots[label] = s
        recs = {label: hps.get(seg.names[0], hps[None]) for label, seg in zip(labels, params.segments)}
        validate_step(bufs, gbufs, slots, copy=copy)
        self.opt._check_layouts(bufs, slots, recs)
        if copy is not True:
            written = [(f"the {what} buffer of {label}", x) for label in labels
                       for what, x in [("params", bufs[label])] + [(f"state slot {k}", v)
                                                                    for k, v in slot_arrays(slots[label])]
                       if copy is False or _writeable(x, _kind(x))]
            check_aliasing(written, [(f"the grads buffer of {label}", g) for label, g in gbufs.items()])
        new_bufs, new_state = [], []
        kernel = _accel.select(self.opt.info.kernel, array_namespace(*params.buffers))
        for label in labels:
            p, g, s, hp = bufs[label], gbufs[label], slots[label], recs[label]
            xp = array_namespace(p, g)
            claimed = {k: claim(xp, v, copy) for k, v in s.items()}
            new_bufs.append(run_kernel(kernel, xp, p, g, claimed, hp, {}, copy=copy,
                                       half_compute=self.opt.info.half_compute))
            new_state.append(claimed)
        return Packed(params.segments, tuple(new_bufs)), new_state

    def unpack_state(self, params: Packed, state: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Per-param state as :meth:`Optimizer.init`/``step`` keep it (torch's slot names): flat slots as views,
        the segment's 0-d slots (``step``) shared by its params."""
        out: dict[str, dict[str, Any]] = {}
        for seg, s in zip(params.segments, state):
            for n in seg.names:
                out[n] = {}
            for k, v in s.items():
                if getattr(v, "ndim", 0) == 1 and v.shape[0] == seg.size:
                    views = Packed((seg,), (v,)).views()
                    for n in seg.names:
                        out[n][k] = views[n]
                else:
                    for n in seg.names:
                        out[n][k] = v
        return out
