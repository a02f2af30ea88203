r"""Adan exactly as timm implements it (``adan``, ``adanw``, ``cadan``, ``cadanw``)."""
from __future__ import annotations

import dataclasses

from array_api_compat import device as _device

from .._hyper import EPS, LR, NONNEG, Betas, Hyperparams
from .._registry import OptimInfo, register
from .._xp import assign, caution, increment_step, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdanHyperparams(Hyperparams):
    r"""timm.optim.Adan: adaptive Nesterov momentum (the sail-sg reference implementation's conventions).

    With :math:`\beta_1, \beta_2, \beta_3` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` =
    ``weight_decay``, :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, ``m`` = ``exp_avg``,
    ``d`` = ``exp_avg_diff``, ``n`` = ``exp_avg_sq``, ``q`` = ``neg_pre_grad`` (the previous gradient, negated;
    set to :math:`-g` at the group's first step and at the param's first grad, so :math:`\Delta = 0` there):

    .. math::

        \Delta &\leftarrow g + q \quad (= g_t - g_{t-1}) \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad d \leftarrow \beta_2 d + (1-\beta_2)\Delta \\
        n &\leftarrow \beta_3 n + (1-\beta_3)\,(g + \beta_2\Delta)^2 \\
        \delta &\leftarrow \sqrt{n}/\sqrt{1-\beta_3^t} + \epsilon \\
        u &\leftarrow \mathrm{caution}(m, g) \text{ (caution)} \quad\text{else}\quad u = m \\
        p &\leftarrow \Big(p - \frac{\gamma}{1-\beta_1^t}\frac{u}{\delta}
             - \frac{\gamma\beta_2}{1-\beta_2^t}\frac{d}{\delta}\Big) \Big/ (1+\gamma\lambda)
             \quad\text{(proximal, no\_prox=False)} \\
        p &\leftarrow p\,(1-\gamma\lambda) - \frac{\gamma}{1-\beta_1^t}\frac{u}{\delta}
             - \frac{\gamma\beta_2}{1-\beta_2^t}\frac{d}{\delta} \quad\text{(no\_prox=True)} \\
        q &\leftarrow -g

    State: ``step`` (0-d, the group's count), ``stepped`` (0-d bool), ``exp_avg``, ``exp_avg_sq``, ``exp_avg_diff``,
    ``neg_pre_grad``.

    Warnings
    --------
    * **Step counter.** timm keeps one ``step`` per *param group* (``group['step']``, a Python int) and advances
      it on every ``step()`` call, grads or not. Here it is state too (registry field ``counter="group"``): every
      param's ``step`` slot holds its group's count, advanced by the kernel for a param with a grad and by the core
      for a param without one, so ``t`` is timm's in every case, also after steps in which a whole group has no
      grad. The torch adapter keeps the count where timm does (``param_groups[i]['step']``, an int), and
      :func:`arrayoptim.to_state_dict` moves it there.
    * **First gradient.** timm sets ``neg_pre_grad`` to :math:`-g` (so :math:`\Delta = 0`) at the group's first
      step and at a param's first grad, when it creates the slot. Here the slot exists from ``init`` (one state
      structure across steps, e.g. for ``jax.lax.scan``), and the 0-d boolean slot ``stepped``, false until the
      param's first grad, marks the second case: the reset is ``t == 1 or not stepped``, independent of the count.
      timm has no ``stepped``: it is whether timm has state for the param (the adapter derives it so).
    * The gradient difference enters ``n`` and the update weighted by :math:`\beta_2` (and ``d`` by
      :math:`1-\beta_2`), as the reference code does; ``optax.adan`` weights the difference by
      :math:`1-\beta_2` in ``n`` and differs.
    * ``adan`` decays *proximally* (divides by :math:`1+\gamma\lambda` after the step); ``adanw`` (``no_prox``)
      multiplies by :math:`1-\gamma\lambda` before it.
    * timm does not check ``weight_decay``; a negative value is rejected here.

    References
    ----------
    Xie et al., "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models", arXiv:2208.06677.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    """

    anchor = "timm.optim.Adan"
    lr: float = 1e-3
    betas: tuple[float, float, float] = (0.98, 0.92, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.0
    no_prox: bool = False
    caution: bool = False

    checks = {"lr": LR, "eps": EPS, "betas": Betas(3), "weight_decay": NONNEG}


def adan_init(xp, p, hp):
    return {"step": new_step(xp, p), "stepped": xp.zeros((), dtype=xp.bool, device=_device(p)),
            "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p), "exp_avg_diff": zeros_like(xp, p),
            "neg_pre_grad": zeros_like(xp, p)}


def adan_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adan update; see :class:`AdanHyperparams` for the math."""
    beta1, beta2, beta3 = hp.betas
    t = increment_step(s)
    q = s["neg_pre_grad"]
    stepped = s.get("stepped")  # absent from states saved before it existed: such a param has stepped
    first = t == 1 if stepped is None else xp.logical_or(t == 1, xp.logical_not(stepped))
    q = assign(q, xp.where(first, -g, q))  # the group's first step or the param's first grad: no difference
    if stepped is not None:
        s["stepped"] = assign(stepped, xp.ones_like(stepped))
    q += g  # now the gradient difference g_t - g_{t-1}
    m, d, n = s["exp_avg"], s["exp_avg_diff"], s["exp_avg_sq"]
    m += (1 - beta1) * (g - m)
    d *= beta2
    d += (1 - beta2) * q
    q *= beta2
    q += g  # g + beta2 * diff
    n *= beta3
    n += (1 - beta3) * (q * q)
    denom = xp.sqrt(n) / like(xp, xp.sqrt(1 - beta3 ** t), p)
    denom += hp.eps
    step_size = like(xp, hp.lr / (1 - beta1 ** t), p)
    step_size_diff = like(xp, hp.lr * beta2 / (1 - beta2 ** t), p)
    u = caution(xp, m, g) if hp.caution else m
    if hp.no_prox:
        p *= 1 - hp.lr * hp.weight_decay
    p -= step_size * (u / denom)
    p -= step_size_diff * (d / denom)
    if not hp.no_prox:
        p /= 1 + hp.lr * hp.weight_decay
    q = assign(q, -g)
    s["exp_avg"], s["exp_avg_diff"], s["exp_avg_sq"], s["neg_pre_grad"] = m, d, n, q
    return p


register(
    OptimInfo("adan", "Adaptive Nesterov Momentum Algorithm", AdanHyperparams, kernel=adan_kernel, init=adan_init,
              param_slots=("exp_avg", "exp_avg_sq", "exp_avg_diff", "neg_pre_grad"), defaults={"no_prox": False},
              has_betas=True, num_betas=3, counter="group"),
    variants={
        "adanw": ("Adaptive Nesterov Momentum with decoupled weight decay", {"no_prox": True}),
        "cadan": ("Cautious Adaptive Nesterov Momentum Algorithm", {"caution": True, "no_prox": False}),
        "cadanw": ("Cautious Adaptive Nesterov Momentum with decoupled weight decay",
                   {"caution": True, "no_prox": True}),
    },
)
