"""Optimizer families: one module each (math in the docstring, kernel, registration). Importing registers them."""
from . import adam, sgd  # noqa: F401
