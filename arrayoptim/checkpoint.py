"""Checkpoints of functional optimizer state that never execute code on load, and torch's state_dict layout.

``save_checkpoint(path, opt, state)`` writes one file, atomically (a temporary file in the same directory, flushed
and ``fsync``-ed, then ``os.replace``-d over ``path``: a failing save leaves an existing file untouched). Two
formats, chosen by ``format=`` or by the suffix of ``path``:

* ``'npz'`` (the default): a ZIP archive of ``.npy`` members (stored, not compressed), readable with
  ``numpy.load(path, allow_pickle=False)``. The member ``__arrayoptim_header__.npy`` is a ``uint8`` array holding
  the JSON header; every array slot is the member ``<param>/<slot>.npy``, each element ``i`` of a list slot (Kron's
  factors) ``<param>/<slot>/<i>.npy``.
* ``'safetensors'`` (``.safetensors`` suffix; needs the optional ``safetensors`` package): the same tensors under
  the same names without ``.npy``, the JSON header in the metadata entry ``'arrayoptim'``.

**Member names.** ``<param>`` and ``<slot>`` are each encoded on their own (so a ``/`` in a name cannot be confused
with the separator): UTF-8 percent-encoding (``%XX``, upper-case hex) of every character except the ASCII letters,
digits, ``_``, ``-`` and ``.``; a leading ``.`` is encoded too (``%2E``) and the empty string is written ``~``
(which is otherwise always encoded, ``%7E``). Decoding is plain percent-decoding, with ``~`` meaning ``''``. So
``{'enc.w/b': {'exp_avg': ...}}`` is stored as ``enc.w%2Fb/exp_avg.npy``. The loader never parses these names:
it derives them from the header and requires exactly those members.

**The header** (JSON object, ``format_version`` 2): ``optimizer`` (registry name, with its ``lookahead_`` prefix),
``hyperparams`` (the top-level record), ``groups`` (``[{'params': [...], <overrides>}]``), ``lookahead``
(``{'alpha', 'k'}``, only for Lookahead) and ``guard`` (``'skip_nonfinite'``, only for a guarded optimizer), and
``slots``: ``{param: {slot: entry}}`` in the state's order, an entry being ``{'kind': 'array', 'dtype': name,
'shape': [...]}``, ``{'kind': 'list', 'items': [<array entries>]}`` or ``{'kind': 'value', 'value': <JSON
number, bool, string or null>}`` (host counters some anchors keep). dtypes: ``bool``, ``(u)int8..64``,
``float16/32/64`` and ``bfloat16``, which NumPy lacks: its raw bits are stored as ``uint16`` and the loader
returns a bfloat16 array of the params' library (torch, JAX). Files of format_version 1 (members ``a0``, ``a1``,
..., slots mapped to member names, ``scalars`` apart) are still read.

``load_checkpoint(path, params)`` checks everything before it materialises any array: the header's structure and
types, the optimizer, that every member the header names is there with the declared dtype and shape (read from
the ``.npy`` headers and the ZIP directory, or the safetensors header) and no other one, the layout slots
(``param_slots``: the param's shape and dtype, float32 for half params of ``half_compute == 'float32'``
optimizers; counters 0-d), and that the declared sizes fit the file (so a small file cannot make it allocate much
more than its size). Then it reads only those members, checks the counters' values (``step`` and the other
counters: finite, whole and >= 0) and the state against the optimizer (``Optimizer.validate_state``). Anything
wrong with the file raises ``ValueError``.

``to_state_dict`` / ``from_state_dict`` convert between arrayoptim's ``{name: {slot: array}}`` and torch's
``{'state': {index: {slot: value}}, 'param_groups': [...]}`` layout (values are left as they are: convert arrays
to tensors with ``torch.from_dlpack`` where needed). Counters timm keeps per param group (Adan's and LAMB's
``step``, Lookahead's ``lookahead_step``), which the functional state holds in every param's slot, go to the group.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
import zipfile
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import numpy.lib.format as _npformat
from array_api_compat import array_namespace, is_array_api_obj, is_cupy_array, is_torch_array
from array_api_compat import device as _device

__all__ = ["FORMAT_VERSION", "save_checkpoint", "load_checkpoint", "to_state_dict", "from_state_dict"]

FORMAT_VERSION = 2
_READABLE = (1, 2)
_HEADER = "__arrayoptim_header__"
_NPY = ".npy"
_SAFETENSORS_KEY = "arrayoptim"
_GUARD = "skip_nonfinite"
#: the largest JSON header read (bytes); a header this size describes millions of slots
_MAX_HEADER_BYTES = 64 << 20
#: the uncompressed bytes the referenced members may declare per byte of file (only DEFLATE members can exceed 1)
_MAX_EXPANSION = 4
_MAX_NDIM = 32
_CHUNK = 1 << 20
#: slots holding counts: finite, whole and >= 0 (0-d where they are arrays)
_COUNTERS = ("step", "lookahead_step", "update_counter", "hessian step", "func_evals", "n_iter")
#: Lookahead's own slots (the core's layout leaves them to the wrapper)
_LOOKAHEAD_SLOTS = ("lookahead_step", "lookahead_slow_buff")
_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "bfloat16")
_STORAGE = {"bfloat16": "uint16"}  # the dtype a tag is stored as
_SAFETENSORS_DTYPES = {"BOOL": "bool", "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "U8": "uint8",
                       "U16": "uint16", "U32": "uint32", "U64": "uint64", "F16": "float16", "F32": "float32",
                       "F64": "float64"}
_FORMATS = ("npz", "safetensors")


# ------------------------------------------------------------------------------------------------ wrappers

def _layers(opt: Any) -> tuple[bool, Any, Any]:
    """``(guarded, lookahead wrapper or None, core Optimizer)`` of ``opt``."""
    from ._core import Optimizer
    from ._guard import SkipNonFinite
    from .optimizers.lookahead import Lookahead

    guarded, inner = False, opt
    while isinstance(inner, SkipNonFinite):
        guarded, inner = True, inner.base
    la = inner if isinstance(inner, Lookahead) else None
    core = la.base if la is not None else inner
    if not isinstance(core, Optimizer):
        raise TypeError(f"opt must be an optimizer made by create_optimizer (optionally wrapped by skip_nonfinite), "
                        f"got {opt!r:.200}")
    return guarded, la, core


def _describe(opt: Any) -> dict[str, Any]:
    guarded, la, core = _layers(opt)
    out: dict[str, Any] = {
        "optimizer": (la or core).name,
        "hyperparams": core.hyperparams.as_dict(),
        "groups": [{"params": list(g.names), **g.hyperparams.as_dict()} for g in core.groups],
    }
    if la is not None:
        out["lookahead"] = dataclasses.asdict(la.lookahead)
    if guarded:
        out["guard"] = _GUARD
    return out


# ------------------------------------------------------------------------------------------------ names, paths

def _encode(s: str) -> str:
    """One name component (see the module docstring): percent-encoding, ``~`` for ``''``."""
    if s == "":
        return "~"
    out = []
    for i, ch in enumerate(s):
        if (ch.isascii() and (ch.isalnum() or ch in "_-")) or (ch == "." and i > 0):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def _member(param: str, slot: str, index: int | None = None) -> str:
    name = f"{_encode(param)}/{_encode(slot)}"
    return name if index is None else f"{name}/{index}"


def _check_path(path: Any) -> str:
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike file name, got {type(path).__name__} {path!r:.80}")
    return os.fsdecode(os.fspath(path))


def _format_of(path: str, format: str | None) -> str:
    if format is None:
        return "safetensors" if path.lower().endswith(".safetensors") else "npz"
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS} or None (by the suffix of path), got {format!r}")
    return format


def _safetensors(what: str) -> Any:
    try:
        import safetensors.numpy  # noqa: F401
        from safetensors import safe_open
    except ImportError:
        raise ValueError(f"{what} needs the optional 'safetensors' package (pip install safetensors)") from None
    return safe_open


# ------------------------------------------------------------------------------------------------ save

def _host(x: Any, where: str) -> tuple[np.ndarray, str]:
    """``x`` in host memory as a C-contiguous native NumPy array, and its dtype name (bfloat16: the raw bits as
    ``uint16``, named ``'bfloat16'``)."""
    tag = None
    if is_torch_array(x):
        import torch

        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.resolve_conj().resolve_neg().contiguous()
        if t.dtype == torch.bfloat16:
            t, tag = t.view(torch.int16), "bfloat16"
        try:
            a = t.numpy()
        except TypeError:
            raise TypeError(f"{where} of dtype {x.dtype} cannot be checkpointed (dtypes: {', '.join(_DTYPES)})") \
                from None
        if tag:
            a = a.view(np.uint16)
    elif is_cupy_array(x):
        a = x.get()
    else:
        try:
            a = np.asarray(x)
        except Exception:  # e.g. array-api-strict on a non-CPU device
            a = np.from_dlpack(x.to_device("CPU_DEVICE") if hasattr(x, "to_device") else x)
        if a.dtype.name == "bfloat16" and a.dtype.itemsize == 2:  # JAX's (ml_dtypes) bfloat16
            a, tag = a.view(np.uint16), "bfloat16"
    name = tag or a.dtype.name
    if name not in _DTYPES or a.dtype.fields is not None:
        raise TypeError(f"{where} of dtype {a.dtype} cannot be checkpointed (dtypes: {', '.join(_DTYPES)})")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    return (a if a.flags.c_contiguous else np.array(a, order="C")), name  # (ascontiguousarray makes 0-d 1-d)


def _entry(arr: np.ndarray, dtype: str) -> dict[str, Any]:
    return {"kind": "array", "dtype": dtype, "shape": list(arr.shape)}


def save_checkpoint(path: str | os.PathLike, opt: Any, state: Mapping[str, Mapping[str, Any]], *,
                    format: str | None = None) -> None:
    """Write ``state`` of ``opt`` to ``path`` atomically (arrays are copied to host memory).

    Parameters
    ----------
    path
        A file name (``str`` or ``os.PathLike``; file objects and descriptors are refused with ``TypeError``). The
        file is written to a temporary file in the same directory, flushed and fsync-ed, then moved over ``path``
        with ``os.replace``: if anything fails, an existing file at ``path`` is left as it was.
    opt
        The optimizer (``create_optimizer``'s, optionally ``lookahead_`` and/or :func:`skip_nonfinite`).
    state
        Its state, ``{param: {slot: array, list of arrays or Python number}}``.
    format
        ``'npz'`` or ``'safetensors'`` (needs the optional ``safetensors`` package); default: ``'safetensors'``
        for a ``.safetensors`` suffix, else ``'npz'``. See the module docstring for the layout.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao, tempfile, os
    >>> opt = ao.create_optimizer('adamw', lr=1e-3)
    >>> params = {'w': np.ones(3)}
    >>> params, state = opt.step(params, {'w': np.ones(3)}, opt.init(params))
    >>> path = os.path.join(tempfile.mkdtemp(), 'ckpt.npz')
    >>> ao.save_checkpoint(path, opt, state)
    >>> sorted(np.load(path, allow_pickle=False).files)
    ['__arrayoptim_header__', 'w/exp_avg', 'w/exp_avg_sq', 'w/step']
    >>> opt2, state2 = ao.load_checkpoint(path, params)
    >>> opt2.hyperparams == opt.hyperparams, float(state2['w']['step'])
    (True, 1.0)
    """
    target = _check_path(path)
    fmt = _format_of(target, format)
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping from param names to slot dicts, got {type(state).__name__}")
    header: dict[str, Any] = {"format_version": FORMAT_VERSION, **_describe(opt), "slots": {}}
    members: dict[str, np.ndarray] = {}
    for name, slots in state.items():
        if not isinstance(name, str):
            raise TypeError(f"state keys must be param names (str), got {name!r:.80}")
        if not isinstance(slots, Mapping):
            raise TypeError(f"state[{name!r}] must be a dict of slots, got {type(slots).__name__}")
        entries: dict[str, Any] = {}
        for slot, value in slots.items():
            where = f"state[{name!r}][{slot!r}]"
            if not isinstance(slot, str):
                raise TypeError(f"state[{name!r}] keys must be slot names (str), got {slot!r:.80}")
            if is_array_api_obj(value):
                arr, dtype = _host(value, where)
                members[_member(name, slot)] = arr
                entries[slot] = _entry(arr, dtype)
            elif isinstance(value, (list, tuple)) and value and all(is_array_api_obj(v) for v in value):
                items = []  # a list of arrays (e.g. Kron's per-dimension preconditioner factors)
                for i, v in enumerate(value):
                    arr, dtype = _host(v, f"{where}[{i}]")
                    members[_member(name, slot, i)] = arr
                    items.append(_entry(arr, dtype))
                entries[slot] = {"kind": "list", "items": items}
            elif isinstance(value, (bool, int, float, str)) or value is None:
                entries[slot] = {"kind": "value", "value": value}
            else:
                raise TypeError(f"{where} of type {type(value).__name__} cannot be checkpointed")
        header["slots"][name] = entries
    text = json.dumps(header)
    if fmt == "safetensors":
        _safetensors("format='safetensors'")
        import safetensors.numpy

        blob = safetensors.numpy.save(members, metadata={_SAFETENSORS_KEY: text})
        _atomic_write(target, lambda f: f.write(blob))
    else:
        _atomic_write(target, lambda f: _write_npz(f, text, members))


def _write_npz(f: Any, text: str, members: Mapping[str, np.ndarray]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, arr in [(_HEADER, np.frombuffer(text.encode(), dtype=np.uint8)), *members.items()]:
            with zf.open(name + _NPY, "w", force_zip64=True) as m:
                _npformat.write_array(m, arr, allow_pickle=False)


def _atomic_write(target: str, write: Callable[[Any], Any]) -> None:
    """``write(f)`` into a new file next to ``target``, fsync, then ``os.replace``; on any failure the temporary
    file is removed and ``target`` is untouched."""
    directory = os.path.dirname(os.path.abspath(target))
    base = os.path.basename(target)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:  # the process umask applies, as to a file opened with open(path, 'wb')
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ------------------------------------------------------------------------------------------------ load: header

class _Bad(ValueError):
    """A problem with the file's content (re-raised as ValueError naming the file)."""


@dataclasses.dataclass
class _Spec:
    """One array the header references: where it goes, the member holding it and what it must be."""

    param: str
    slot: str
    index: int | None
    member: str  # without the .npy suffix
    dtype: str | None  # declared in the header (version 2); None: read from the member (version 1)
    shape: tuple[int, ...] | None
    want_shape: tuple[int, ...] | None = None  # from the layout (param slots, counters)
    want_dtype: str | None = None


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise _Bad(msg)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_value(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str)) or v is None


def _parse_header(raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _Bad(f"its header is not valid JSON: {e}") from None
    _need(isinstance(header, dict), f"its header must be a JSON object, got {type(header).__name__}")
    version = header.get("format_version")
    _need(_is_int(version) and version in _READABLE,
          f"format_version {version!r:.40} is not supported (this version reads {list(_READABLE)})")
    allowed = {"format_version", "optimizer", "hyperparams", "groups", "lookahead", "slots"}
    allowed |= {"scalars"} if version == 1 else {"guard"}
    unknown = sorted(set(header) - allowed)
    _need(not unknown, f"its header has unknown fields {unknown!r:.200}")
    for key, typ, what in (("optimizer", str, "a string"), ("hyperparams", dict, "an object"),
                           ("groups", list, "a list"), ("slots", dict, "an object")):
        _need(isinstance(header.get(key), typ), f"header field {key!r} must be {what}, got "
                                                f"{type(header.get(key)).__name__}")
    _need(all(_json_value(v) for v in header["hyperparams"].values()),
          "header field 'hyperparams' must map names to numbers, strings, bools, null or lists of them")
    for i, g in enumerate(header["groups"]):
        _need(isinstance(g, dict) and isinstance(g.get("params"), list)
              and all(isinstance(n, str) for n in g["params"])
              and all(_json_value(v) for k, v in g.items() if k != "params"),
              f"header groups[{i}] must be an object with a 'params' list of names and hyperparameter values")
    la = header.get("lookahead")
    _need(la is None or (isinstance(la, dict) and set(la) == {"alpha", "k"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in la.values())),
          "header field 'lookahead' must be an object {'alpha': number, 'k': int}")
    _need(header.get("guard") in (None, _GUARD), f"header field 'guard' must be {_GUARD!r} or absent, got "
                                                f"{header.get('guard')!r:.40}")
    for name, slots in header["slots"].items():
        _need(isinstance(slots, dict), f"header slots[{name!r:.80}] must be an object")
    if version == 1:
        scalars = header.get("scalars", {})
        _need(isinstance(scalars, dict) and all(isinstance(s, dict) and all(_is_value(v) for v in s.values())
                                                for s in scalars.values()),
              "header field 'scalars' must map param names to objects of numbers, strings, bools or null")
        _need(set(scalars) <= set(header["slots"]), "header field 'scalars' names params that 'slots' lacks")
    return header


def _json_value(v: Any, depth: int = 0) -> bool:
    if isinstance(v, list):
        return depth < 4 and all(_json_value(i, depth + 1) for i in v)
    return _is_value(v)


def _array_entry(e: Any, where: str) -> tuple[str, tuple[int, ...]]:
    _need(isinstance(e, dict) and e.get("kind", "array") == "array" and set(e) <= {"kind", "dtype", "shape"},
          f"header {where} must be an array entry {{'kind': 'array', 'dtype', 'shape'}}")
    dtype, shape = e.get("dtype"), e.get("shape")
    _need(isinstance(dtype, str) and dtype in _DTYPES, f"header {where} has dtype {dtype!r:.40}, not one of "
                                                       f"{_DTYPES}")
    _need(isinstance(shape, list) and len(shape) <= _MAX_NDIM and all(_is_int(d) and d >= 0 for d in shape),
          f"header {where} has shape {shape!r:.80}: a list of at most {_MAX_NDIM} ints >= 0 is expected")
    return dtype, tuple(shape)


def _build_opt(header: dict, opt: Any) -> Any:
    from ._core import create_optimizer
    from ._guard import skip_nonfinite

    if opt is None:
        hp = dict(header["hyperparams"])
        la = header.get("lookahead")
        if la:
            hp.update(lookahead_alpha=la["alpha"], lookahead_k=la["k"])
        try:
            opt = create_optimizer(header["optimizer"], groups=header["groups"] or None, **hp)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as e:
            raise _Bad(f"its optimizer {header['optimizer']!r:.80} cannot be rebuilt from its header: {e}") from None
        if header.get("guard") == _GUARD:
            opt = skip_nonfinite(opt)
        _need(header.get("lookahead") is None or opt.name.startswith("lookahead_"),
              "its header has a 'lookahead' field for an optimizer without lookahead_")
    mine = _describe(opt)
    for key in ("optimizer", "hyperparams", "groups", "lookahead"):  # the guard is no part of the state
        if json.loads(json.dumps(mine.get(key))) != header.get(key):
            raise _Bad(f"its {key} {header.get(key)!r:.300} does not match the optimizer's {mine.get(key)!r:.300}")
    return opt


def _plan(header: dict, params: Mapping[str, Any], core: Any, lookahead: bool) -> list[_Spec]:
    """Every array the header references, with what the optimizer's layout says it must be."""
    names = set(header["slots"])
    if names != set(params):
        raise _Bad(f"its params do not match: missing from checkpoint {sorted(set(params) - names)!r:.300}, "
                   f"not in params {sorted(names - set(params))!r:.300}")
    version = header["format_version"]
    info = core.info
    specs: list[_Spec] = []
    seen: set[str] = set()
    for name, slots in header["slots"].items():
        p = params[name]
        half32 = info.half_compute == "float32" and _dtype_name(p) in ("float16", "bfloat16")
        param_slots = {k: "float32" if half32 else _dtype_name(p) for k in info.param_slots}
        if lookahead:
            param_slots["lookahead_slow_buff"] = _dtype_name(p)
        if version == 1:
            scalars = header.get("scalars", {}).get(name, {})
            dup = set(scalars) & set(slots)
            _need(not dup, f"header slots[{name!r}] and scalars[{name!r}] both hold {sorted(dup)}")
        for slot, entry in slots.items():
            where = f"slots[{name!r}][{slot!r}]"
            new: list[_Spec] = []
            if version == 1:
                keys = entry if isinstance(entry, list) else [entry]
                _need(bool(keys) and all(isinstance(k, str) and k and "/" not in k for k in keys),
                      f"header {where} must be a member name or a non-empty list of them")
                for i, k in enumerate(keys):
                    new.append(_Spec(name, slot, i if isinstance(entry, list) else None, k, None, None))
            else:
                _need(isinstance(entry, dict) and entry.get("kind") in ("array", "list", "value"),
                      f"header {where} must be an object with 'kind' 'array', 'list' or 'value'")
                if entry["kind"] == "value":
                    _need(set(entry) == {"kind", "value"} and _is_value(entry["value"]),
                          f"header {where} must hold a number, string, bool or null 'value'")
                elif entry["kind"] == "array":
                    dtype, shape = _array_entry(entry, where)
                    new.append(_Spec(name, slot, None, _member(name, slot), dtype, shape))
                else:
                    items = entry.get("items")
                    _need(set(entry) == {"kind", "items"} and isinstance(items, list) and bool(items),
                          f"header {where} must hold a non-empty 'items' list")
                    for i, e in enumerate(items):
                        dtype, shape = _array_entry(e, f"{where}[{i}]")
                        new.append(_Spec(name, slot, i, _member(name, slot, i), dtype, shape))
            if slot in param_slots:
                _need(len(new) == 1 and new[0].index is None, f"{where} must be an array like its param")
            if slot in _COUNTERS:
                _need(len(new) <= 1 and (not new or new[0].index is None), f"{where} is a counter: a number or a "
                                                                           "0-d array")
            for s in new:
                if slot in param_slots:
                    s.want_shape, s.want_dtype = tuple(p.shape), param_slots[slot]
                elif slot in _COUNTERS:
                    s.want_shape = ()
                _need(s.member not in seen, f"header references the member {s.member!r:.100} twice")
                seen.add(s.member)
                if s.dtype is not None:
                    _check_spec(s, s.dtype, s.shape)
            specs.extend(new)
    return specs


def _check_spec(s: _Spec, dtype: str, shape: tuple[int, ...]) -> None:
    where = f"state[{s.param!r}][{s.slot!r}]" + ("" if s.index is None else f"[{s.index}]")
    if s.want_shape is not None and (shape != s.want_shape or (s.want_dtype and dtype != s.want_dtype)):
        want = f"{s.want_shape} and {s.want_dtype}" if s.want_dtype else f"{s.want_shape} (a counter)"
        # the wording of format 1's message ("..., its param ...") is kept for param-shaped slots
        raise _Bad(f"{where} has shape {shape} and dtype {dtype}, its param {want}" if s.want_dtype
                   else f"{where} has shape {shape}, expected {want}")
    if s.slot in _COUNTERS and dtype in ("bool",):
        raise _Bad(f"{where} is a counter and has dtype {dtype}")


# ------------------------------------------------------------------------------------------------ load: readers

class _NpzReader:
    """The ZIP directory and the ``.npy`` headers of the referenced members, read before any array."""

    def __init__(self, f: Any, size: int) -> None:
        self.size = size
        self.zf = zipfile.ZipFile(f)
        self.infos: dict[str, zipfile.ZipInfo] = {}
        for info in self.zf.infolist():
            _need(info.filename not in self.infos, f"it holds the member {info.filename!r:.100} twice")
            self.infos[info.filename] = info
        self.layout: dict[str, tuple[np.dtype, tuple[int, ...], bool, int]] = {}

    def header(self) -> bytes:
        info = self.infos.get(_HEADER + _NPY)
        if info is None:
            raise _Bad("it is not an arrayoptim checkpoint (no header)")
        _need(info.file_size <= min(_MAX_HEADER_BYTES, _MAX_EXPANSION * self.size + 4096),
              f"its header member declares {info.file_size} bytes")
        self._check_info(info)
        dtype, shape, fortran, offset = self._npy_header(info)
        _need(dtype == np.uint8 and len(shape) == 1, f"its header member is {dtype}{list(shape)}, not a uint8 "
                                                      "vector")
        return self._read(info, dtype, shape, fortran, offset).tobytes()

    def _check_info(self, info: zipfile.ZipInfo) -> None:
        _need(info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED),
              f"member {info.filename!r:.100} uses compression method {info.compress_type} (stored or deflated "
              "expected)")
        _need(not info.flag_bits & 0x1, f"member {info.filename!r:.100} is encrypted")
        _need(info.header_offset + info.compress_size <= self.size,
              f"member {info.filename!r:.100} extends past the end of the file")
        if info.compress_type == zipfile.ZIP_STORED:
            _need(info.compress_size == info.file_size, f"member {info.filename!r:.100} has inconsistent sizes")

    def _npy_header(self, info: zipfile.ZipInfo) -> tuple[np.dtype, tuple[int, ...], bool, int]:
        with self.zf.open(info) as m:
            version = _npformat.read_magic(m)
            if version == (1, 0):
                shape, fortran, dtype = _npformat.read_array_header_1_0(m)
            elif version == (2, 0):
                shape, fortran, dtype = _npformat.read_array_header_2_0(m)
            else:
                raise _Bad(f"member {info.filename!r:.100} has .npy format version {version}")
            offset = m.tell()
        _need(isinstance(shape, tuple) and len(shape) <= _MAX_NDIM and all(_is_int(d) and d >= 0 for d in shape),
              f"member {info.filename!r:.100} declares shape {shape!r:.80}")
        _need(not dtype.hasobject and dtype.fields is None and dtype.subdtype is None and dtype.isnative
              and dtype.kind in "biuf" and dtype.name in _DTYPES,
              f"member {info.filename!r:.100} has dtype {dtype!r:.80} (plain native bool, int, uint or float "
              "expected)")
        nbytes = math.prod(shape) * dtype.itemsize
        _need(offset + nbytes == info.file_size, f"member {info.filename!r:.100} declares {dtype}{list(shape)} "
                                                 f"({nbytes} bytes) but holds {info.file_size - offset}")
        return dtype, shape, bool(fortran), offset

    def check(self, specs: list[_Spec]) -> None:
        wanted = {s.member + _NPY: s for s in specs}
        missing = sorted(set(wanted) - set(self.infos))
        _need(not missing, f"it lacks the members {missing!r:.300}")
        extra = sorted(set(self.infos) - set(wanted) - {_HEADER + _NPY})
        _need(not extra, f"it holds members its header does not reference: {extra!r:.300}")
        total = 0
        for name, s in wanted.items():
            info = self.infos[name]
            self._check_info(info)
            total += info.file_size
        _need(total <= _MAX_EXPANSION * self.size, f"its members declare {total} bytes, more than "
                                                   f"{_MAX_EXPANSION} x its size ({self.size} bytes)")
        for name, s in wanted.items():
            dtype, shape, fortran, offset = self.layout[name] = self._npy_header(self.infos[name])
            _check_member(s, dtype.name, shape)

    def read(self, s: _Spec) -> np.ndarray:
        name = s.member + _NPY
        dtype, shape, fortran, offset = self.layout[name]
        return self._read(self.infos[name], dtype, shape, fortran, offset)

    def _read(self, info: zipfile.ZipInfo, dtype: np.dtype, shape: tuple[int, ...], fortran: bool,
              offset: int) -> np.ndarray:
        nbytes = math.prod(shape) * dtype.itemsize
        buf = np.empty(nbytes, dtype=np.uint8)
        view = memoryview(buf)
        with self.zf.open(info) as m:
            _need(len(m.read(offset)) == offset, f"member {info.filename!r:.100} is truncated")
            pos = 0
            while pos < nbytes:
                n = m.readinto(view[pos:pos + _CHUNK])
                _need(n > 0, f"member {info.filename!r:.100} is truncated")
                pos += n
            m.read(1)  # reach the member's end: the CRC is checked there
        return buf.view(dtype).reshape(shape, order="F" if fortran else "C")


def _check_member(s: _Spec, stored: str, shape: tuple[int, ...]) -> None:
    """The member's own dtype/shape against the header's declaration (format 2) or the layout (format 1)."""
    if s.dtype is not None:
        want = _STORAGE.get(s.dtype, s.dtype)
        _need(stored == want and shape == s.shape, f"member {s.member!r:.100} holds {stored}{list(shape)}, its "
                                                   f"header declares {s.dtype}{list(s.shape)}")
    else:
        s.dtype, s.shape = stored, shape
        _check_spec(s, stored, shape)


class _SafetensorsReader:
    def __init__(self, path: str) -> None:
        safe_open = _safetensors(f"reading {path!r}")
        try:
            self.f = safe_open(path, framework="numpy")
        except Exception as e:  # the package's own SafetensorError (header or offsets invalid)
            raise _Bad(f"its safetensors header is invalid: {e}") from None

    def header(self) -> bytes:
        md = self.f.metadata() or {}
        text = md.get(_SAFETENSORS_KEY)
        if not isinstance(text, str):
            raise _Bad("it is not an arrayoptim checkpoint (no header)")
        _need(len(text) <= _MAX_HEADER_BYTES, "its header is too large")
        return text.encode("utf-8", "surrogatepass")

    def check(self, specs: list[_Spec]) -> None:
        wanted = {s.member: s for s in specs}
        keys = set(self.f.keys())
        missing = sorted(set(wanted) - keys)
        _need(not missing, f"it lacks the tensors {missing!r:.300}")
        extra = sorted(keys - set(wanted))
        _need(not extra, f"it holds tensors its header does not reference: {extra!r:.300}")
        for name, s in wanted.items():
            sl = self.f.get_slice(name)
            stored = _SAFETENSORS_DTYPES.get(sl.get_dtype())
            _need(stored is not None, f"tensor {name!r:.100} has dtype {sl.get_dtype()!r:.20}")
            _check_member(s, stored, tuple(int(d) for d in sl.get_shape()))

    def read(self, s: _Spec) -> np.ndarray:
        a = self.f.get_tensor(s.member)
        return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, copy=True)

    def close(self) -> None:
        exit_ = getattr(self.f, "__exit__", None)
        if exit_ is not None:
            exit_(None, None, None)


def _sniff_safetensors(f: Any, size: int) -> bool:
    head = f.read(9)
    f.seek(0)
    if len(head) < 9 or head[:2] == b"PK":
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 8 + n <= size


# ------------------------------------------------------------------------------------------------ load

def load_checkpoint(path: str | os.PathLike, params: Mapping[str, Any], opt: Any = None) -> tuple[Any, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`, validated against ``params``.

    Returns ``(opt, state)``: the optimizer rebuilt from the file's name and hyperparameters (wrapped in
    :func:`skip_nonfinite` if it was saved so), or ``opt`` itself when given, after checking it has the same name,
    hyperparameters and Lookahead settings; and the state with every array on the array library and device of its
    param (bfloat16 state as the library's bfloat16). The whole file is checked before any array is read (see the
    module docstring); a damaged, foreign or hostile file raises ``ValueError``, in time and memory bounded by
    its size. ``path`` must be a ``str`` or ``os.PathLike`` (``TypeError`` otherwise); a file that cannot be
    opened raises the ``OSError`` of ``open``.
    """
    target = _check_path(path)
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping from names to arrays, got {type(params).__name__}")
    if opt is not None:
        _layers(opt)  # TypeError for an argument that is no optimizer, before the file is read
    with open(target, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        reader: Any = None
        try:
            try:
                reader = _SafetensorsReader(target) if _sniff_safetensors(f, size) else _NpzReader(f, size)
                header = _parse_header(reader.header())
                opt = _build_opt(header, opt)
                guarded, la, core = _layers(opt)
                specs = _plan(header, params, core, la is not None)
                reader.check(specs)
                arrays = {(s.param, s.slot, s.index): (reader.read(s), s.dtype) for s in specs}
            finally:
                if isinstance(reader, _SafetensorsReader):
                    reader.close()
        except _Bad as e:
            raise ValueError(f"checkpoint {target!r}: {e}") from None
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError,
                NotImplementedError, RuntimeError, UnicodeDecodeError, OverflowError, KeyError, TypeError,
                AttributeError) as e:  # whatever a damaged file makes zipfile or numpy's .npy parser raise
            raise ValueError(f"checkpoint {target!r} is truncated or corrupted: {type(e).__name__}: {e}") from None
    try:
        state = _assemble(header, params, arrays)
        if core.info.locality != "step":  # as a step: a whole-step algorithm (LBFGS) checks its own state
            core.validate_state(params, state)  # every slot present, none foreign, each of the expected kind
        if la is not None:
            _check_lookahead_slots(params, state)
    except _Bad as e:
        raise ValueError(f"checkpoint {target!r}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {target!r}: {e}") from None
    return opt, state


def _check_counter(where: str, v: Any) -> None:
    if isinstance(v, np.ndarray):
        _need(v.ndim == 0 and v.dtype.kind in "iuf", f"{where} is a counter: a 0-d number, got {v.dtype}"
                                                       f"{list(v.shape)}")
        v = v.item()
    _need(isinstance(v, (int, float)) and not isinstance(v, bool), f"{where} is a counter: a number, got "
                                                                   f"{type(v).__name__}")
    _need(math.isfinite(v) and v >= 0 and float(v).is_integer(),
          f"{where} is a counter and must be a whole number >= 0, got {v!r}")


def _assemble(header: dict, params: Mapping[str, Any], arrays: Mapping[tuple, tuple[np.ndarray, str]]) -> dict:
    state: dict[str, dict[str, Any]] = {}
    version = header["format_version"]
    for name, slots in header["slots"].items():
        p = params[name]
        xp = array_namespace(p)
        out: dict[str, Any] = {}
        for slot, entry in slots.items():
            where = f"state[{name!r}][{slot!r}]"
            if version == 1:
                kind = "list" if isinstance(entry, list) else "array"
                n = len(entry) if kind == "list" else 0
            else:
                kind, n = entry["kind"], len(entry.get("items", ()))
            if kind == "value":
                value = entry["value"]
                if slot in _COUNTERS:
                    _check_counter(where, value)
                out[slot] = value
            elif kind == "array":
                a, tag = arrays[(name, slot, None)]
                if slot in _COUNTERS:
                    _check_counter(where, a)
                out[slot] = _to_library(a, tag, p, xp)
            else:
                out[slot] = [_to_library(*arrays[(name, slot, i)], p, xp) for i in range(n)]
        if version == 1:
            for slot, value in header.get("scalars", {}).get(name, {}).items():
                if slot in _COUNTERS:
                    _check_counter(f"state[{name!r}][{slot!r}]", value)
                out[slot] = value
        state[name] = out
    return state


def _to_library(a: np.ndarray, tag: str, p: Any, xp: Any) -> Any:
    """The host array ``a`` as an array of ``p``'s library, on ``p``'s device."""
    if tag == "bfloat16":
        if is_torch_array(p):
            import torch

            return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).to(p.device)
        bf = getattr(xp, "bfloat16", None)
        try:
            host = a.view(np.dtype(bf))
        except TypeError:
            raise _Bad(f"bfloat16 state cannot be loaded onto {type(p).__module__}.{type(p).__name__} params "
                       "(that library has no bfloat16)") from None
        return xp.asarray(host, device=_device(p))
    return xp.asarray(a, device=_device(p))


def _check_lookahead_slots(params: Mapping[str, Any], state: Mapping[str, Mapping]) -> None:
    for name, slots in state.items():
        p = params[name]
        slow = slots.get("lookahead_slow_buff")
        if slow is not None:
            _need(is_array_api_obj(slow) and tuple(slow.shape) == tuple(p.shape) and slow.dtype == p.dtype,
                  f"state[{name!r}]['lookahead_slow_buff'] must be an array like its param")
        _need("lookahead_step" in slots, f"state[{name!r}] lacks 'lookahead_step' (a Lookahead checkpoint)")


def _dtype_name(p: Any) -> str:
    return str(p.dtype).rsplit(".", 1)[-1]


# ------------------------------------------------------------------------------------------------ torch layout

def to_state_dict(opt: Any, state: Mapping[str, Mapping[str, Any]],
                  order: Sequence[str] | None = None) -> dict[str, Any]:
    """torch's ``Optimizer.state_dict()`` layout: params numbered in ``order`` (default: ``state``'s order),
    one param group per arrayoptim group (params in no group first, as the top-level record), with
    ``param_names``. Params without state are left out of ``'state'``, as torch does. A per-group counter (see
    ``OptimInfo.counter``; Lookahead's ``lookahead_step``) goes to its group, where timm keeps it; Lookahead's
    groups also carry ``lookahead_alpha`` and ``lookahead_k``, as timm's."""
    order = list(state) if order is None else list(order)
    index = {n: i for i, n in enumerate(order)}
    _, la, base = _layers(opt)
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
        if la is not None:
            g.update(lookahead_alpha=la.lookahead.alpha, lookahead_k=la.lookahead.k, lookahead_step=0)
        for c in counters:  # every param of a group holds the group's count: the first one's
            count = next((state[n][c] for n in names if c in state.get(n, {})), None)
            if count is not None:
                g[c] = count
        out_groups.append(g)
    return {"state": out_state, "param_groups": out_groups}


def _group_counters(opt: Any) -> tuple[str, ...]:
    _, la, base = _layers(opt)
    return (("step",) if base.info.counter == "group" else ()) + (("lookahead_step",) if la is not None else ())


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
