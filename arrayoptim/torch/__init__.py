"""arrayoptim as a drop-in ``torch.optim`` optimizer, and timm's factories mirrored (``import arrayoptim.torch``).

* :class:`ArrayOptimizer` ``(params, opt='adamw', **hparams)``: a ``torch.optim.Optimizer`` running any registered
  arrayoptim optimizer on torch tensors in place, through DLPack (NumPy views on CPU, CuPy views on CUDA).
* :func:`create_optimizer_v2`: timm's factory signature and param-group rules, returning an ``ArrayOptimizer``.
* :func:`create_scheduler_v2`: timm's scheduler factory, computed by :mod:`arrayoptim.schedules`.

``import arrayoptim`` never imports this subpackage (nor torch).
"""
from ._factory import create_optimizer_v2, param_groups_layer_decay, param_groups_weight_decay
from ._optimizer import ArrayOptimizer
from ._scheduler import ScheduleDriver, create_scheduler_v2

__all__ = ["ArrayOptimizer", "ScheduleDriver", "create_optimizer_v2", "create_scheduler_v2", "param_groups_layer_decay",
           "param_groups_weight_decay"]
