r"""AdamP and SGDP exactly as timm implements them (``adamp``, ``cadamp``, ``sgdp``, ``csgdp``): the update of a
scale-invariant weight is projected onto the tangent space of its sphere, and its weight decay scaled by
``wd_ratio``.

timm decides per tensor with a Python branch (``if cosine_sim.max() < delta / sqrt(dim)``, a host sync); here both
views are computed and the result selected with ``xp.where``, so the step traces under ``jax.jit``.
"""
from __future__ import annotations

import dataclasses
import math

from .._hyper import ADAM_CHECKS, EPS, LR, NONNEG, Hyperparams, Range
from .._registry import OptimInfo, register
from .._xp import caution, increment_step, like, new_step, zeros_like


def _safe(xp, den):
    """``den`` with zeros replaced by 1 (only reached when ``eps=0`` and a row is all zeros)."""
    return xp.where(den > 0, den, 1.0)


def projection(xp, p, g, d, hp, cautious):
    """timm's AdamP/SGDP projection of the direction ``d``, returning ``(d, wd_factor)``.

    For ``p.ndim > 1``, with views ``V`` = channel (``(p.shape[0], -1)``) then layer (``(1, -1)``):
    the first view whose largest ``|cos(g_row, p_row)|`` is below ``delta / sqrt(row size)`` projects ``d`` onto
    the tangent space, ``d <- d - p_n <p_n, d>_row`` with ``p_n = p / (||p_row|| + eps)``, and makes
    ``wd_factor = wd_ratio``. With caution, a projected ``d`` is masked by ``d * (g - p_n <p_n, g>_row) > 0``
    (spherical caution) and re-projected; an unprojected one gets the standard mask ``d * g > 0``.
    ``wd_factor`` is a 0-d array when a projection may apply, else the float 1.0.
    """
    plain = caution(xp, d, g) if cautious else d
    if p.ndim <= 1 or math.prod(p.shape) == 0:
        return plain, 1.0
    expand = (-1,) + (1,) * (p.ndim - 1)
    out, wd_factor = plain, None
    del plain  # held as out (replaced by the first view's selection)
    for rows in (1, p.shape[0]):  # layer view first: the channel view, tried first by timm, is selected last
        pv, gv = xp.reshape(p, (rows, -1)), xp.reshape(g, (rows, -1))
        p_norm = xp.sqrt(xp.sum(pv * pv, axis=1))
        g_norm = xp.sqrt(xp.sum(gv * gv, axis=1))
        # torch's cosine_similarity: each row normalised by max(||row||, eps), then the dot product
        g_den = xp.reshape(_safe(xp, xp.clip(g_norm, min=hp.eps)), (rows, 1))
        p_den = xp.reshape(_safe(xp, xp.clip(p_norm, min=hp.eps)), (rows, 1))
        gq = gv / g_den  # (gv / g_den) * (pv / p_den), in place on the first quotient (a product commutes exactly)
        gq *= pv / p_den
        cos = xp.sum(gq, axis=1)
        del gq
        hit = xp.max(xp.abs(cos)) < hp.delta / math.sqrt(pv.shape[1])

        def unit():  # p_n: recomputed where that saves holding it (the same division: the same values)
            return p / xp.reshape(_safe(xp, p_norm + hp.eps), expand)

        def radial(x):
            return p_n * xp.reshape(xp.sum(xp.reshape(p_n * x, (rows, -1)), axis=1), expand)

        p_n = unit()
        proj = radial(d)
        proj = d - proj
        if cautious:
            gt = radial(g)
            gt -= g  # -(g - radial(g)): caution's mask of the negated vector, without another copy
            del p_n
            proj = caution(xp, proj, gt, negated=True)
            del gt
            p_n = unit()
            r = radial(proj)
            del p_n
            proj = proj - r
            del r
        else:
            del p_n
        out = xp.where(hit, proj, out)
        del proj
        one = xp.ones_like(cos[0])
        wd_factor = xp.where(hit, hp.wd_ratio * one, one if wd_factor is None else wd_factor)
    return out, wd_factor


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamPHyperparams(Hyperparams):
    r"""timm.optim.AdamP.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment:

    .. math::

        m &\leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \qquad
        \mathrm{den} = \sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon \\
        d &= \frac{\beta_1 m + (1-\beta_1) g}{\mathrm{den}} \ \text{(nesterov)} \quad\text{or}\quad
            \frac{m}{\mathrm{den}} \\
        d, \rho &\leftarrow \mathrm{projection}(p, g, d) \quad (\rho = \texttt{wd\_ratio} \text{ if projected,
            else } 1; \text{ see } \texttt{projection}) \\
        p &\leftarrow p\,(1 - \gamma\lambda\rho) \ (\lambda > 0) \qquad
        p \leftarrow p - \frac{\gamma}{1-\beta_1^t}\, d

    A param is projected when ``ndim > 1`` and, in its channel view ``(shape[0], -1)`` or else its layer view
    ``(1, -1)``, every row's :math:`|\cos(g, p)|` is below ``delta / sqrt(row size)``.

    State: ``step`` (0-d; timm keeps a Python int), ``exp_avg``, ``exp_avg_sq``.

    Warnings
    --------
    * The registry's ``adamp``/``cadamp`` use ``wd_ratio=0.01, nesterov=True``; the class defaults are 0.1/False.
    * timm branches in Python on the cosine test (a host sync); arrayoptim computes both views and selects with
      ``xp.where`` (same numbers; the work of both views is always done).
    * Caution on a projected tensor is "spherical": the mask comes from the tangential part of ``g`` and the
      masked direction is projected again (timm); unprojected tensors get the standard caution mask.
    * Zero rows (``eps=0`` only) divide by 1 instead of 0: timm gives NaN there, arrayoptim a finite step.

    References
    ----------
    Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    arXiv:2006.08217. Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    """

    anchor = "timm.optim.AdamP"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    delta: float = 0.1
    wd_ratio: float = 0.1
    nesterov: bool = False
    caution: bool = False

    checks = {**ADAM_CHECKS, "delta": NONNEG, "wd_ratio": NONNEG}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGDPHyperparams(Hyperparams):
    r"""timm.optim.SGDP.

    With :math:`\mu` = ``momentum``, :math:`\tau` = ``dampening``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``:

    .. math::

        \mathrm{buf} &\leftarrow \mu\,\mathrm{buf} + (1-\tau)\,g \quad (\mathrm{buf}_0 = 0) \\
        d &= g + \mu\,\mathrm{buf} \ \text{(nesterov)} \quad\text{or}\quad \mathrm{buf} \\
        d, \rho &\leftarrow \mathrm{projection}(p, g, d) \quad \text{(as AdamP)} \\
        p &\leftarrow p\,\big(1 - \gamma\lambda\rho/(1-\mu)\big) \ (\lambda \ne 0) \qquad p \leftarrow p - \gamma d

    State: ``momentum`` (timm's key name; initialised to zeros, so the first buffer is :math:`(1-\tau) g`,
    unlike torch SGD's ``momentum_buffer = g``).

    Warnings
    --------
    * timm's ``lr`` is required (no default); arrayoptim defaults it to 1e-3 (torch.optim.SGD's default).
    * Weight decay is divided by ``1 - momentum``; ``momentum=1`` with weight decay is refused (timm raises
      ``ZeroDivisionError`` mid-step).
    * The registry's ``sgdp``/``csgdp`` are Nesterov with ``momentum=0.9`` (timm's factory); timm does not check
      that Nesterov has a momentum (``g + 0 * buf`` then).

    References
    ----------
    Heo et al., "AdamP: Slowing Down the Slowdown for Momentum Optimizers on Scale-invariant Weights",
    arXiv:2006.08217. Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    """

    anchor = "timm.optim.SGDP"
    lr: float = 1e-3
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    eps: float = 1e-8
    delta: float = 0.1
    wd_ratio: float = 0.1
    caution: bool = False

    checks = {"lr": LR, "momentum": NONNEG, "weight_decay": NONNEG, "eps": EPS, "delta": NONNEG, "wd_ratio": NONNEG,
              "dampening": Range(ge=0.0, le=1.0)}

    def validate(self) -> None:
        if self.weight_decay != 0 and self.momentum == 1:
            raise ValueError("SGDP divides weight decay by 1 - momentum "
                             f"(momentum={self.momentum!r}, weight_decay={self.weight_decay!r})")


def adamp_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def adamp_kernel(xp, p, g, s, hp, ctx):
    """Per-array AdamP update; see :class:`AdamPHyperparams` for the math."""
    beta1, beta2 = hp.betas
    t = increment_step(s)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    denom = xp.sqrt(v)  # sqrt(v) / sqrt(1 - beta2**t) + eps, in place on the fresh root
    denom /= like(xp, xp.sqrt(1 - beta2 ** t), p)
    denom += hp.eps
    step_size = hp.lr / like(xp, 1 - beta1 ** t, p)
    if hp.nesterov:  # beta1 * m + (1 - beta1) * g (products and the sum commute exactly)
        d = m * beta1
        d += (1 - beta1) * g
        d /= denom
    else:
        d = m / denom
    del denom
    d, wd_factor = projection(xp, p, g, d, hp, hp.caution)
    if hp.weight_decay > 0:
        p *= 1.0 - hp.lr * hp.weight_decay * wd_factor
    if d is m:
        p -= step_size * d
    else:
        d *= step_size  # step_size * d, in place on the fresh direction
        p -= d
    return p


def sgdp_init(xp, p, hp):
    return {"momentum": zeros_like(xp, p)}


def sgdp_kernel(xp, p, g, s, hp, ctx):
    """Per-array SGDP update; see :class:`SGDPHyperparams` for the math."""
    buf = s["momentum"]
    buf *= hp.momentum
    buf += (1 - hp.dampening) * g
    s["momentum"] = buf
    if hp.nesterov:  # g + momentum * buf (the sum and the product commute exactly)
        d = buf * hp.momentum
        d += g
    else:
        d = buf
    d, wd_factor = projection(xp, p, g, d, hp, hp.caution)
    if hp.weight_decay != 0:
        p *= 1.0 - hp.lr * hp.weight_decay * wd_factor / (1 - hp.momentum)
    if d is buf:
        p -= hp.lr * d
    else:
        d *= hp.lr  # lr * d, in place on the fresh direction
        p -= d
    return p


register(
    OptimInfo("adamp", "Adam with built-in projection to unit norm sphere", AdamPHyperparams, kernel=adamp_kernel,
              init=adamp_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True,
              defaults={"wd_ratio": 0.01, "nesterov": True}),
    variants={"cadamp": ("Add the spherical cautious optimizer and the standard cautious optimizer to AdamP",
                         {"caution": True})},
)
register(
    OptimInfo("sgdp", "SGD with built-in projection to unit norm sphere", SGDPHyperparams, kernel=sgdp_kernel,
              init=sgdp_init, param_slots=("momentum",), has_momentum=True, defaults={"nesterov": True}),
    variants={"csgdp": ("Add the spherical cautious optimizer and the standard cautious optimizer to SGDP",
                        {"caution": True})},
)
