"""arrayoptim: torch.optim and timm optimizers and LR schedulers as pure functions on the Python array API.

>>> import arrayoptim as ao
>>> opt = ao.create_optimizer('adamw', lr=1e-3)

The core needs only numpy and array-api-compat; ``import arrayoptim`` never imports torch or cupy.
"""
from . import checks, kernels, optimizers, schedules
from ._core import Optimizer, ParamGroup, create_optimizer
from ._guard import skip_nonfinite
from ._flat import FlatOptimizer, Packed, flat
from .checkpoint import from_state_dict, load_checkpoint, save_checkpoint, to_state_dict
from ._hyper import Hyperparams, hyperfield
from ._registry import (COUNTERS, HALF_COMPUTE, LOCALITIES, OptimInfo, StepInput, StepView, get_optimizer_info,
                        list_optimizers, register)
from .optimizers.lookahead import Lookahead

__version__ = "0.1.0"

__all__ = [
    "Hyperparams", "Lookahead", "OptimInfo", "Optimizer", "ParamGroup", "create_optimizer", "get_optimizer_info",
    "list_optimizers", "optimizers", "schedules", "kernels", "checks", "register", "hyperfield", "StepInput", "StepView",
    "LOCALITIES", "COUNTERS", "HALF_COMPUTE", "skip_nonfinite", "save_checkpoint", "load_checkpoint",
    "to_state_dict", "from_state_dict", "flat", "FlatOptimizer", "Packed",
]
