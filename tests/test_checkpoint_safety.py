"""Checkpoints that cannot hurt: atomic saves, and loads that refuse every damaged, foreign or hostile file with
``ValueError`` before materialising anything, in bounded time and memory; round trips of every registered name in
float64 and in half precision (float16, torch bfloat16), in both formats."""
from __future__ import annotations

import io
import json
import os
import re
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import arrayoptim as ao
from arrayoptim import checkpoint as ck
from optim_db import OPTIM_DB

NAMES = [n for n in ao.list_optimizers() if n in OPTIM_DB]


def _extra(opt, params, grads):
    make = OPTIM_DB[opt.name.removeprefix("lookahead_")].step_kwargs
    return make(params, grads) if make else {}


def _problem(name="adam", seed=0, steps=3, cast=None):
    rng = np.random.default_rng(seed)
    shapes = {"w": (4, 3), "b": (3,), "s": ()}
    if OPTIM_DB[name.removeprefix("lookahead_")].shapes:
        shapes = {"w": (4, 3), "b": (2, 3), "s": (3, 2)}
    cast = cast or (lambda a: a)
    params = {k: cast(rng.standard_normal(v)) for k, v in shapes.items()}
    grads = [{k: cast(rng.standard_normal(v)) for k, v in shapes.items()} for _ in range(steps)]
    return params, grads


def _train(opt, params, state, grads):
    for g in grads:
        params, state = opt.step(params, g, state, **_extra(opt, params, g))
    return params, state


def _np(x):
    if hasattr(x, "detach"):
        import torch

        x = x.detach().cpu()
        return (x.view(torch.int16).numpy().view(np.uint16), "bf16") if x.dtype == torch.bfloat16 else (x.numpy(), "")
    return np.asarray(x), ""


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for n in b:
        assert list(a[n]) == list(b[n]), (n, list(a[n]), list(b[n]))
        for k, want in b[n].items():
            got = a[n][k]
            if isinstance(want, list):
                assert isinstance(got, list) and len(got) == len(want)
            else:
                got, want = [got], [want]
            for x, y in zip(got, want):
                assert type(x) is type(y), (n, k, type(x), type(y))
                if hasattr(y, "dtype"):
                    assert x.dtype == y.dtype and tuple(x.shape) == tuple(y.shape), (n, k)
                    (xa, tx), (ya, ty) = _np(x), _np(y)
                    assert tx == ty
                    np.testing.assert_array_equal(xa, ya)
                else:
                    assert x == y, (n, k)


def _saved(tmp_path, name="adam", steps=2, fmt=None, **kw):
    opt = ao.create_optimizer(name, **kw)
    params, grads = _problem(name)
    params, state = _train(opt, params, opt.init(params), grads[:steps])
    path = tmp_path / ("c.safetensors" if fmt == "safetensors" else "c.npz")
    ao.save_checkpoint(path, opt, state)
    return path, opt, params, state


# ------------------------------------------------------------------------------------------------ round trips

@pytest.mark.parametrize("name", NAMES + ["lookahead_adamw"])
def test_round_trip_float64_every_name(name, tmp_path):
    opt = ao.create_optimizer(name, **OPTIM_DB[name.removeprefix("lookahead_")].inputs[-1].kwargs)
    params, grads = _problem(name)
    params, state = _train(opt, params, opt.init(params), grads)
    ao.save_checkpoint(tmp_path / "c.npz", opt, state)
    opt2, got = ao.load_checkpoint(tmp_path / "c.npz", params)
    assert opt2.name == opt.name and opt2.hyperparams == opt.hyperparams
    _assert_same_state(got, state)


def _half_round_trip(name, params, grads, path):
    opt = ao.create_optimizer(name, **OPTIM_DB[name].inputs[-1].kwargs)
    params, state = _train(opt, params, opt.init(params), grads)
    ao.save_checkpoint(path, opt, state)
    _, got = ao.load_checkpoint(path, params)
    _assert_same_state(got, state)
    if opt.info.half_compute == "float32":  # float32 state beside half params loads
        assert any(getattr(v, "dtype", None) is not None and "float32" in str(v.dtype)
                   for s in got.values() for v in s.values())
    opt.step(params, grads[0], got, **_extra(opt, params, grads[0]))  # and the loaded state steps


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_float16_every_name(name, tmp_path):
    params, grads = _problem(name, cast=lambda a: a.astype(np.float16))
    _half_round_trip(name, params, grads, tmp_path / "c.npz")


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_torch_bfloat16_every_name(name, tmp_path):
    torch = pytest.importorskip("torch")
    params, grads = _problem(name, cast=lambda a: torch.tensor(a).to(torch.bfloat16))
    _half_round_trip(name, params, grads, tmp_path / "c.npz")


def test_bfloat16_is_stored_as_uint16_bits_with_a_dtype_tag(tmp_path):
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer("adamw")
    p = {"w": torch.ones(3, dtype=torch.bfloat16)}
    p, s = opt.step(p, {"w": torch.full((3,), 0.5, dtype=torch.bfloat16)}, opt.init(p))
    ao.save_checkpoint(tmp_path / "c.npz", opt, s)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert z["w/exp_avg"].dtype == np.uint16
        header = json.loads(bytes(z["__arrayoptim_header__"]))
    assert header["format_version"] == 2 and header["slots"]["w"]["exp_avg"]["dtype"] == "bfloat16"
    _, got = ao.load_checkpoint(tmp_path / "c.npz", p)
    assert got["w"]["exp_avg"].dtype == torch.bfloat16 and torch.equal(got["w"]["exp_avg"], s["w"]["exp_avg"])


def test_jax_bfloat16_round_trip(tmp_path):
    jnp = pytest.importorskip("jax.numpy")
    opt = ao.create_optimizer("adamw")
    p = {"w": jnp.ones(3, dtype=jnp.bfloat16)}
    p, s = opt.step(p, {"w": jnp.full((3,), 0.5, dtype=jnp.bfloat16)}, opt.init(p))
    ao.save_checkpoint(tmp_path / "c.npz", opt, s)
    _, got = ao.load_checkpoint(tmp_path / "c.npz", p)
    assert got["w"]["exp_avg"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(got["w"]["exp_avg"], np.float32), np.asarray(s["w"]["exp_avg"], np.float32))


def test_readable_member_names_escape_slashes_and_round_trip(tmp_path):
    opt = ao.create_optimizer("adam")
    names = ["enc/w", "enc%2Fw", "", ".", "..", "~", "ü/ß", "a.b"]
    params = {n: np.ones(2) for n in names}
    params, state = opt.step(params, {n: np.ones(2) for n in names}, opt.init(params))
    ao.save_checkpoint(tmp_path / "c.npz", opt, state)
    files = set(zipfile.ZipFile(tmp_path / "c.npz").namelist())
    assert {"enc%2Fw/exp_avg.npy", "enc%252Fw/exp_avg.npy", "~/exp_avg.npy", "%2E/exp_avg.npy",
            "%2E./exp_avg.npy", "%7E/exp_avg.npy", "a.b/exp_avg.npy", "%C3%BC%2F%C3%9F/exp_avg.npy"} <= files
    assert len(files) == 1 + 3 * len(names)
    _, got = ao.load_checkpoint(tmp_path / "c.npz", params)
    _assert_same_state(got, state)


def test_format_1_files_still_load(tmp_path):
    opt = ao.create_optimizer("adam", lr=0.01)
    params, grads = _problem()
    params, state = _train(opt, params, opt.init(params), grads)
    header = {"format_version": 1, "optimizer": "adam", "hyperparams": json.loads(json.dumps(
        opt.hyperparams.as_dict())), "groups": [], "slots": {}, "scalars": {}}
    arrays = {}
    for n, slots in state.items():
        header["slots"][n] = {}
        for k, v in slots.items():
            header["slots"][n][k] = f"a{len(arrays)}"
            arrays[f"a{len(arrays)}"] = v
    np.savez(tmp_path / "v1.npz", __arrayoptim_header__=np.frombuffer(json.dumps(header).encode(), np.uint8),
             **arrays)
    _, got = ao.load_checkpoint(tmp_path / "v1.npz", params)
    _assert_same_state(got, state)
    header["slots"]["w"]["step"] = "a1"  # a format-1 file is checked as strictly: a counter of shape (4, 3)
    np.savez(tmp_path / "v1bad.npz", __arrayoptim_header__=np.frombuffer(json.dumps(header).encode(), np.uint8),
             **arrays)
    with pytest.raises(ValueError):
        ao.load_checkpoint(tmp_path / "v1bad.npz", params)


def test_safetensors_format(tmp_path):
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    opt = ao.create_optimizer("kron", **OPTIM_DB["kron"].inputs[-1].kwargs)
    params, grads = _problem("kron")
    params, state = _train(opt, params, opt.init(params), grads)
    ao.save_checkpoint(tmp_path / "c.safetensors", opt, state)
    assert (tmp_path / "c.safetensors").read_bytes()[8:9] == b"{"
    _, got = ao.load_checkpoint(tmp_path / "c.safetensors", params)
    _assert_same_state(got, state)
    ao.save_checkpoint(tmp_path / "other.bin", opt, state, format="safetensors")
    _assert_same_state(ao.load_checkpoint(tmp_path / "other.bin", params)[1], state)
    # bfloat16, and the same refusals as npz
    opt = ao.create_optimizer("adamw")
    p = {"w": torch.ones(3, dtype=torch.bfloat16)}
    p, s = opt.step(p, {"w": torch.ones(3, dtype=torch.bfloat16)}, opt.init(p))
    ao.save_checkpoint(tmp_path / "bf.safetensors", opt, s)
    _assert_same_state(ao.load_checkpoint(tmp_path / "bf.safetensors", p)[1], s)
    raw = (tmp_path / "bf.safetensors").read_bytes()
    for cut in (4, 20, len(raw) // 2, len(raw) - 1):
        (tmp_path / "t.safetensors").write_bytes(raw[:cut])
        with pytest.raises(ValueError):
            ao.load_checkpoint(tmp_path / "t.safetensors", p)
    import safetensors.numpy

    (tmp_path / "plain.safetensors").write_bytes(safetensors.numpy.save({"x": np.ones(2)}))
    with pytest.raises(ValueError, match="not an arrayoptim checkpoint"):
        ao.load_checkpoint(tmp_path / "plain.safetensors", p)
    with pytest.raises(ValueError, match="format must be"):
        ao.save_checkpoint(tmp_path / "x", opt, s, format="pickle")


# ------------------------------------------------------------------------------------------------ adversarial

def _bounded_load(path, params, **kw):
    """Load expecting ValueError, in < 2 s, and with a tracemalloc peak bounded by the file's size (measured in a
    second run: tracemalloc slows allocation-heavy code several times). The bound is 32 x the size + 4 MiB: the
    arrays read are bounded by the size itself; parsing a JSON header or a ZIP directory makes Python objects
    (up to ~20 bytes per byte of header)."""
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        ao.load_checkpoint(path, params, **kw)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, elapsed
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            ao.load_checkpoint(path, params, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * size + (4 << 20), (peak, size)
    return str(info.value)


def _write(path, header, members, compression=zipfile.ZIP_STORED):
    """A hand-made npz: the header object (or raw bytes) and ``{member name: raw .npy bytes or array}``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, value in [("__arrayoptim_header__", np.frombuffer(raw, np.uint8)), *members.items()]:
            if isinstance(value, np.ndarray):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, value, allow_pickle=False)
                value = buf.getvalue()
            zf.writestr(name + ".npy", value)
    return path


def _npy_bytes(descr, shape):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _contents(path):
    with zipfile.ZipFile(path) as zf:
        header = json.loads(np.load(io.BytesIO(zf.read("__arrayoptim_header__.npy"))).tobytes())
        members = {n[:-4]: zf.read(n) for n in zf.namelist() if n != "__arrayoptim_header__.npy"}
    return header, members


def test_truncated_and_corrupted_files(tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    raw = path.read_bytes()
    cases = 0
    for cut in (0, 1, 10, 100, len(raw) // 3, len(raw) // 2, len(raw) - 22, len(raw) - 1):
        (tmp_path / "t.npz").write_bytes(raw[:cut])
        _bounded_load(tmp_path / "t.npz", params)
        cases += 1
    rng = np.random.default_rng(0)
    data_at = raw.index(b"w/exp_avg.npy")  # flip bytes in the array data, the .npy headers, the zip directory
    for pos in list(rng.integers(0, len(raw), 24)) + [data_at + 200, len(raw) - 30]:
        bad = bytearray(raw)
        bad[pos] ^= 0xFF
        (tmp_path / "x.npz").write_bytes(bytes(bad))
        try:
            _, st = ao.load_checkpoint(tmp_path / "x.npz", params)
        except ValueError:
            pass  # the flipped byte mattered
        cases += 1
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    assert "truncated or corrupted" in _bounded_load(tmp_path / "junk.npz", params)
    assert cases == 34


def test_oversized_declared_shape_and_decompression_bomb(tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    header, members = _contents(path)
    # a .npy header declaring (2**40,) floats over a few bytes of data
    hdr = io.BytesIO()
    np.lib.format.write_array_header_1_0(hdr, {"descr": "<f8", "fortran_order": False, "shape": (2 ** 40,)})
    for shape in ([2 ** 40], [4, 3]):
        h = json.loads(json.dumps(header))
        h["slots"]["w"]["exp_avg"]["shape"] = shape
        _write(tmp_path / "big.npz", h, {**members, "w/exp_avg": hdr.getvalue() + b"\0" * 64})
        _bounded_load(tmp_path / "big.npz", params)
    # a small file whose deflated members expand far beyond it (~1 GB declared from ~1 MB), in a slot whose shape
    # the layout does not fix (Kron's factors): refused by the size budget before anything is inflated
    kpath, _, kparams, _ = _saved(tmp_path, "kron", **OPTIM_DB["kron"].inputs[-1].kwargs)
    header, members = _contents(kpath)
    h = json.loads(json.dumps(header))
    h["slots"]["w"]["Q"]["items"][0]["shape"] = [2 ** 27]
    _write(tmp_path / "bomb.npz", h, {**members, "w/Q/0": np.zeros(2 ** 27)}, compression=zipfile.ZIP_DEFLATED)
    assert os.path.getsize(tmp_path / "bomb.npz") < 2 << 20
    assert "more than" in _bounded_load(tmp_path / "bomb.npz", kparams)
    # a zip directory that lies about a stored member's size
    raw = bytearray(path.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")
    raw[cd + 24:cd + 28] = (2 ** 31).to_bytes(4, "little")  # uncompressed size of the last entry
    (tmp_path / "lie.npz").write_bytes(bytes(raw))
    _bounded_load(tmp_path / "lie.npz", params)


def test_members_missing_extra_duplicated_or_foreign(tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    header, members = _contents(path)
    cases = [
        (header, {k: v for k, v in members.items() if k != "w/exp_avg"}, "lacks the members"),
        (header, {**members, "w/evil": np.ones(2)}, "does not reference"),
        (header, {**members, "../../etc/passwd": np.ones(2)}, "does not reference"),
        (header, {**members, "w/exp_avg": np.ones((4, 3), np.float32)}, "header declares"),
        (header, {**members, "w/exp_avg": _npy_bytes("|O", (1,)) + b"\x80\x04N."}, "dtype"),  # a pickle
        (header, {**members, "w/exp_avg": np.ones((4, 3), np.complex128)}, "dtype"),
        (header, {**members, "w/exp_avg": np.ones((4, 3), ">f8")}, "dtype"),
    ]
    h = json.loads(json.dumps(header))  # a slot removed from the header and its member: the layout lacks it
    del h["slots"]["w"]["exp_avg"]
    cases.append((h, {k: v for k, v in members.items() if k != "w/exp_avg"}, "lacks"))
    h = json.loads(json.dumps(header))  # a slot Adam does not keep
    h["slots"]["w"]["momentum_buffer"] = h["slots"]["w"]["exp_avg"]
    cases.append((h, {**members, "w/momentum_buffer": members["w/exp_avg"]}, "does not keep"))
    h = json.loads(json.dumps(header))  # the state of another optimizer under this one's name
    h["optimizer"] = "sgd"
    cases.append((h, members, "cannot be rebuilt|does not keep|lacks"))
    for i, (h, m, match) in enumerate(cases):
        msg = _bounded_load(_write(tmp_path / f"m{i}.npz", h, m), params)
        assert re.search(match, msg), (i, msg)
    # foreign optimizer given explicitly, and params that are not these
    with pytest.raises(ValueError, match="optimizer 'adam' does not match"):
        ao.load_checkpoint(path, params, opt=ao.create_optimizer("sgd"))
    with pytest.raises(ValueError, match="params do not match"):
        ao.load_checkpoint(path, {**params, "x": np.ones(1)})
    # a plain npz with two members of the same name
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name it writes
        _write(tmp_path / "dup.npz", header, members)
        with zipfile.ZipFile(tmp_path / "dup.npz", "a") as zf:
            zf.writestr("w/exp_avg.npy", b"x")
    assert "twice" in _bounded_load(tmp_path / "dup.npz", params)


BAD_HEADERS = [
    b"[1, 2]", b'"adam"', b"null", b"\xff\xfe", b"{", b"[" * 100000 + b"]" * 100000,
    {"format_version": "2"}, {"format_version": True}, {"format_version": 99},
    {"optimizer": 3}, {"optimizer": "nope"}, {"hyperparams": []}, {"hyperparams": {"lr": {"x": 1}}},
    {"hyperparams": {"lr": "fast"}}, {"hyperparams": {"nope": 1}}, {"groups": {}}, {"groups": [1]},
    {"groups": [{"params": "w"}]}, {"groups": [{"params": ["zz"]}]}, {"lookahead": {"alpha": 0.5}},
    {"lookahead": {"alpha": 0.5, "k": 2}}, {"guard": "yes"}, {"slots": []}, {"slots": {"w": []}},
    {"extra": 1}, {"scalars": {}},
]
SLOT_EDITS = [  # (slot, entry) put into slots['w']
    ("exp_avg", {"kind": "array", "dtype": "complex128", "shape": [4, 3]}),
    ("exp_avg", {"kind": "array", "dtype": "float64", "shape": [4, -3]}),
    ("exp_avg", {"kind": "array", "dtype": "float64", "shape": "4,3"}),
    ("exp_avg", {"kind": "array", "dtype": "float64", "shape": [4, 3.0]}),
    ("exp_avg", {"kind": "array", "dtype": "float64"}),
    ("exp_avg", {"kind": "value", "value": 1.0}),
    ("exp_avg", {"kind": "list", "items": []}),
    ("exp_avg", {"kind": "weird"}),
    ("exp_avg", "a0"),
    ("exp_avg", None),
    ("step", {"kind": "array", "dtype": "float64", "shape": [5]}),
    ("step", {"kind": "value", "value": [1]}),
]


@pytest.mark.parametrize("i", range(len(BAD_HEADERS) + len(SLOT_EDITS)))
def test_malformed_headers_raise_value_error(i, tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    header, members = _contents(path)
    if i < len(BAD_HEADERS):
        bad = BAD_HEADERS[i]
        h = bad if isinstance(bad, bytes) else {**header, **bad}
    else:
        slot, entry = SLOT_EDITS[i - len(BAD_HEADERS)]
        h = json.loads(json.dumps(header))
        h["slots"]["w"][slot] = entry
    _bounded_load(_write(tmp_path / "h.npz", h, members), params)


STEP_VALUES = [np.array([1.0, 2.0, 3.0, 4.0, 5.0]), np.array(1.0 + 2j), np.array(np.nan), np.array(np.inf),
               np.array(-1.0), np.array(1.5), np.array(True), np.array(2.0, np.float32), np.ones((1, 1))]


@pytest.mark.parametrize("k", range(len(STEP_VALUES)))
def test_wrong_step_shapes_dtypes_and_values(k, tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    header, members = _contents(path)
    v = STEP_VALUES[k]
    h = json.loads(json.dumps(header))
    if v.dtype.kind in "bif" and v.dtype != np.float16:
        h["slots"]["w"]["step"] = {"kind": "array", "dtype": v.dtype.name, "shape": list(v.shape)}
    _bounded_load(_write(tmp_path / "s.npz", h, {**members, "w/step": v}), params)


@pytest.mark.parametrize("value", [-1, 1.5, float("nan"), float("inf"), True, "3", None])
def test_bad_host_counters(value, tmp_path):
    opt = ao.create_optimizer("kron", **OPTIM_DB["kron"].inputs[-1].kwargs)
    params, grads = _problem("kron")
    params, state = _train(opt, params, opt.init(params), grads[:2])
    ao.save_checkpoint(tmp_path / "k.npz", opt, state)
    header, members = _contents(tmp_path / "k.npz")
    header["slots"]["w"]["step"] = {"kind": "value", "value": value}
    _bounded_load(_write(tmp_path / "kb.npz", header, members), params)


def test_many_members_and_a_large_header_stay_bounded(tmp_path):
    path, opt, params, _ = _saved(tmp_path)
    header, members = _contents(path)
    extra = {f"junk/{i}": np.zeros(0) for i in range(20000)}
    _bounded_load(_write(tmp_path / "many.npz", header, {**members, **extra}), params)
    h = {**header, "hyperparams": {**header["hyperparams"], "pad": ["x" * 100] * 4}}
    h["slots"] = {**h["slots"], **{f"p{i}": {} for i in range(50000)}}
    _bounded_load(_write(tmp_path / "hdr.npz", h, members), params)


# ------------------------------------------------------------------------------------------------ paths, saves

@pytest.mark.parametrize("bad", [3, True, 3.0, b"c.npz", None, io.BytesIO()])
def test_paths_must_be_names(bad, tmp_path):
    path, opt, params, state = _saved(tmp_path)
    with pytest.raises(TypeError, match="path"):
        ao.save_checkpoint(bad, opt, state)
    with pytest.raises(TypeError, match="path"):
        ao.load_checkpoint(bad, params)


def test_int_path_does_not_touch_the_descriptor(tmp_path):
    path, opt, params, state = _saved(tmp_path)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(TypeError, match="path"):
            ao.load_checkpoint(fd, params)
        os.fstat(fd)  # still open
    finally:
        os.close(fd)


@pytest.mark.parametrize("where", ["write_array", "fsync", "replace", "state"])
def test_interrupted_save_leaves_the_previous_file(where, tmp_path, monkeypatch):
    path, opt, params, state = _saved(tmp_path)
    before = path.read_bytes()
    _, later = _train(opt, params, state, _problem()[1])
    calls = []

    def fail(*a, **k):
        calls.append(1)
        if where == "write_array" and len(calls) < 3:
            return real(*a, **k)  # the header and one array written, then the disk is full
        raise OSError("simulated failure")

    if where == "state":
        later = {**later, "w": {**later["w"], "bad": object()}}
    else:
        mod = {"write_array": np.lib.format, "fsync": os, "replace": os}[where]
        real = getattr(mod, where)
        monkeypatch.setattr(mod, where, fail)
    with pytest.raises((OSError, TypeError)):
        ao.save_checkpoint(path, opt, later)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.npz"]  # no temporary file left behind
    ao.load_checkpoint(path, params)


def test_save_keeps_permissions_of_a_plain_open(tmp_path):
    path, opt, params, state = _saved(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
