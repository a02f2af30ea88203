"""arrayoptim: torch.optim and timm optimizers as pure functions on the Python array API standard."""
from . import schedules

__version__ = "0.1.0"
