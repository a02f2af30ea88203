"""``python -m arrayoptim`` and the ``arrayoptim`` console script; the commands live in :mod:`arrayoptim._cli`."""
from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
