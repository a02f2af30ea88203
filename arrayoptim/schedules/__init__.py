"""Learning-rate schedules as pure functions of the step (timm and torch.optim.lr_scheduler equivalents).

A schedule is an immutable callable ``s(t) -> float`` of an integer step ``t >= 0``; factories validate their
arguments eagerly. Metric-driven schedulers (torch ``ReduceLROnPlateau``, timm ``PlateauLRScheduler``) are pure
state machines ``step(state, metric) -> (state, lr)``. Neither torch nor timm is imported.

* ``TORCH_EQUIVALENTS[name](initial_lr, **torch_kwargs)``: ``s(t)`` is the lr torch's scheduler holds after ``t``
  calls to ``step()``.
* ``TIMM_EQUIVALENTS[name](base_lr, **timm_kwargs)``: ``s(t)`` is the lr timm sets on ``step(t)`` /
  ``step_update(t)``.
* ``create_scheduler_v2(base_lr, ...)``: timm's factory, returning ``(schedule, num_epochs)``.
* Composition: ``join_schedules``, ``with_warmup``, ``scale_schedule``, ``constant_schedule``; any optimizer
  hyperparameter can follow a schedule through ``hyperparams_at(t, lr=..., weight_decay=...)``.
"""

from ._base import Schedule
from ._compose import constant_schedule, hyperparams_at, join_schedules, scale_schedule, with_warmup
from ._noise import timm_noise
from ._timm import (
    TIMM_EQUIVALENTS,
    PlateauLRScheduler,
    PlateauLRSchedulerState,
    cosine_lr_scheduler,
    create_scheduler_v2,
    multistep_lr_scheduler,
    plateau_lr_scheduler,
    poly_lr_scheduler,
    step_lr_scheduler,
    tanh_lr_scheduler,
    wsd_lr_scheduler,
)
from ._torch import (
    TORCH_EQUIVALENTS,
    ReduceLROnPlateau,
    ReduceLROnPlateauState,
    chained_scheduler,
    constant_lr,
    cosine_annealing_lr,
    cosine_annealing_warm_restarts,
    cyclic_lr,
    exponential_lr,
    lambda_lr,
    linear_lr,
    multiplicative_lr,
    multistep_lr,
    one_cycle_lr,
    polynomial_lr,
    reduce_lr_on_plateau,
    sequential_lr,
    step_lr,
)

__all__ = [
    "Schedule",
    "TORCH_EQUIVALENTS",
    "TIMM_EQUIVALENTS",
    "create_scheduler_v2",
    "hyperparams_at",
    "constant_schedule",
    "join_schedules",
    "with_warmup",
    "scale_schedule",
    "timm_noise",
    # timm
    "cosine_lr_scheduler",
    "tanh_lr_scheduler",
    "step_lr_scheduler",
    "multistep_lr_scheduler",
    "poly_lr_scheduler",
    "wsd_lr_scheduler",
    "plateau_lr_scheduler",
    "PlateauLRScheduler",
    "PlateauLRSchedulerState",
    # torch
    "lambda_lr",
    "multiplicative_lr",
    "step_lr",
    "multistep_lr",
    "constant_lr",
    "linear_lr",
    "exponential_lr",
    "polynomial_lr",
    "cosine_annealing_lr",
    "cosine_annealing_warm_restarts",
    "cyclic_lr",
    "one_cycle_lr",
    "sequential_lr",
    "chained_scheduler",
    "reduce_lr_on_plateau",
    "ReduceLROnPlateau",
    "ReduceLROnPlateauState",
]
