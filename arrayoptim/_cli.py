"""The ``arrayoptim`` command line (stdlib argparse): list, verify, compare, schedule, bench.

Exit codes
----------
0
    Success (``verify``: every verified name passed; names skipped because their step cannot be driven by a plain
    grad stream do not count).
1
    ``verify``: at least one FAIL or ERROR. Other commands: the command itself failed (bad schedule arguments, ...).
2
    Usage error (unknown command, option or optimizer name).
3
    Something needed is not installed: ``verify`` found no failure but could not run some names because their
    oracle library (torch, timm) is missing; ``schedule --plot`` without matplotlib.

torch and timm are imported only by ``verify`` (and ``bench``), never by ``list``, ``compare`` or ``schedule``.
"""
from __future__ import annotations

import argparse
import ast
import fnmatch
import math
import sys
import time
from typing import Any, Callable, Sequence, TextIO

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3

__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "EXIT_UNAVAILABLE"]


class UsageError(Exception):
    """A bad command line argument detected after parsing (exit code 2)."""


# ---------------------------------------------------------------------------------------------------- helpers

def _table(rows: Sequence[Sequence[str]], out: TextIO, header: Sequence[str] | None = None) -> None:
    rows = [list(map(str, r)) for r in rows]
    allrows = ([list(header)] if header else []) + rows
    if not allrows:
        return
    widths = [max(len(r[i]) for r in allrows if i < len(r)) for i in range(max(map(len, allrows)))]
    for k, r in enumerate(allrows):
        print("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip(), file=out)
        if header and k == 0:
            print("  ".join("-" * w for w in widths), file=out)


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if math.isinf(x) or math.isnan(x):
        return str(x)
    return f"{x:.1e}"


def _literal(text: str) -> Any:
    """A command-line value as a Python literal (``0.1``, ``(0.9, 0.99)``, ``True``), else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _key_values(items: Sequence[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(f"{what} must be key=value pairs (value a Python literal), got {item!r}")
        out[key] = _literal(value)
    return out


def _resolve_names(patterns: Sequence[str], *, allow_lookahead: bool = True) -> list[str]:
    """Registry names matching each pattern (fnmatch; a plain name must exist), in the order given."""
    import arrayoptim as ao
    from arrayoptim._registry import LOOKAHEAD_PREFIX

    known = ao.list_optimizers()
    out: list[str] = []
    for pat in patterns:
        pat = pat.lower()
        if any(c in pat for c in "*?["):
            hits = fnmatch.filter(known, pat)
            if not hits:
                raise UsageError(f"no registered optimizer matches {pat!r} (see 'arrayoptim list')")
        else:
            base = pat[len(LOOKAHEAD_PREFIX):] if allow_lookahead and pat.startswith(LOOKAHEAD_PREFIX) else pat
            try:
                ao.get_optimizer_info(base)
            except ValueError as e:
                raise UsageError(str(e)) from None
            hits = [pat]
        out.extend(h for h in hits if h not in out)
    return out


class _Progress:
    """A one-line progress indication on stderr (rewritten in place on a terminal, one line per item otherwise)."""

    def __init__(self, total: int, enabled: bool, stream: TextIO) -> None:
        self.total, self.enabled, self.stream = total, enabled, stream
        self.tty = enabled and getattr(stream, "isatty", lambda: False)()
        self.i, self.label, self.t0 = 0, "", time.monotonic()

    def item(self, label: str) -> None:
        self.i += 1
        self.label = label
        if self.enabled and not self.tty:
            print(f"[{self.i}/{self.total}] {label}", file=self.stream, flush=True)
        self.step(0, 0)

    def step(self, t: int, steps: int) -> None:
        if not self.tty:
            return
        width = 24
        done = int(width * (self.i - 1 + (t / steps if steps else 0)) / max(self.total, 1))
        bar = "#" * done + "." * (width - done)
        msg = f"\r[{bar}] {self.i}/{self.total} {self.label} step {t}/{steps} ({time.monotonic() - self.t0:.0f}s)"
        print(msg.ljust(79), end="", file=self.stream, flush=True)

    def close(self) -> None:
        if self.tty:
            print("\r" + " " * 79 + "\r", end="", file=self.stream, flush=True)


# -------------------------------------------------------------------------------------------------------- list

def cmd_list(args: argparse.Namespace, out: TextIO) -> int:
    import arrayoptim as ao

    pattern = args.pattern or ""
    if pattern and not any(c in pattern for c in "*?["):
        pattern = f"*{pattern}*"
    names = ao.list_optimizers(pattern.lower()) if pattern else ao.list_optimizers()
    if args.names_only:
        for n in names:
            print(n, file=out)
        return EXIT_OK
    rows = []
    for n in names:
        info = ao.get_optimizer_info(n)
        rows.append((n, info.anchor, info.description))
    _table(rows, out, header=("name", "anchor", "description"))
    print(f"\n{len(names)} optimizer{'s' if len(names) != 1 else ''}"
          + (f" matching {args.pattern!r}" if args.pattern else "")
          + "; any name also works with the 'lookahead_' prefix.", file=out)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------------ verify

def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import arrayoptim as ao
    from arrayoptim import verify as V

    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    names = _resolve_names(args.names) if args.names else ao.list_optimizers()
    progress = _Progress(len(names), args.progress if args.progress is not None else err.isatty(), err)
    rows, details, counts = [], [], {"PASS": 0, "FAIL": 0, "ERROR": 0, "SKIP": 0}
    missing: set[str] = set()
    t0 = time.monotonic()
    for name in names:
        progress.item(name)
        label, res = V.verify_name(name, args.against, steps=args.steps, dtype=args.dtype, rtol=args.rtol,
                                   lr=args.lr, weight_decay=args.weight_decay, on_step=progress.step)
        if isinstance(res, V.Skip):
            status, p, s, note = "SKIP", "-", "-", res.reason
            if res.missing:
                missing.add(res.missing)
                status = "NO ORACLE"
        elif isinstance(res, BaseException):
            status, p, s, note = "ERROR", "-", "-", f"arrayoptim raised {type(res).__name__}: {res}"
            details.append(f"{name}: {note}")
        else:
            status = "PASS" if res.passed else "FAIL"
            p, s, note = _fmt(res.max_param_diff), _fmt(res.max_state_diff), res.note
            if not res.passed:
                note = f"first divergence at step {res.steps}"
                details.append(res.failure)
        counts["SKIP" if status == "NO ORACLE" else status] += 1
        rows.append((name, label, p, s, status, note))
    progress.close()
    _table(rows, out, header=("name", "oracle", "params", "state", "result", "note"))
    rtol = args.rtol if args.rtol is not None else V.DEFAULT_RTOL[args.dtype]
    print(f"\n{counts['PASS']} passed, {counts['FAIL']} failed, {counts['ERROR']} errors, {counts['SKIP']} skipped "
          f"({args.dtype}, {args.steps} steps, rtol {rtol:g}, lr {args.lr:g}, weight_decay {args.weight_decay:g}; "
          f"{time.monotonic() - t0:.1f}s)", file=out)
    print("params/state: the largest relative difference |ours - oracle| / (max(1, max|oracle|) + |oracle|) "
          "over all steps, params and state slots (one step at a time: re-synced from the oracle after each).",
          file=out)
    for d in details:
        print(f"  {d}", file=out)
    for mod in sorted(missing):
        print(f"oracle not installed: {mod} is needed to verify some names here (pip install {mod}); "
              f"exit code {EXIT_UNAVAILABLE}", file=err)
    if counts["FAIL"] or counts["ERROR"]:
        return EXIT_FAIL
    return EXIT_UNAVAILABLE if missing else EXIT_OK


# ----------------------------------------------------------------------------------------------------- compare

def _problem(kind: str, dim: int, seed: int) -> tuple[dict, Callable, str]:
    """``(params0, loss_and_grads(params, t) -> (loss, grads), description)``, NumPy only."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if kind == "quadratic":
        h = np.logspace(-2, 2, dim)
        c = rng.standard_normal(dim)
        x0 = {"x": np.zeros(dim)}

        def fg(p, t):
            d = p["x"] - c
            return 0.5 * float(np.sum(h * d * d)), {"x": h * d}

        return x0, fg, f"quadratic, {dim}-D, curvatures 1e-2..1e2"
    if kind == "rosenbrock":
        def fg(p, t):
            x, y = p["xy"]
            loss = (1 - x) ** 2 + 100 * (y - x * x) ** 2
            return float(loss), {"xy": np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])}

        return {"xy": np.array([-1.5, 2.0])}, fg, "Rosenbrock from (-1.5, 2)"
    if kind == "noise":
        shapes = {"w": (dim, dim), "b": (dim,), "scalar": ()}
        p0 = {k: rng.standard_normal(s) for k, s in shapes.items()}
        stream = np.random.default_rng(seed + 1)
        grads: list[dict] = []

        def fg(p, t):
            while len(grads) <= t:
                grads.append({k: stream.standard_normal(s) for k, s in shapes.items()})
            return float("nan"), grads[t]

        return p0, fg, f"fixed random gradient stream ({dim}x{dim} matrix, vector, 0-d)"
    raise UsageError(f"--problem must be quadratic, rosenbrock or noise, got {kind!r}")


def _record_diff(a: Any, b: Any) -> str:
    da, db = a.hyperparams.as_dict(), b.hyperparams.as_dict()
    parts = []
    for k in sorted(set(da) | set(db)):
        if k not in db:
            parts.append(f"{k}={da[k]!r} (only here)")
        elif k not in da:
            continue
        elif da[k] != db[k]:
            parts.append(f"{k}={da[k]!r}")
    return ", ".join(parts) or "same record"


def cmd_compare(args: argparse.Namespace, out: TextIO) -> int:
    import numpy as np

    import arrayoptim as ao

    names = _resolve_names(args.names)
    if len(names) < 2:
        raise UsageError(f"compare needs at least two optimizers, got {names}")
    if args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    overrides = _key_values(args.set or [], "--set")
    common = {k: v for k, v in (("lr", args.lr), ("weight_decay", args.weight_decay)) if v is not None}
    opts = []
    for n in names:
        info = ao.get_optimizer_info(n.removeprefix("lookahead_"))
        fields = set(info.hyperparams.field_names())
        kw = {k: v for k, v in {**common, **overrides}.items() if k in fields or k.startswith("lookahead_")}
        try:
            opts.append(ao.create_optimizer(n, **kw))
        except (TypeError, ValueError) as e:
            raise UsageError(f"{n}: {e}") from None
    for k in overrides:
        if not any(k in o.info.hyperparams.field_names() for o in opts):
            raise UsageError(f"--set {k}=...: no compared optimizer has a hyperparameter {k!r}")

    p0, fg, desc = _problem(args.problem, args.dim, args.seed)
    traj = []
    for n, opt in zip(names, opts):
        params = {k: np.array(v, copy=True) for k, v in p0.items()}
        flat, losses = [], []
        try:
            state = opt.init(params)
            for t in range(args.steps):
                loss, g = fg(params, t)
                params, state = opt.step(params, g, state)
                flat.append(np.concatenate([np.ravel(v) for v in params.values()]))
                losses.append(fg(params, t)[0] if args.problem != "noise" else float("nan"))
        except Exception as e:  # noqa: BLE001 - an optimizer that fails on the problem is reported, not a crash
            print(f"arrayoptim compare: {n} failed at step {len(flat) + 1}: {type(e).__name__}: {e}",
                  file=sys.stderr)
            return EXIT_FAIL
        traj.append((np.array(flat), losses))

    ref_name, (ref, _) = names[0], traj[0]
    print(f"problem: {desc}; {args.steps} steps; reference: {ref_name}; tol {args.tol:g} "
          f"(||p - p_ref|| / max(||p_ref||, 1e-12))", file=out)
    rows, curves = [], []
    for n, opt, (tr, losses) in zip(names, opts, traj):
        dist = np.linalg.norm(tr - ref, axis=1) / np.maximum(np.linalg.norm(ref, axis=1), 1e-12)
        over = np.nonzero(dist > args.tol)[0]
        first = "-" if n == ref_name else (str(int(over[0]) + 1) if over.size else "never")
        final_loss = "-" if args.problem == "noise" else f"{losses[-1]:.4g}"
        differs = "-" if n == ref_name else _record_diff(opt, opts[0])
        rows.append((n, opt.info.anchor, final_loss, "-" if n == ref_name else _fmt(float(dist[-1])), first, differs))
        curves.append(dist)
    _table(rows, out, header=("name", "anchor", "final loss", "final distance", "first step > tol",
                              "hyperparameters that differ from the reference"))
    marks = sorted({1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, args.steps} & set(range(1, args.steps + 1)))
    print("\ndistance to the reference by step:", file=out)
    _table([(n, *[_fmt(float(c[m - 1])) for m in marks]) for n, c in zip(names[1:], curves[1:])], out,
           header=("step", *map(str, marks)))
    if args.plot:
        plt = _pyplot()
        if plt is None:
            print("--plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return EXIT_UNAVAILABLE
        fig, ax = plt.subplots(figsize=(7, 4))
        steps = np.arange(1, args.steps + 1)
        for n, c in zip(names[1:], curves[1:]):
            ax.semilogy(steps, np.maximum(c, 1e-17), label=f"{n} vs {ref_name}")
        ax.axhline(args.tol, color="gray", ls=":", label="tol")
        ax.set(xlabel="step", ylabel="relative distance", title=desc)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}", file=out)
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------- schedule

def _schedule_kinds() -> tuple[list[str], list[str], list[str]]:
    from arrayoptim import schedules as S

    try:
        from arrayoptim.schedules._timm import _SCHEDS as factory
    except ImportError:  # pragma: no cover - the factory's names are informative only
        factory = ()
    return sorted(S.TORCH_EQUIVALENTS), sorted(S.TIMM_EQUIVALENTS), sorted(factory)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cmd_schedule(args: argparse.Namespace, out: TextIO) -> int:
    from arrayoptim import schedules as S

    torch_kinds, timm_kinds, factory_kinds = _schedule_kinds()
    if not args.kind:
        print("torch.optim.lr_scheduler: " + ", ".join(torch_kinds), file=out)
        print("timm.scheduler:           " + ", ".join(timm_kinds), file=out)
        print("create_scheduler_v2 sched: " + ", ".join(factory_kinds), file=out)
        return EXIT_OK
    if args.kind not in torch_kinds + timm_kinds + factory_kinds:
        raise UsageError(f"unknown schedule KIND {args.kind!r}; one of: {', '.join(torch_kinds + timm_kinds)}, or a "
                         f"create_scheduler_v2 sched ({', '.join(factory_kinds)})")
    kwargs = _key_values(args.args, "schedule arguments")
    steps = args.steps
    try:
        if args.kind in S.TORCH_EQUIVALENTS:
            sched = S.TORCH_EQUIVALENTS[args.kind](args.lr, **kwargs)
        elif args.kind in S.TIMM_EQUIVALENTS:
            sched = S.TIMM_EQUIVALENTS[args.kind](args.lr, **kwargs)
        else:
            sched, num_epochs = S.create_scheduler_v2(args.lr, sched=args.kind, **kwargs)
            steps = num_epochs if steps is None else steps
    except (TypeError, ValueError) as e:
        print(f"schedule {args.kind}: {e}", file=sys.stderr)
        return EXIT_FAIL
    steps = 100 if steps is None else steps
    if steps < 1:
        raise UsageError(f"--steps must be >= 1, got {steps}")

    lrs, moms = [], []
    if isinstance(sched, S.Schedule):
        try:
            for t in range(steps + 1):
                lrs.append(sched(t))
                if sched.momentum is not None:
                    moms.append(sched.momentum(t))
        except ValueError as e:  # e.g. OneCycleLR past total_steps
            if not lrs:
                print(f"schedule {args.kind}: {e}", file=sys.stderr)
                return EXIT_FAIL
            print(f"(stopped at t={len(lrs)}: {e})", file=out)
        kind_note = ""
    else:  # metric-driven state machine, fed a constant metric (never improves)
        state = sched.init()
        lrs.append(args.lr)
        for _ in range(steps):
            state, lr = sched.step(state, args.metric)
            lrs.append(lr)
        kind_note = f" (metric-driven: fed metric={args.metric:g} every step, i.e. no improvement)"
    print(f"# {args.kind}({args.lr:g}" + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + f"){kind_note}",
          file=out)
    header = ("t", "lr", "momentum") if moms else ("t", "lr")
    every = max(1, args.every)
    rows = [(t, f"{lrs[t]:.6g}", *((f"{moms[t]:.6g}",) if moms else ()))
            for t in range(len(lrs)) if t % every == 0 or t == len(lrs) - 1]
    _table(rows, out, header=header)
    if args.plot:
        plt = _pyplot()
        if plt is None:
            print("--plot needs matplotlib (pip install matplotlib)", file=sys.stderr)
            return EXIT_UNAVAILABLE
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(range(len(lrs)), lrs, label="lr")
        ax.set(xlabel="t", ylabel="lr", title=args.kind)
        if moms:
            ax2 = ax.twinx()
            ax2.plot(range(len(moms)), moms, color="tab:orange", label="momentum")
            ax2.set_ylabel("momentum")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"wrote {args.plot}", file=out)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------------- bench

def cmd_bench(argv: Sequence[str], err: TextIO) -> int:
    import importlib

    # arrayoptim.backends is the repository's backends/ folder, installed inside arrayoptim (pyproject.toml), so a
    # backends/ folder in the working directory cannot shadow it. The benchmark skips the implementations whose
    # library (torch, timm, numba, jax) is missing and says so; it needs nothing beyond arrayoptim's own dependencies.
    bench = importlib.import_module("arrayoptim.backends.bench")
    rc = bench.main(list(argv))
    return EXIT_OK if rc is None else int(rc)


# -------------------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``arrayoptim`` command."""
    p = argparse.ArgumentParser(
        prog="arrayoptim",
        description="torch.optim and timm optimizers as pure functions on the Python array API: list them, verify "
                    "them against torch/timm, compare them, plot schedules.",
        epilog="exit codes: 0 ok; 1 a verification FAIL/ERROR or a failed command; 2 usage error; 3 something "
               "needed (an oracle, matplotlib) is not installed.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    q = sub.add_parser("list", help="the registry: names, anchor classes and descriptions")
    q.add_argument("pattern", nargs="?", help="fnmatch pattern ('adam*'); a plain word matches as a substring")
    q.add_argument("--names-only", action="store_true", help="print only the names, one per line")

    q = sub.add_parser("verify", help="run optimizers beside their torch/timm oracle and compare every step",
                       description="Run each optimizer beside its oracle (derived from its anchor class: torch.optim "
                                   "classes, or timm's create_optimizer_v2 for timm names) on a problem with a 4-D, "
                                   "2-D, 1-D, 0-d and non-contiguous param and missing grads; compare params and "
                                   "every state slot after every step.")
    q.add_argument("names", nargs="*", metavar="NAME", help="registry names or fnmatch patterns (default: all); "
                                                            "'lookahead_<name>' is verified against timm")
    q.add_argument("--steps", type=int, default=12, help="steps per optimizer (default 12)")
    q.add_argument("--dtype", choices=["float64", "float32"], default="float64", help="default float64")
    q.add_argument("--against", choices=["torch", "timm"], default=None,
                   help="oracle library (default: the anchor's; timm builds by registry name)")
    q.add_argument("--rtol", type=float, default=None, help="tolerance (default 1e-10 float64, 1e-5 float32)")
    q.add_argument("--lr", type=float, default=1e-2, help="lr on both sides (default 0.01)")
    q.add_argument("--weight-decay", type=float, default=5e-2, help="weight_decay on both sides (default 0.05)")
    g = q.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="progress on stderr (default: when stderr is a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")

    q = sub.add_parser("compare", help="the divergence atlas: one problem through several optimizers",
                       description="Run the same problem through several optimizers (the first is the reference) and "
                                   "print how far apart they end and from which step they differ beyond --tol.")
    q.add_argument("names", nargs="+", metavar="NAME", help="two or more registry names (or patterns)")
    q.add_argument("--steps", type=int, default=100, help="default 100")
    q.add_argument("--problem", default="quadratic", choices=["quadratic", "rosenbrock", "noise"],
                   help="quadratic (ill-conditioned), rosenbrock, or noise (a fixed random gradient stream)")
    q.add_argument("--dim", type=int, default=16, help="problem size (quadratic, noise; default 16)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--lr", type=float, default=None, help="lr for all (default: each optimizer's own)")
    q.add_argument("--weight-decay", type=float, default=None, help="weight_decay for all (default: each one's own)")
    q.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="another hyperparameter for every optimizer that has it (repeatable)")
    q.add_argument("--tol", type=float, default=1e-8, help="relative distance that counts as different (1e-8)")
    q.add_argument("--plot", metavar="FILE.png", help="plot the distance to the reference over steps")

    q = sub.add_parser("schedule", help="print or plot a learning-rate schedule",
                       description="KIND is a torch.optim.lr_scheduler class name, a timm.scheduler class name or a "
                                   "timm create_scheduler_v2 'sched' name; ARGS are the anchor's keyword arguments as "
                                   "key=value (values are Python literals). Without KIND, lists the kinds.")
    q.add_argument("kind", nargs="?", metavar="KIND")
    q.add_argument("args", nargs="*", metavar="KEY=VALUE")
    q.add_argument("--lr", type=float, default=0.1, help="base / initial lr (default 0.1)")
    q.add_argument("--steps", type=int, default=None,
                   help="last step shown (default: num_epochs for create_scheduler_v2 kinds, else 100)")
    q.add_argument("--every", type=int, default=1, help="print every k-th step")
    q.add_argument("--metric", type=float, default=1.0, help="constant metric fed to plateau schedulers")
    q.add_argument("--plot", metavar="FILE.png", help="save a plot (matplotlib, Agg)")

    sub.add_parser("bench", help="time arrayoptim against torch and the backends present (arrayoptim.backends.bench)",
                   add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``arrayoptim`` command; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    if argv[:1] == ["bench"]:
        return cmd_bench(argv[1:], err)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    try:
        if args.command == "list":
            return cmd_list(args, out)
        if args.command == "verify":
            return cmd_verify(args, out, err)
        if args.command == "compare":
            return cmd_compare(args, out)
        if args.command == "schedule":
            return cmd_schedule(args, out)
    except UsageError as e:
        print(f"arrayoptim {args.command}: error: {e}", file=err)
        return EXIT_USAGE
    except BrokenPipeError:  # `arrayoptim list | head`
        return EXIT_OK
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse rejects it first
    return EXIT_USAGE
