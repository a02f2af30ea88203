"""The wheel installs exactly one top-level package, ``arrayoptim``; the repository's ``backends/`` folder installs as
``arrayoptim.backends`` (``[tool.setuptools.package-dir]`` in pyproject.toml), so ``arrayoptim bench`` works from any
directory, one holding an unrelated ``backends/`` package included.

The wheel is built (``pip wheel --no-build-isolation``: no network) from a copy of the sources in a temporary
directory, so the checkout gets no ``build/`` or ``*.egg-info`` and parallel workers do not share one.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECOY = 'raise ImportError("decoy backends/ in the working directory was imported")\n'


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("arrayoptim", "backends"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(out), str(src)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = out.glob("arrayoptim-*.whl")
    return whl


@pytest.fixture
def decoy_dir(tmp_path) -> Path:
    """A working directory holding an unrelated ``backends/`` package that fails on import."""
    (tmp_path / "backends").mkdir()
    (tmp_path / "backends" / "__init__.py").write_text(DECOY)
    (tmp_path / "backends" / "bench.py").write_text(DECOY)
    return tmp_path


def _py_files(root: Path, prefix: str) -> set[str]:
    return {f"{prefix}/{p.relative_to(root).as_posix()}" for p in root.rglob("*.py") if "__pycache__" not in p.parts}


def test_wheel_has_one_top_level_package_with_backends_inside(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    py = {n for n in names if n.endswith(".py") and not PurePosixPath(n).parts[0].endswith(".dist-info")}
    assert {PurePosixPath(n).parts[0] for n in py} == {"arrayoptim"}
    assert {"arrayoptim/backends/__init__.py", "arrayoptim/backends/bench.py"} <= py
    # the package list in pyproject.toml is explicit (find cannot rename backends/): every module of arrayoptim/
    # (subpackages added later included) and of backends/ must be in the wheel, and nothing else
    assert py == _py_files(ROOT / "arrayoptim", "arrayoptim") | _py_files(ROOT / "backends", "arrayoptim/backends")
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["arrayoptim"]


def _run(cwd: Path, *args: str, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


BENCH_TINY = ("bench", "--configs", "tiny", "--optimizers", "sgd", "--impls", "ao", "--steps", "1", "--rounds", "1")


def _check_bench_beside_a_decoy(cwd: Path, pythonpath: Path | None) -> None:
    r = _run(cwd, "-c", "import arrayoptim.backends.bench as b; print(b.__file__)", pythonpath=pythonpath)
    assert r.returncode == 0, r.stderr
    where = Path(r.stdout.strip()).resolve()
    assert where.name == "bench.py" and not where.is_relative_to(cwd.resolve()), where
    if pythonpath is not None:
        assert where == (pythonpath / "arrayoptim" / "backends" / "bench.py").resolve()
    r = _run(cwd, "-m", "arrayoptim", "bench", "--help", pythonpath=pythonpath)
    assert r.returncode == 0 and r.stdout.startswith("usage: arrayoptim bench"), r.stderr
    r = _run(cwd, "-m", "arrayoptim.backends.bench", "--help", pythonpath=pythonpath)
    assert r.returncode == 0 and r.stdout.startswith("usage: arrayoptim bench"), r.stderr


def test_the_wheel_runs_bench_beside_an_unrelated_backends_folder(wheel, decoy_dir, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    zipfile.ZipFile(wheel).extractall(site)  # a pure-Python wheel installs by unpacking
    _check_bench_beside_a_decoy(decoy_dir, site)


def test_the_installed_package_runs_bench_beside_an_unrelated_backends_folder(decoy_dir):
    # whatever install this environment has (the README's is editable: there arrayoptim.backends is backends/)
    _check_bench_beside_a_decoy(decoy_dir, None)
    r = _run(decoy_dir, "-m", "arrayoptim", *BENCH_TINY)  # a real (one-step, numpy-only) benchmark run, ~5 s
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("arrayoptim bench ") and "tiny: 5 tensors" in r.stdout, r.stdout
