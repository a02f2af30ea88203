"""``arrayoptim verify``'s harness under its historical name: everything of :mod:`arrayoptim.testing` (the parity
harness, split by part there: problem, compare, lockstep, drivers, oracles). ``import arrayoptim.verify`` never
imports torch."""
from .testing import *  # noqa: F401,F403
from .testing import __all__  # noqa: F401
