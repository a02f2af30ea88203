r"""MARS (variance-reduced Adam/Lion) as timm implements it (``mars``, ``cmars``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, BETAS, NONNEG, Hyperparams, OneOf, hyperfield
from .._registry import OptimInfo, register
from .._xp import assign, caution, increment_step, like, new_step, zeros_like

MARS_TYPES = ("adamw", "lion")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MarsHyperparams(Hyperparams):
    r"""timm.optim.Mars: MARS-AdamW / MARS-Lion for params with ``ndim >= 2``, plain AdamW-style for the rest.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\kappa` = ``gamma``, ``t`` the ``step`` slot after its increment and
    :math:`g_{t-1}` the ``last_grad`` slot. For params with ``ndim >= 2`` (all params when ``optimize_1d``):

    .. math::

        c &= \begin{cases} g & t = 1 \\ g + \kappa\,\frac{\beta_1}{1-\beta_1}\,(g - g_{t-1}) & t > 1 \end{cases}
            \qquad c \leftarrow c / \max(1, \lVert c \rVert_2) \\
        m &\leftarrow \beta_1 m + (1-\beta_1)\,c \qquad \tilde m = C(m) \\
        u &= \lambda p + \frac{\tilde m / (1-\beta_1^t)}{\sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon},
            \quad v \leftarrow \beta_2 v + (1-\beta_2)\,c^2 \quad \text{(mars\_type='adamw')} \\
        u &= \lambda p + \mathrm{sign}(\tilde m) \quad \text{(mars\_type='lion')} \\
        p &\leftarrow p - \gamma u

    Other params (``ndim < 2``: biases, 0-d params), with :math:`(\beta_1, \beta_2)` = ``betas_1d`` (default
    ``betas``): :math:`m \leftarrow \beta_1 m + (1-\beta_1) g`, :math:`v \leftarrow \beta_2 v + (1-\beta_2) g^2`,
    :math:`u = \lambda p + \frac{C(m)/(1-\beta_1^t)}{\sqrt v/\sqrt{1-\beta_2^t}+\epsilon}`,
    :math:`p \leftarrow p - \gamma\,\texttt{lr\_1d\_factor}\,u`. In both, ``last_grad`` becomes a copy of ``g``.

    :math:`C(m) = m \odot \mathbb{1}[m g > 0] / \max(\mathrm{mean}(\mathbb{1}[m g > 0]), 10^{-3})` with ``caution``
    (the raw ``g``, not ``c``; the stored ``exp_avg`` is not masked), :math:`C(m) = m` otherwise.

    State: ``step`` (0-d), ``exp_avg`` (m), ``last_grad``, ``exp_avg_sq`` (v; also kept, unused, for 'lion').

    Warnings
    --------
    * timm (commit 303f7691) skips the gradient difference at step 1 (:math:`c = g`); the reference code uses
      :math:`g_0 = 0`, i.e. :math:`c = (1 + \kappa\beta_1/(1-\beta_1))\,g`. Other ports use a STORM-style recursion.
    * :math:`\lVert c \rVert` is the norm of the whole tensor (per param), clipped to at most 1; weight decay is
      added to the **normalized update** (scaled by ``lr``), neither L2 into ``g`` nor decoupled before the step.
    * Which rule a param gets depends on its number of dimensions (static), not on a flag per param.
    * timm keeps ``step`` as a Python int (here a 0-d array); a bad ``mars_type`` raises ``ValueError`` here
      (timm: ``AssertionError``); timm does not check ``weight_decay``, ``betas_1d`` or ``lr_1d_factor``.

    References
    ----------
    Yuan et al., "MARS: Unleashing the Power of Variance Reduction for Training Large Models", arXiv:2411.10438.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    """

    anchor = "timm.optim.Mars"
    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    weight_decay: float = 0.0
    gamma: float = 0.025
    mars_type: str = "adamw"
    optimize_1d: bool = False
    lr_1d_factor: float = 1.0
    betas_1d: tuple[float, float] | None = hyperfield(None, "?floats")
    caution: bool = False

    checks = {**ADAM_CHECKS, "betas_1d": BETAS,
              "mars_type": OneOf(MARS_TYPES, "MARS type not supported: {name}={value!r} (expected 'adamw' or 'lion')"),
              "lr_1d_factor": NONNEG}  # not checked by timm: scales the 1-d params' lr


def mars_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "last_grad": zeros_like(xp, p),
            "exp_avg_sq": zeros_like(xp, p)}


def mars_kernel(xp, p, g, s, hp, ctx):
    """Per-array MARS update; see :class:`MarsHyperparams` for the math."""
    t = increment_step(s)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    if hp.optimize_1d or g.ndim >= 2:
        beta1, beta2 = hp.betas
        # the gradient-difference term, switched off at t == 1 (timm) without a data-dependent branch
        k = like(xp, t > 1, p) * (hp.gamma * (beta1 / (1.0 - beta1)))
        c = (g - s["last_grad"]) * k + g
        c = c / xp.clip(xp.sqrt(xp.sum(c * c)), min=1.0)
        m *= beta1
        m += (1.0 - beta1) * c
        d = caution(xp, m, g) if hp.caution else m
        if hp.mars_type == "adamw":
            v *= beta2
            v += (1.0 - beta2) * (c * c)
            denom = xp.sqrt(v) / like(xp, xp.sqrt(1.0 - beta2 ** t), p) + hp.eps
            u = (d / like(xp, 1.0 - beta1 ** t, p)) / denom
        else:
            u = xp.sign(d)
        lr = hp.lr
    else:
        beta1, beta2 = hp.betas_1d if hp.betas_1d is not None else hp.betas
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        denom = xp.sqrt(v) / like(xp, xp.sqrt(1.0 - beta2 ** t), p) + hp.eps
        d = caution(xp, m, g) if hp.caution else m
        u = (d / like(xp, 1.0 - beta1 ** t, p)) / denom
        lr = hp.lr * hp.lr_1d_factor
    s["exp_avg"], s["exp_avg_sq"] = m, v
    if hp.weight_decay != 0:
        u = p * hp.weight_decay + u
    p -= lr * u
    s["last_grad"] = assign(s["last_grad"], g)
    return p


register(
    OptimInfo("mars", "Unleashing the Power of Variance Reduction for Training Large Models", MarsHyperparams,
              kernel=mars_kernel, init=mars_init, param_slots=("exp_avg", "last_grad", "exp_avg_sq"),
              has_betas=True),
    variants={"cmars": ("Cautious MARS", {"caution": True})},
)
