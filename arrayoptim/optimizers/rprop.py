r"""Rprop exactly as torch.optim implements it (``rprop``, a torch-only name with torch's defaults)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import LR, NONNEG, Each, Hyperparams
from .._registry import OptimInfo, register
from .._xp import assign, increment_step, new_step, zeros_like


def _etas(name, etas, hp) -> None:
    """torch's check of ``etas = (etaminus, etaplus)``: ``0 < etaminus < 1 < etaplus`` (NaN fails it)."""
    if len(etas) != 2:
        raise ValueError(f"Invalid etas: {etas!r} (etas must be (etaminus, etaplus))")
    etaminus, etaplus = etas
    if not 0.0 < etaminus < 1.0 < etaplus:
        raise ValueError(f"Invalid eta values: {etaminus}, {etaplus} (etas={etas!r} must satisfy "
                         "0 < etaminus < 1 < etaplus)")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RpropHyperparams(Hyperparams):
    r"""torch.optim.Rprop: resilient backpropagation (per-element step sizes adapted by gradient sign agreement).

    With :math:`(\eta^-, \eta^+)` = ``etas``, :math:`(\Delta_{\min}, \Delta_{\max})` = ``step_sizes``, and ``g``
    negated first if ``maximize``; :math:`g'` is the previous step's (masked) gradient:

    .. math::

        f &= \begin{cases} \eta^+ & g g' > 0 \\ \eta^- & g g' < 0 \\ 1 & g g' = 0 \end{cases} \\
        \Delta &\leftarrow \mathrm{clip}(\Delta f,\ \Delta_{\min},\ \Delta_{\max}) \\
        g &\leftarrow 0 \ \text{where } g g' < 0 \\
        p &\leftarrow p - \mathrm{sign}(g)\,\Delta \qquad g' \leftarrow g

    State: ``step`` (0-d), ``prev`` (:math:`g'`, starts at 0), ``step_size`` (:math:`\Delta`, starts at ``lr``:
    :math:`\Delta_1 = \mathrm{clip}(\gamma, \Delta_{\min}, \Delta_{\max})`).

    Warnings
    --------
    * ``lr`` is only the initial step size: later changes of ``lr`` (a schedule) have no effect, as in torch.
      ``step_size`` starts at the lr of the first step (a schedule's first value), as torch's lazily created
      state does.
    * Params move even with ``lr=0``: the step size is clipped up to ``step_sizes[0]`` (1e-6 by default).
    * There is no weight decay (torch's Rprop has none).
    * This is Rprop without weight backtracking (torch's "Rprop-"); optax's ``rprop`` is the same variant.

    References
    ----------
    Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation Learning: The RPROP Algorithm",
    IEEE ICNN 1993.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('rprop', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> s = opt.init(p)
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, s)
    >>> p, s = opt.step(p, {'x': np.array([0.5, 4.0])}, s)
    >>> p['x'], s['x']['step_size']
    (array([ 0.78, -1.9 ]), array([0.12, 0.05]))
    """

    anchor = "torch.optim.Rprop"
    lr: float = 1e-2
    etas: tuple[float, float] = (0.5, 1.2)
    step_sizes: tuple[float, float] = (1e-6, 50.0)
    maximize: bool = False

    #: torch checks lr and etas; step sizes bound the per-element lr, so a negative one would step uphill
    checks = {"lr": LR, "etas": _etas, "step_sizes": Each(NONNEG)}

    def validate(self) -> None:
        if len(self.step_sizes) != 2:
            raise ValueError(f"Invalid step_sizes: {self.step_sizes!r} (step_sizes must be (min, max))")


def rprop_init(xp, p, hp):
    return {"step": new_step(xp, p), "prev": zeros_like(xp, p),
            "step_size": xp.full(p.shape, hp.lr, dtype=p.dtype, device=device(p))}


def rprop_kernel(xp, p, g, s, hp, ctx):
    """Per-array Rprop update; see :class:`RpropHyperparams` for the math."""
    etaminus, etaplus = hp.etas
    smin, smax = hp.step_sizes
    if hp.maximize:
        g = -g
    t = increment_step(s)
    prev, size = s["prev"], s["step_size"]
    agree = g * prev
    dev = device(p)

    def full(v):
        return xp.full((), v, dtype=p.dtype, device=dev)

    factor = xp.where(agree > 0, full(etaplus), xp.where(agree < 0, full(etaminus), full(1.0)))
    # torch fills step_size with the lr of the first step (its state is created lazily); prev = 0 then, so f = 1
    size = assign(size, xp.clip(xp.where(t == 1, full(hp.lr), size * factor), min=smin, max=smax))
    g = xp.where(agree < 0, full(0.0), g)
    p -= xp.sign(g) * size
    prev = assign(prev, g)
    s["prev"], s["step_size"] = prev, size
    return p


register(OptimInfo("rprop", "torch.optim.Rprop, Resilient backpropagation", RpropHyperparams,
                   kernel=rprop_kernel, init=rprop_init, param_slots=("prev", "step_size"), has_eps=False))
