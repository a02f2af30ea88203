"""The README stays true: its tour runs, and .ci/run runs the README's own install and test commands."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_tour_runs():
    pytest.importorskip("torch")
    pytest.importorskip("jax")
    tour = next(b for b in _blocks("python") if "A 20-line tour" in README and "create_optimizer" in b)
    assert len(tour.strip().splitlines()) <= 22
    subprocess.run([sys.executable, "-c", tour], check=True, cwd=ROOT)


def test_ci_runs_the_readme_commands():
    install, test, main = (b.strip() for b in _blocks("bash")[:3])
    ci = (ROOT / ".ci" / "run").read_text()
    assert install in ci, "the README's install command must be what .ci/run runs"
    assert test.split("&&")[-1].strip() in ci and "set -euo pipefail" in ci and '"$rc" -eq 5' in ci
    assert main.endswith("arrayoptim verify")
