"""``arrayoptim bench`` / ``python -m arrayoptim.backends.bench``: arrayoptim vs torch.optim, timm and optax on CPU.

Every implementation of one optimizer on one parameter set runs in this process on the same float32 data and is
timed **interleaved**: ``--rounds`` rounds, each running every implementation for a block of ``--steps`` steps in
a rotating order (plus a copy-bandwidth probe), so all see the same machine conditions. Reported: the median ms
per step over all timed steps, ratios to torch's ``foreach=True`` and ``fused=True`` step, effective GB/s
(the optimizer's minimal bytes per param x params / time) and its share of the measured copy bandwidth, and for
the NumPy implementations the peak extra memory of one step (tracemalloc), also as a multiple of the largest
param (a "param-sized temporary").

Implementations (those whose library is missing are skipped):

``ao``            arrayoptim per-tensor step, ``copy=False``, default accelerators (NumPy ufunc chains)
``ao-ref``        the same with the reference array-API kernels only (``arrayoptim._accel.use()``)
``ao-numba``      per-tensor with the optional numba accelerator
``ao-flat``       :func:`arrayoptim.flat` mode, grads handed over already flat (elementwise optimizers only)
``ao-flat-numba`` flat mode with numba
``torch-loop`` / ``torch-foreach`` / ``torch-fused``  torch.optim (or timm where torch has no such class)
``optax``         optax under ``jax.jit`` with donated buffers, a dict pytree

Thread count: ``--threads`` (default 1) is set in ``OMP_NUM_THREADS`` & co. and ``torch.set_num_threads`` before
the frameworks are imported, and the process is pinned to that many CPUs; both are printed.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from typing import Any, Callable, Sequence

__all__ = ["main", "CONFIGS", "OPTIMIZERS", "RESNET50_SHAPES"]

# torchvision.models.resnet50(weights=None): its 161 parameter shapes in .parameters() order (25,557,032 params)
_B = [(64, 3, 7, 7), (64,), (64,)]


def _resnet50_shapes() -> list[tuple[int, ...]]:
    shapes = list(_B)
    inplanes = 64
    for planes, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            width, out = planes, planes * 4
            shapes += [(width, inplanes, 1, 1), (width,), (width,), (width, width, 3, 3), (width,), (width,),
                       (out, width, 1, 1), (out,), (out,)]
            if b == 0:
                shapes += [(out, inplanes, 1, 1), (out,), (out,)]  # downsample conv + bn
            inplanes = out
    return shapes + [(1000, 2048), (1000,)]


RESNET50_SHAPES: list[tuple[int, ...]] = _resnet50_shapes()
assert len(RESNET50_SHAPES) == 161 and sum(math.prod(s) for s in RESNET50_SHAPES) == 25_557_032

CONFIGS: dict[str, list[tuple[int, ...]]] = {
    "resnet50": RESNET50_SHAPES,
    "many-small": [(1024,)] * 2000,
    "big": [(16 * 1024 * 1024,)],
    "tiny": [(32, 16), (16,), (8, 4, 3, 3), (1,), (100,)],
}

# name -> (arrayoptim name, arrayoptim hparams, bytes/param moved by a minimal implementation)
OPTIMIZERS: dict[str, tuple[str, dict[str, Any], int]] = {
    "adamw": ("adamw", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2), 28),
    "sgd": ("momentum", dict(lr=1e-2, momentum=0.9, weight_decay=1e-4, nesterov=False), 20),
    "lion": ("lion", dict(lr=1e-4, betas=(0.9, 0.99), weight_decay=1e-2), 20),
    "lamb": ("lamb", dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=1e-2), 28),
    "adafactor": ("torchadafactor", dict(lr=1e-2), 12),
}

IMPLS = ("ao", "ao-ref", "ao-numba", "ao-flat", "ao-flat-numba", "torch-loop", "torch-foreach", "torch-fused",
         "optax")


def _pin_threads(n: int) -> str:
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                "NUMEXPR_MAX_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    if n == 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
    affinity = "n/a"
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[:n]
        os.sched_setaffinity(0, cpus)
        affinity = ",".join(map(str, cpus))
    return affinity


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


# ------------------------------------------------------------------------------------------------ implementations

def _make_data(shapes: list[tuple[int, ...]], seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    params = {f"p{i:04d}": rng.standard_normal(s, dtype=np.float32) for i, s in enumerate(shapes)}
    grads = {k: (rng.standard_normal(v.shape, dtype=np.float32) * 1e-2).astype(np.float32)
             for k, v in params.items()}
    return params, grads


def _ao_step(opt_name: str, hp: dict, params: dict, grads: dict, accel: tuple[str, ...] | None) -> Callable:
    import arrayoptim as ao
    from arrayoptim import _accel

    opt = ao.create_optimizer(opt_name, **hp)
    p = {k: v.copy() for k, v in params.items()}
    st = opt.init(p)
    box = [p, st]

    def step():
        prev = _accel.use(*accel) if accel is not None else None
        try:
            box[0], box[1] = opt.step(box[0], grads, box[1], copy=False)
        finally:
            if prev is not None:
                _accel.use(*prev)
    return step


def _ao_flat_step(opt_name: str, hp: dict, params: dict, grads: dict, accel: tuple[str, ...] | None) -> Callable:
    import arrayoptim as ao
    from arrayoptim import _accel

    fo = ao.flat(ao.create_optimizer(opt_name, **hp))
    fp = fo.pack({k: v.copy() for k, v in params.items()})
    fg = fo.pack(grads)
    box = [fp, fo.init(fp)]

    def step():
        prev = _accel.use(*accel) if accel is not None else None
        try:
            box[0], box[1] = fo.step(box[0], fg, box[1], copy=False)
        finally:
            if prev is not None:
                _accel.use(*prev)
    return step


def _torch_class(opt: str):
    import torch

    if opt == "adamw":
        return torch.optim.AdamW, {}
    if opt == "sgd":
        return torch.optim.SGD, {}
    if opt == "adafactor" and hasattr(torch.optim, "Adafactor"):
        return torch.optim.Adafactor, {}
    if opt in ("lion", "lamb") and _have("timm"):
        import timm.optim

        return {"lion": timm.optim.Lion, "lamb": timm.optim.Lamb}[opt], {}
    return None, {}


def _torch_step(opt: str, hp: dict, params: dict, grads: dict, mode: str) -> Callable | None:
    import torch

    cls, _ = _torch_class(opt)
    if cls is None:
        return None
    kw = dict(hp)
    if mode == "loop":
        kw["foreach"] = False
    elif mode == "foreach":
        kw["foreach"] = True
    else:
        kw["fused"] = True
    ps = []
    for k, v in params.items():
        t = torch.from_numpy(v.copy()).requires_grad_(True)
        t.grad = torch.from_numpy(grads[k].copy())
        ps.append(t)
    try:
        o = cls(ps, **kw)
        o.step()
    except (TypeError, RuntimeError, ValueError):
        return None  # this class has no such mode (e.g. no fused Lion)
    return o.step


def _optax_step(opt: str, hp: dict, params: dict, grads: dict) -> Callable | None:
    if not (_have("optax") and _have("jax")):
        return None
    import jax
    import jax.numpy as jnp
    import optax

    if opt == "adamw":
        tx = optax.adamw(hp["lr"], b1=hp["betas"][0], b2=hp["betas"][1], eps=hp["eps"],
                         weight_decay=hp["weight_decay"])
    elif opt == "sgd":
        tx = optax.chain(optax.add_decayed_weights(hp["weight_decay"]),
                         optax.sgd(hp["lr"], momentum=hp["momentum"]))
    elif opt == "lion":
        tx = optax.lion(hp["lr"], b1=hp["betas"][0], b2=hp["betas"][1], weight_decay=hp["weight_decay"])
    elif opt == "lamb":
        tx = optax.lamb(hp["lr"], b1=hp["betas"][0], b2=hp["betas"][1], eps=hp["eps"],
                        weight_decay=hp["weight_decay"])
    elif opt == "adafactor":
        tx = optax.adafactor(hp["lr"])
    else:
        return None
    p = {k: jnp.asarray(v) for k, v in params.items()}
    g = {k: jnp.asarray(v) for k, v in grads.items()}
    st = tx.init(p)

    def _update(p, st, g):
        u, st = tx.update(g, st, p)
        return optax.apply_updates(p, u), st

    update = jax.jit(_update, donate_argnums=(0, 1))
    box = [p, st]

    def step():
        box[0], box[1] = update(box[0], box[1], g)
        jax.block_until_ready(box[0])
    return step


def _build(impl: str, opt: str, params: dict, grads: dict) -> Callable | None:
    import arrayoptim as ao
    from arrayoptim import _accel

    ao_name, hp, _ = OPTIMIZERS[opt]
    numba_ok = _accel.available("numba")
    flat_ok = hasattr(ao, "flat") and ao.get_optimizer_info(ao_name).locality == "element"
    if impl == "ao":
        return _ao_step(ao_name, hp, params, grads, None)
    if impl == "ao-ref":
        return _ao_step(ao_name, hp, params, grads, ())
    if impl == "ao-numba":
        return _ao_step(ao_name, hp, params, grads, ("numba", "numpy")) if numba_ok else None
    if impl == "ao-flat":
        return _ao_flat_step(ao_name, hp, params, grads, None) if flat_ok else None
    if impl == "ao-flat-numba":
        return _ao_flat_step(ao_name, hp, params, grads, ("numba", "numpy")) if flat_ok and numba_ok else None
    if impl.startswith("torch-"):
        if not _have("torch"):
            return None
        return _torch_step(opt, hp, params, grads, impl.split("-", 1)[1])
    if impl == "optax":
        return _optax_step(opt, hp, params, grads)
    raise ValueError(f"unknown implementation {impl!r} (known: {', '.join(IMPLS)})")


# ---------------------------------------------------------------------------------------------------------- timing

def _copy_probe(n: int = 16 * 1024 * 1024) -> Callable[[], float]:
    """A timed NumPy copy of n float32: returns GB/s (bytes read + written / time)."""
    import numpy as np

    a = np.ones(n, dtype=np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)

    def probe() -> float:
        t0 = time.perf_counter()
        np.copyto(b, a)
        return 2 * a.nbytes / (time.perf_counter() - t0) / 1e9
    return probe


def _peak_extra(step: Callable) -> int:
    """Peak bytes allocated (tracemalloc: NumPy reports its buffers) during one step, above what it started with."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        step()
        return max(0, tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


def _bench_one(opt: str, config: str, impls: Sequence[str], steps: int, rounds: int, probe: Callable,
               out: Any) -> list[dict]:
    shapes = CONFIGS[config]
    n = sum(math.prod(s) for s in shapes)
    largest = max(math.prod(s) for s in shapes) * 4
    params, grads = _make_data(shapes)
    fns: dict[str, Callable] = {}
    for impl in impls:
        fn = _build(impl, opt, params, grads)
        if fn is not None:
            fn()  # warm-up (jit compile, lazy slots)
            fn()
            fns[impl] = fn
    peaks = {k: _peak_extra(f) for k, f in fns.items() if k.startswith("ao")}
    times: dict[str, list[float]] = {k: [] for k in fns}
    bw: list[float] = []
    names = list(fns)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        bw.append(probe())
        for k in order:
            f = fns[k]
            for _ in range(steps):
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
    copy_bw = statistics.median(bw) if bw else float("nan")
    bpp = OPTIMIZERS[opt][2]
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    ref_foreach, ref_fused = med.get("torch-foreach"), med.get("torch-fused")
    print(f"\n== {opt} ({OPTIMIZERS[opt][0]}) | {config}: {len(shapes)} tensors, {n:,} params, {bpp} B/param, "
          f"copy bandwidth {copy_bw:.1f} GB/s ==", file=out)
    print(f"{'impl':<15} {'ms/step':>9} {'x foreach':>10} {'x fused':>8} {'GB/s':>7} {'%copy':>6} "
          f"{'peak extra MiB':>15} {'x largest':>10}", file=out)
    rows = []
    for k in fns:
        ms = med[k]
        gbs = bpp * n / (ms * 1e-3) / 1e9
        rf = f"{ms / ref_foreach:.2f}" if ref_foreach else "-"
        rx = f"{ms / ref_fused:.2f}" if ref_fused else "-"
        pk = peaks.get(k)
        pks = f"{pk / 2**20:.2f}" if pk is not None else "-"
        pkx = f"{pk / largest:.2f}" if pk is not None else "-"
        print(f"{k:<15} {ms:9.3f} {rf:>10} {rx:>8} {gbs:7.1f} {100 * gbs / copy_bw:6.0f} {pks:>15} {pkx:>10}",
              file=out)
        rows.append(dict(impl=k, ms=ms, x_foreach=ref_foreach and ms / ref_foreach, x_fused=ref_fused and ms / ref_fused,
                         gbs=gbs, peak=pk))
    return rows


def _split(value: str, known: Sequence[str], what: str) -> list[str]:
    if value == "all":
        return list(known)
    names = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in names if v not in known]
    if bad:
        raise SystemExit(f"arrayoptim bench: unknown {what} {bad} (known: {', '.join(known)})")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arrayoptim bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optimizers", default="adamw,sgd,lion,lamb,adafactor",
                   help=f"comma-separated, or 'all' ({', '.join(OPTIMIZERS)}); unregistered ones are skipped")
    p.add_argument("--configs", default="resnet50,many-small,big",
                   help=f"comma-separated, or 'all' ({', '.join(CONFIGS)})")
    p.add_argument("--impls", default="all", help=f"comma-separated, or 'all' ({', '.join(IMPLS)})")
    p.add_argument("--steps", type=int, default=3, help="timed steps per implementation per round (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--threads", type=int, default=1, help="threads for torch/OpenMP/XLA, and CPUs pinned (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="AdamW and SGD on resnet50 and many-small, 2 rounds of 2 steps (well under a minute)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.rounds < 1 or args.threads < 1:
        raise SystemExit(f"arrayoptim bench: --steps, --rounds and --threads must be >= 1 "
                         f"(got {args.steps}, {args.rounds}, {args.threads})")
    if args.quick:
        args.optimizers, args.configs, args.steps, args.rounds = "adamw,sgd", "resnet50,many-small", 2, 2
    affinity = _pin_threads(args.threads)
    import numpy as np

    import arrayoptim as ao
    from arrayoptim import _accel

    opts = _split(args.optimizers, list(OPTIMIZERS), "optimizers")
    configs = _split(args.configs, list(CONFIGS), "configs")
    impls = _split(args.impls, IMPLS, "implementations")
    registered = set(ao.list_optimizers())
    versions = [f"numpy {np.__version__}"]
    torch_threads = "n/a"
    if _have("torch"):
        import torch

        torch.set_num_threads(args.threads)
        torch_threads = str(torch.get_num_threads())
        versions.append(f"torch {torch.__version__}")
    for mod in ("jax", "optax", "timm", "numba"):
        if _have(mod):
            versions.append(f"{mod} {__import__(mod).__version__}")
    out = sys.stdout
    print(f"arrayoptim bench {ao.__version__} | python {platform.python_version()} | {', '.join(versions)}",
          file=out)
    print(f"threads: {args.threads} (torch.get_num_threads()={torch_threads}, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}, CPUs pinned: {affinity}) | float32 | accelerators: default "
          f"{_accel.enabled() or '()'}, numba {'installed' if _accel.available('numba') else 'not installed'}",
          file=out)
    print(f"timing: {args.rounds} interleaved rounds x {args.steps} steps per implementation, median ms/step; "
          f"x foreach / x fused = ratio to torch (or timm) foreach / fused; GB/s = minimal bytes/param x params / "
          f"time; peak extra = tracemalloc peak of one step (NumPy)", file=out)
    probe = _copy_probe()
    for opt in opts:
        if OPTIMIZERS[opt][0] not in registered:
            print(f"\n== {opt}: {OPTIMIZERS[opt][0]!r} is not registered, skipped ==", file=out)
            continue
        for config in configs:
            _bench_one(opt, config, impls, args.steps, args.rounds, probe, out)
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
