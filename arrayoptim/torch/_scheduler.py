"""timm-style schedulers over a torch optimizer, computed by the pure schedules of :mod:`arrayoptim.schedules`.

``create_scheduler_v2(optimizer, ...)`` has timm's signature and returns ``(scheduler, num_epochs)``; the
scheduler has timm's ``step(epoch, metric=None)``, ``step_update(num_updates, metric=None)``, ``state_dict()`` and
``load_state_dict()`` and writes the same ``param_group['lr']`` values timm's would (``lr_scale`` included).
"""
from __future__ import annotations

from typing import Any, Sequence

from arrayoptim import schedules as S

__all__ = ["ScheduleDriver", "create_scheduler_v2"]


class ScheduleDriver:
    """Drives ``param_group[param_group_field]`` of every group from one pure schedule per group.

    Parameters
    ----------
    optimizer
        Any torch optimizer (``param_groups``).
    make_schedule
        ``make_schedule(base_lr) -> Schedule`` (or a plateau state machine with ``init``/``step``).
    param_group_field
        The group key written (timm: ``'lr'``).
    initialize
        timm's flag: ``True`` sets each group's ``initial_<field>`` from its current value if missing (``False``
        requires it).

    Notes
    -----
    Like timm's, the constructor writes each group's base value, or ``warmup_lr_init`` when the schedule has a
    warmup, times the group's ``lr_scale`` if it has one; ``step(t)`` (``t_in_epochs``) or ``step_update(t)``
    (otherwise) writes ``s_g(t) * lr_scale``.
    """

    def __init__(self, optimizer: Any, make_schedule: Any, param_group_field: str = "lr",
                 initialize: bool = True) -> None:
        self.optimizer = optimizer
        self.param_group_field = param_group_field
        self._initial_field = f"initial_{param_group_field}"
        for i, g in enumerate(optimizer.param_groups):
            if initialize:
                g.setdefault(self._initial_field, g[param_group_field])
            elif self._initial_field not in g:
                raise KeyError(f"{self._initial_field} not set in optimizer.param_groups[{i}] (initialize=False)")
        self.base_values = [g[self._initial_field] for g in optimizer.param_groups]
        self._make = make_schedule
        self._build()
        self.metric = None
        first = self._schedules[0]
        if self._plateau:
            self._states = [s.init() for s in self._schedules]
            self.update_groups([st.lr for st in self._states])
        else:
            warmup_t = first.params.get("warmup_t", 0)
            self.update_groups(self.base_values)
            if warmup_t:
                self.update_groups(first.params.get("warmup_lr_init", 0.0))

    def _build(self) -> None:
        self._schedules = [self._make(float(b)) for b in self.base_values]
        self._plateau = hasattr(self._schedules[0], "init")
        self.t_in_epochs = True if self._plateau else bool(self._schedules[0].t_in_epochs)

    def __repr__(self) -> str:
        return f"ScheduleDriver({self._schedules[0]!r}, groups={len(self._schedules)})"

    def update_groups(self, values: float | Sequence[float]) -> None:
        """timm's ``update_groups``: ``value * lr_scale`` where a group has ``lr_scale``."""
        if not isinstance(values, (list, tuple)):
            values = [values] * len(self.optimizer.param_groups)
        for g, v in zip(self.optimizer.param_groups, values):
            g[self.param_group_field] = v * g["lr_scale"] if "lr_scale" in g else v

    def step(self, epoch: int, metric: float | None = None) -> None:
        """End of epoch ``epoch``: writes the epoch's values when the schedule counts epochs."""
        self.metric = metric
        if self._plateau:
            out = [s.step(st, metric, epoch) for s, st in zip(self._schedules, self._states)]
            self._states = [o[0] for o in out]
            self.update_groups([o[1] for o in out])
        elif self.t_in_epochs:
            self.update_groups([s(epoch) for s in self._schedules])

    def step_update(self, num_updates: int, metric: float | None = None) -> None:
        """After update ``num_updates``: writes its values when the schedule counts updates."""
        self.metric = metric
        if not self._plateau and not self.t_in_epochs:
            self.update_groups([s(num_updates) for s in self._schedules])

    def state_dict(self) -> dict[str, Any]:
        """``base_values`` and ``metric`` (timm's keys; the schedules are pure, so that is all a resume needs) plus
        the plateau machines' full state."""
        out = {"base_values": list(self.base_values), "metric": self.metric,
               "param_group_field": self.param_group_field, "t_in_epochs": self.t_in_epochs}
        if self._plateau:
            out["plateau_states"] = [tuple(st) for st in self._states]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Accepts this class's ``state_dict()`` or a timm scheduler's (its ``base_values`` and ``metric``)."""
        if "base_values" not in state_dict:
            raise ValueError(f"scheduler state_dict has no 'base_values' (keys: {sorted(state_dict)})")
        base = list(state_dict["base_values"])
        if len(base) != len(self.optimizer.param_groups):
            raise ValueError(f"scheduler state_dict has {len(base)} base_values, the optimizer "
                             f"{len(self.optimizer.param_groups)} param groups")
        self.base_values = base
        self.metric = state_dict.get("metric")
        self._build()
        if self._plateau:
            if "plateau_states" in state_dict:
                cls = type(self._schedules[0].init())
                self._states = [cls(*st) for st in state_dict["plateau_states"]]
            else:
                self._states = [s.init() for s in self._schedules]


def create_scheduler_v2(
    optimizer: Any,
    sched: str = "cosine",
    num_epochs: int = 300,
    decay_epochs: float | None = None,
    decay_milestones: Sequence[int] = (90, 180, 270),
    cooldown_epochs: int = 0,
    patience_epochs: int = 10,
    decay_rate: float = 0.1,
    min_lr: float = 0.0,
    warmup_lr: float = 1e-5,
    warmup_epochs: int = 0,
    warmup_prefix: bool = False,
    noise: float | Sequence[float] | None = None,
    noise_pct: float = 0.67,
    noise_std: float = 1.0,
    noise_seed: int = 42,
    cycle_mul: float = 1.0,
    cycle_decay: float = 0.1,
    cycle_limit: int = 1,
    k_decay: float = 1.0,
    decay_fn: str | None = None,
    stable_timescale: float | None = None,
    plateau_mode: str = "max",
    step_on_epochs: bool = True,
    updates_per_epoch: int = 0,
) -> tuple[ScheduleDriver | None, int]:
    """timm's ``create_scheduler_v2`` over any torch optimizer: ``(scheduler, num_epochs)``.

    Every argument is timm's (same names, defaults and translation; see
    :func:`arrayoptim.schedules.create_scheduler_v2`). ``sched='none'`` returns ``(None, num_epochs)`` and leaves the
    optimizer untouched. The scheduler is a :class:`ScheduleDriver`: one pure schedule per param group, built from
    the group's ``initial_lr``.
    """
    kwargs = dict(sched=sched, num_epochs=num_epochs, decay_epochs=decay_epochs, decay_milestones=decay_milestones,
                  cooldown_epochs=cooldown_epochs, patience_epochs=patience_epochs, decay_rate=decay_rate,
                  min_lr=min_lr, warmup_lr=warmup_lr, warmup_epochs=warmup_epochs, warmup_prefix=warmup_prefix,
                  noise=noise, noise_pct=noise_pct, noise_std=noise_std, noise_seed=noise_seed, cycle_mul=cycle_mul,
                  cycle_decay=cycle_decay, cycle_limit=cycle_limit, k_decay=k_decay, decay_fn=decay_fn,
                  stable_timescale=stable_timescale, plateau_mode=plateau_mode, step_on_epochs=step_on_epochs,
                  updates_per_epoch=updates_per_epoch)
    probe_lr = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
    s, total = S.create_scheduler_v2(float(probe_lr), **kwargs)  # validates everything before the groups change
    if s is None:
        return None, total
    return ScheduleDriver(optimizer, lambda base: S.create_scheduler_v2(base, **kwargs)[0]), total
