"""The ``arrayoptim`` command, run for real in a subprocess (``python -m arrayoptim ...``)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

HAS_ORACLES = all(importlib.util.find_spec(m) is not None for m in ("torch", "timm"))
needs_oracles = pytest.mark.skipif(not HAS_ORACLES, reason="verify needs torch and timm installed")


def run(*args: str, code: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m arrayoptim ARGS`` (or ``python -c CODE ARGS``, CODE ending in a call of main)."""
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "arrayoptim", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def rows(stdout: str) -> dict[str, list[str]]:
    """The first table's rows keyed by their first column (up to the first blank line after it)."""
    out: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        if not line.strip():
            if out:
                break
            continue
        if not line.startswith("#"):
            out.setdefault(line.split()[0], line.split())
    return out


# ------------------------------------------------------------------------------------------------- basics

def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "verify" in r.stdout and "exit codes" in r.stdout
    assert run().returncode == 2
    assert run("frobnicate").returncode == 2


def test_list_shows_names_anchors_descriptions_and_never_imports_torch():
    code = textwrap.dedent("""
        import sys
        from arrayoptim.__main__ import main
        rc = main(sys.argv[1:])
        assert 'torch' not in sys.modules, 'list imported torch'
        sys.exit(rc)
    """)
    r = run("list", code=code)
    assert r.returncode == 0, r.stderr
    table = rows(r.stdout)
    assert table["adamw"][1] == "torch.optim.AdamW" and "decoupled" in " ".join(table["adamw"])
    assert table["sgdw"][1] == "timm.optim.SGDW"
    r = run("list", "sgd*", "--names-only")
    names = r.stdout.split()
    assert r.returncode == 0 and "sgd" in names and "sgdw" in names and all(n.startswith("sgd") for n in names)
    assert "adamw" in run("list", "adam", "--names-only").stdout.split()  # a plain word is a substring match


# ------------------------------------------------------------------------------------------------- verify

@needs_oracles
@pytest.mark.oracle
def test_verify_passes_against_torch_and_timm():
    r = run("verify", "sgd", "adamw", "sgdw", "lookahead_adam", "--steps", "4", "--progress")
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table["sgd"][1] == "torch.optim.SGD" and table["sgd"][4] == "PASS"
    assert table["adamw"][1] == "torch.optim.AdamW" and table["adamw"][4] == "PASS"
    assert table["sgdw"][1] == "timm:sgdw" and table["sgdw"][4] == "PASS"
    assert table["lookahead_adam"][4] == "PASS"
    assert float(table["adamw"][2]) <= 1e-10 and float(table["adamw"][3]) <= 1e-10
    assert re.search(r"4 passed, 0 failed, 0 errors, 0 skipped \(float64, 4 steps", r.stdout)
    assert "[1/4] sgd" in r.stderr and "[4/4] lookahead_adam" in r.stderr


@needs_oracles
@pytest.mark.oracle
def test_verify_against_timm_and_float32():
    r = run("verify", "adam", "--against", "timm", "--dtype", "float32", "--steps", "3")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(r.stdout)["adam"][1:2] == ["timm:adam"] and "float32" in r.stdout and "rtol 1e-05" in r.stdout
    r = run("verify", "sgdw", "--against", "torch", "--steps", "2")
    assert r.returncode == 0 and "SKIP" in rows(r.stdout)["sgdw"] and "no torch oracle" in r.stdout


#: the names whose step takes more than grads (closure=, grad_mask=, hessian=, draws=) and their oracles
DRIVEN = {"lbfgs": "torch.optim.LBFGS", "sparseadam": "torch.optim.SparseAdam", "adahessian": "timm:adahessian",
          "kron": "timm:kron", "kronc": "timm:kronc", "kronw": "timm:kronw"}


@needs_oracles
@pytest.mark.oracle
def test_verify_runs_every_registered_name_including_closure_sparse_hessian_and_draws():
    """With torch and timm installed nothing is skipped: LBFGS (closure=), SparseAdam (grad_mask=), Adahessian
    (hessian=) and Kron (draws=) run beside their oracles like the rest, within 1e-10 in float64."""
    import arrayoptim as ao

    r = run("verify", "--steps", "6")
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert set(table) >= set(ao.list_optimizers())
    n = len(ao.list_optimizers())
    assert re.search(rf"\b{n} passed, 0 failed, 0 errors, 0 skipped \(float64, 6 steps, rtol 1e-10", r.stdout), r.stdout
    for name, oracle in DRIVEN.items():
        assert table[name][1] == oracle and table[name][4] == "PASS", table[name]
        assert float(table[name][2]) <= 1e-12 and float(table[name][3]) <= 1e-10, table[name]
    notes = {name: " ".join(table[name][5:]) for name in DRIVEN}
    assert "closure-driven" in notes["lbfgs"] and "closure call's loss compared" in notes["lbfgs"]
    assert "sparse COO grads" in notes["sparseadam"] and "grad_mask" in notes["sparseadam"]
    assert "timm's generator" in notes["adahessian"]
    assert all("replayed into draws=" in notes[k] and "run in the param dtype" in notes[k]
               for k in ("kron", "kronc", "kronw"))
    assert "documented gap" not in " ".join(notes.values())


@needs_oracles
@pytest.mark.oracle
def test_verify_driven_names_documented_gaps_and_lookahead():
    """LBFGS in float32 (double scalars here, float32 tensors in torch) and Kron against timm's own float32
    triangular solve (a timm without the function verify swaps) run within their documented gaps, and say so."""
    r = run("verify", "lbfgs", "sparseadam", "adahessian", "kron", "--dtype", "float32", "--steps", "4")
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    assert all(table[k][4] == "PASS" for k in ("lbfgs", "sparseadam", "adahessian", "kron"))
    assert "documented gap in float32: rtol 0.001" in " ".join(table["lbfgs"])
    assert "documented gap" not in " ".join(table["kron"])
    code = textwrap.dedent("""
        import sys
        from arrayoptim import verify as V
        class Float32Solve(V.ReplayedDrawsDriver):
            def __init__(self):
                super().__init__()
                self.patch = False   # as on a timm without _solve_triangular_right
        V.STEP_INPUT_DRIVERS["draws"] = Float32Solve
        from arrayoptim.__main__ import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = run("verify", "kron", "kronw", "--steps", "4", code=code)
    assert r.returncode == 0, r.stdout + r.stderr
    table = rows(r.stdout)
    for k in ("kron", "kronw"):
        note = " ".join(table[k][5:])
        assert table[k][4] == "PASS" and "float32 triangular solve kept" in note
        assert "documented gap in float64: rtol 1e-06" in note and float(table[k][3]) > 1e-12  # the gap is real
    r = run("verify", "lookahead_kron", "--steps", "2")
    assert r.returncode == 0 and rows(r.stdout)["lookahead_kron"][4] == "SKIP" and "draws" in r.stdout


@needs_oracles
@pytest.mark.oracle
def test_verify_driven_names_fail_on_a_wrong_step():
    """The driven comparisons are real: a step off by one part in a million FAILs for each driver."""
    code = textwrap.dedent("""
        import dataclasses, functools, sys
        from arrayoptim import _registry
        from arrayoptim.__main__ import main
        def off_step(fn):  # a whole step (LBFGS) off by one part in a million
            @functools.wraps(fn)
            def wrong(*args, **kwargs):
                params, state = fn(*args, **kwargs)
                return {k: v * (1 + 1e-6) for k, v in params.items()}, state
            return wrong
        def off_kernel(fn):  # a per-array kernel off by one part in a million (same step inputs, same driver)
            def wrong(xp, p, g, s, hp, ctx):
                return fn(xp, p, g, s, hp, ctx) * (1 + 1e-6)
            return wrong
        for name in ("lbfgs", "sparseadam", "adahessian", "kron"):
            info = _registry.get_optimizer_info(name)
            changed = ({"step_fn": off_step(info.step_fn)} if info.step_fn is not None
                       else {"kernel": off_kernel(info.kernel)})
            _registry._REGISTRY[name] = dataclasses.replace(info, **changed)
        sys.exit(main(sys.argv[1:]))
    """)
    r = run("verify", "lbfgs", "sparseadam", "adahessian", "kron", "--steps", "2", code=code)
    assert r.returncode == 1, r.stdout + r.stderr
    table = rows(r.stdout)
    assert all(table[k][4] == "FAIL" for k in ("lbfgs", "sparseadam", "adahessian", "kron")), r.stdout
    assert "0 passed, 4 failed, 0 errors, 0 skipped" in r.stdout


@needs_oracles
@pytest.mark.oracle
def test_verify_fails_on_a_wrong_kernel_and_names_the_first_divergence():
    """A kernel off by one part in a million is caught: FAIL row, the divergent step/param, exit code 1."""
    code = textwrap.dedent("""
        import dataclasses, sys
        from arrayoptim import _registry
        from arrayoptim.__main__ import main
        info = _registry.get_optimizer_info('adam')
        def wrong(xp, p, g, s, hp, ctx):
            p = info.kernel(xp, p, g, s, hp, ctx)
            p *= 1 + 1e-6
            return p
        _registry._REGISTRY['adam'] = dataclasses.replace(info, kernel=wrong)
        sys.exit(main(sys.argv[1:]))
    """)
    r = run("verify", "adam", "sgd", "--steps", "3", code=code)
    assert r.returncode == 1, r.stdout + r.stderr
    table = rows(r.stdout)
    assert table["adam"][4] == "FAIL" and table["sgd"][4] == "PASS"
    assert "1 passed, 1 failed" in r.stdout
    assert re.search(r"adam step 1 param '\w+': relative difference [0-9.e-]+ > rtol 1e-10", r.stdout)


def test_verify_says_when_the_oracle_is_not_installed():
    code = textwrap.dedent("""
        import sys
        sys.modules['torch'] = None   # import torch now fails, as on an install without torch
        sys.modules['timm'] = None
        from arrayoptim.__main__ import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = run("verify", "adam", "sgdw", code=code)
    assert r.returncode == 3, r.stdout + r.stderr
    assert rows(r.stdout)["adam"][1:3] == ["-", "-"] and "NO ORACLE" in r.stdout
    assert "oracle not installed: torch" in r.stderr and "exit code 3" in r.stderr


def test_verify_rejects_unknown_names_and_bad_steps():
    r = run("verify", "adamm")
    assert r.returncode == 2 and "adamm" in r.stderr and "did you mean" in r.stderr
    r = run("verify", "nosuch*")
    assert r.returncode == 2 and "no registered optimizer matches" in r.stderr
    assert run("verify", "sgd", "--steps", "0").returncode == 2
    assert run("verify", "sgd", "--dtype", "float16").returncode == 2


# ------------------------------------------------------------------------------------------------ compare

def test_compare_reports_distance_and_first_divergent_step(tmp_path):
    png = tmp_path / "atlas.png"
    r = run("compare", "adam", "adamw", "--steps", "10", "--lr", "0.01", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    table = rows(r.stdout)
    # adam (L2, wd=0) vs adamw (decoupled, wd=0.01): same first step (p starts at 0), apart from step 2 on
    assert table["adamw"][4] == "2" and float(table["adamw"][3]) > 0
    assert "weight_decay=0.01" in r.stdout and "decoupled_weight_decay=True" in r.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # with the same decay and none of it, adam and adamw are the same rule
    r = run("compare", "adam", "adamw", "--steps", "5", "--weight-decay", "0", "--problem", "noise")
    assert r.returncode == 0 and rows(r.stdout)["adamw"][4] == "never"


def test_compare_usage_errors():
    assert run("compare", "adam").returncode == 2
    r = run("compare", "adam", "sgd", "--set", "betas=(0.5, 0.6)", "--set", "nope=1")
    assert r.returncode == 2 and "nope" in r.stderr
    assert run("compare", "adam", "sgd", "--set", "lr").returncode == 2


# ----------------------------------------------------------------------------------------------- schedule

def test_schedule_prints_and_plots(tmp_path):
    r = run("schedule", "StepLR", "step_size=2", "gamma=0.5", "--steps", "4")
    assert r.returncode == 0, r.stderr
    lrs = [float(rows(r.stdout)[str(t)][1]) for t in range(5)]
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025]
    png = tmp_path / "cos.png"
    r = run("schedule", "cosine", "num_epochs=10", "warmup_epochs=2", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:4] == b"\x89PNG" and "10" in rows(r.stdout)  # steps default to num_epochs
    r = run("schedule", "OneCycleLR", "max_lr=0.1", "total_steps=10", "--steps", "3")
    assert r.returncode == 0 and rows(r.stdout)["t"] == ["t", "lr", "momentum"]
    r = run("schedule", "ReduceLROnPlateau", "patience=1", "--steps", "4")
    assert r.returncode == 0 and float(rows(r.stdout)["3"][1]) == pytest.approx(0.01)


def test_schedule_lists_kinds_and_rejects_bad_input():
    r = run("schedule")
    assert r.returncode == 0 and "CosineAnnealingLR" in r.stdout and "CosineLRScheduler" in r.stdout
    r = run("schedule", "Nope")
    assert r.returncode == 2 and "unknown schedule KIND 'Nope'" in r.stderr
    r = run("schedule", "StepLR", "step_size")
    assert r.returncode == 2 and "key=value" in r.stderr
    r = run("schedule", "StepLR", "gamma=0.5")  # step_size missing: the factory's own message
    assert r.returncode == 1 and "step_size" in r.stderr


# -------------------------------------------------------------------------------------------------- bench

def test_bench_is_arrayoptim_backends_bench_never_a_top_level_backends():
    code = textwrap.dedent("""
        import sys
        sys.modules['backends'] = sys.modules['backends.bench'] = None   # any import of them raises
        from arrayoptim.__main__ import main
        sys.exit(main(sys.argv[1:]))
    """)
    r = run("bench", "--help", code=code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: arrayoptim bench") and "--optimizers" in r.stdout
    r = run("bench", "--optimizers", "nope", code=code)
    assert r.returncode != 0 and "unknown optimizers ['nope']" in r.stderr
