"""Every docstring example in the package runs (numpydoc Examples are doctests on NumPy)."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import arrayoptim

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(arrayoptim.__path__, "arrayoptim.")
    if not m.name.startswith("arrayoptim.torch") and m.name != "arrayoptim.__main__"
)


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {module}"
