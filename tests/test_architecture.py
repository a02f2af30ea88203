"""ARCHITECTURE.md stays true: it names every module of the package (optimizer families as the
``arrayoptim/optimizers/<family>.py`` pattern) and every file it names exists."""
from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = (ROOT / "ARCHITECTURE.md").read_text()


def test_every_module_is_named():
    missing = []
    for path in sorted((ROOT / "arrayoptim").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[1] == "optimizers" and rel.name not in ("lookahead.py",):
            continue  # the families: one pattern row
        if rel.name == "__init__.py" and rel.parent.name != "arrayoptim":
            continue  # a subpackage is named by its folder
        if rel.name not in DOC and str(rel) not in DOC:
            missing.append(str(rel))
    for folder in ("arrayoptim/optimizers/<family>.py", "arrayoptim/schedules/", "arrayoptim/torch/", "backends/"):
        if folder not in DOC:
            missing.append(folder)
    assert not missing, f"ARCHITECTURE.md does not name: {missing}"


def test_named_paths_exist():
    named = set(re.findall(r"`((?:arrayoptim|tests|backends)/[\w/.]+\.py)`", DOC))
    assert named, "no paths found: the pattern is broken"
    gone = sorted(p for p in named if not (ROOT / p).exists())
    assert not gone, f"ARCHITECTURE.md names files that do not exist: {gone}"
