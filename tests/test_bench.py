"""``python -m arrayoptim.backends.bench`` runs on a tiny config and prints its tables (no timing assertions).

Run from a temporary directory: the benchmark is part of the installed package, not of the checkout."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

ROW = re.compile(r"^(ao|ao-ref|torch-foreach|torch-fused)\s+\d+\.\d+\s+\S+\s+\S+\s+\d+\.\d\s+\d+\s+\S+\s+\S+$")


@pytest.mark.slow  # a subprocess importing torch and pinned to one CPU: > 10 s on a loaded machine
def test_bench_tiny_output_format(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "arrayoptim.backends.bench", "--configs", "tiny", "--optimizers", "adamw,sgd",
         "--impls", "ao,ao-ref,torch-foreach,torch-fused", "--steps", "1", "--rounds", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("arrayoptim bench ")
    assert re.search(r"^threads: 1 \(", out, re.M)
    assert re.search(r"^== adamw \(adamw\) \| tiny: 5 tensors, 917 params, 28 B/param, copy bandwidth [\d.]+ GB/s ==$",
                     out, re.M)
    assert re.search(r"^== sgd \(momentum\) \| tiny: ", out, re.M)
    header = [ln for ln in out.splitlines() if ln.startswith("impl ")]
    assert len(header) == 2 and "x foreach" in header[0] and "peak extra MiB" in header[0]
    rows = [ln for ln in out.splitlines() if ROW.match(ln)]
    assert sum(ln.startswith("ao ") for ln in rows) == 2, out
    assert sum(ln.startswith("ao-ref ") for ln in rows) == 2, out


def test_bench_rejects_unknown_names(tmp_path):
    r = subprocess.run([sys.executable, "-m", "arrayoptim.backends.bench", "--optimizers", "nope"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "unknown optimizers ['nope']" in r.stderr
