r"""Averaged SGD exactly as torch.optim implements it (``asgd``, a torch-only name with torch's defaults)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device

from .._hyper import LR, NONNEG, Hyperparams, Range
from .._registry import OptimInfo, register
from .._xp import assign, increment_step, like, new_step, step_dtype, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class ASGDHyperparams(Hyperparams):
    r"""torch.optim.ASGD: SGD with a decaying step size and Polyak-Ruppert averaging of the iterates.

    With :math:`\lambda` = ``lambd``, :math:`\alpha` = ``alpha``, :math:`t_0` = ``t0``, :math:`w` =
    ``weight_decay``, :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and ``g`` negated first
    if ``maximize``; :math:`\eta` and :math:`\mu` are the values stored by the previous step
    (:math:`\eta = \gamma`, :math:`\mu = 1` before the first):

    .. math::

        g &\leftarrow g + w p \\
        p &\leftarrow p\,(1 - \lambda\eta) - \eta\, g \\
        a &\leftarrow \begin{cases} p & \mu = 1 \\ a + \mu\,(p - a) & \text{otherwise} \end{cases} \\
        \eta &\leftarrow \frac{\gamma}{(1 + \lambda\gamma t)^{\alpha}} \qquad
        \mu \leftarrow \frac{1}{\max(1,\ t - t_0)}

    State: ``step``, ``eta``, ``mu`` (0-d, in the ``step`` dtype) and ``ax`` (a, the averaged iterate; the
    params themselves are the SGD iterates).

    Warnings
    --------
    * **torch keeps ``step``, ``eta`` and ``mu`` in its default dtype** (float32 unless
      ``torch.set_default_dtype(torch.float64)``), even for float64 params, and reads ``eta`` back as a Python
      float, so torch's float64 trajectory uses a float32-rounded ``eta`` (relative error ~6e-8 per step).
      arrayoptim keeps these scalars in the step dtype (float64 for float64 params): it reproduces torch under
      ``torch.set_default_dtype(torch.float64)``, and float32 params match torch's default.
    * ``eta`` is created from the lr of the first step, as torch's lazily created state is (a schedule's first
      value, not the constructor's ``lr``); after that ``eta`` lags one step behind ``lr`` changes.
    * Until :math:`t > t_0 + 1` (:math:`t_0 = 10^6` by default) ``ax`` is just a copy of the params.

    References
    ----------
    Polyak & Juditsky, "Acceleration of Stochastic Approximation by Averaging", SIAM J. Control Optim. 30 (1992).
    Bottou, "Stochastic Gradient Descent Tricks", Neural Networks: Tricks of the Trade (2012).

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('asgd', lr=0.1, lambd=0.0)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -4.0])}, opt.init(p))
    >>> p['x'], s['x']['ax'], s['x']['eta']
    (array([ 0.95, -1.6 ]), array([ 0.95, -1.6 ]), array(0.1))
    """

    anchor = "torch.optim.ASGD"
    lr: float = 1e-2
    lambd: float = 1e-4
    alpha: float = 0.75
    t0: float = 1e6
    weight_decay: float = 0.0
    maximize: bool = False

    # torch checks lr and weight_decay; lambd and alpha are a decay and its power (negative ones grow the step
    # size without bound); t0=inf (never average) is meaningful
    checks = {"lr": LR, "weight_decay": NONNEG, "lambd": NONNEG, "alpha": NONNEG, "t0": Range(inf_ok=True)}


def _scalar(xp, p, value):
    return xp.full((), value, dtype=step_dtype(xp, p), device=device(p))


def asgd_init(xp, p, hp):
    return {"step": new_step(xp, p), "eta": _scalar(xp, p, hp.lr), "mu": _scalar(xp, p, 1.0),
            "ax": zeros_like(xp, p)}


def asgd_kernel(xp, p, g, s, hp, ctx):
    """Per-array ASGD update; see :class:`ASGDHyperparams` for the math."""
    if hp.maximize:
        g = -g
    t = increment_step(s)
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * p
    eta, mu, ax = s["eta"], s["mu"], s["ax"]
    eta = assign(eta, xp.where(t == 1, xp.full_like(eta, hp.lr), eta))  # torch: eta = the first step's lr
    e = like(xp, eta, p)
    p *= 1 - hp.lambd * e
    p -= e * g
    ax = assign(ax, xp.where(mu == 1, p, ax + (p - ax) * like(xp, mu, p)))
    eta = assign(eta, hp.lr / (1 + hp.lambd * hp.lr * t) ** hp.alpha)
    mu = assign(mu, 1 / xp.clip(t - hp.t0, min=1.0))
    s["eta"], s["mu"], s["ax"] = eta, mu, ax
    return p


register(OptimInfo("asgd", "torch.optim.ASGD, Averaged Stochastic Gradient Descent", ASGDHyperparams,
                   kernel=asgd_kernel, init=asgd_init, param_slots=("ax",), has_eps=False))
