"""Optimizer families: one module each (math in the docstring, kernel, registration).

Importing this package imports every module in it, which registers each family; there is no central table.
"""
import importlib as _importlib
import pkgutil as _pkgutil

for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    _importlib.import_module(f"{__name__}.{_m}")
