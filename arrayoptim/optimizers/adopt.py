r"""ADOPT exactly as timm implements it (``adopt``, ``adoptw``, ``adoptc``, ``cadopt``, ``cadoptw``, ``cadoptc``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, MAX_LR_SNAPSHOT, Hyperparams, hyperfield
from .._registry import OptimInfo, register
from .._xp import assign, caution, decay_scale, increment_step, like, new_step, scalar_like, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdoptHyperparams(Hyperparams):
    r"""timm.optim.Adopt: Adam with the current gradient normalised by the *previous* second moment.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\gamma_{\max}` = ``max_lr_snapshot``, ``c`` = ``clip_exp``, ``t`` the ``step``
    slot after its increment, ``g`` negated first if ``maximize``, then :math:`g \leftarrow g + \lambda p` unless
    ``decoupled``. At :math:`t = 1`: :math:`v \leftarrow v + g^2` and nothing else (no param update, no decay).
    For :math:`t > 1`:

    .. math::

        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (decoupled; corrected\_weight\_decay)} \\
        \hat g &\leftarrow \mathrm{clip}\big(g / \max(\sqrt{v}, \epsilon),\ \pm (t-1)^{c}\big)
            \quad\text{(no clip when clip\_exp is None)} \\
        m &\leftarrow m + (1-\beta_1)(\hat g - m) \\
        u &\leftarrow \mathrm{caution}(m, g) \text{ (caution)} \quad\text{else}\quad u = m \\
        p &\leftarrow p - \gamma u \\
        v &\leftarrow \beta_2 v + (1-\beta_2)\,g^2 \quad\text{(after the update: } v \text{ lags one step)}

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v).

    Warnings
    --------
    * The first step only initialises ``v`` (the param does not move; a decoupled decay is skipped too).
    * ``eps`` clamps the root, :math:`\max(\sqrt v, \epsilon)`, instead of being added to it.
    * The clip bound uses :math:`(t-1)^{c}` with timm's default ``clip_exp=0.333``; ``optax.contrib.adopt``
      defaults to :math:`t^{0.25}` on its own count (equal to timm's only with ``clip_value_fn=lambda c: c**0.333``).
    * L2 decay (``decoupled=False``, the ``adopt`` default) enters ``g`` and hence ``v`` and the caution mask.
    * timm decides "first step" from the param's state being empty, i.e. the param's own first grad: here
      :math:`t = 1` of the per-param ``step`` slot, the same thing.

    References
    ----------
    Taniguchi et al., "ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate", arXiv:2411.02853.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adopt', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, opt.init(p))
    >>> p['x'], s['x']['exp_avg_sq']   # step 1: v = g**2, no update
    (array([ 1., -2.]), array([0.25, 0.25]))
    """

    anchor = "timm.optim.Adopt"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.9999)
    eps: float = 1e-6
    clip_exp: float | None = hyperfield(0.333, "?float")
    weight_decay: float = 0.0
    decoupled: bool = False
    corrected_weight_decay: bool = False
    caution: bool = False
    maximize: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**ADAM_CHECKS, "max_lr_snapshot": MAX_LR_SNAPSHOT}


def adopt_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def adopt_kernel(xp, p, g, s, hp, ctx):
    """Per-array ADOPT update; see :class:`AdoptHyperparams` for the math."""
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    t = increment_step(s)
    first = t == 1
    if hp.weight_decay != 0 and not hp.decoupled:
        gd = p * hp.weight_decay  # g + weight_decay * p (sum and product commute exactly)
        gd += g
        g = gd
    m, v = s["exp_avg"], s["exp_avg_sq"]
    denom = xp.sqrt(v)
    denom = xp.maximum(denom, scalar_like(xp, hp.eps, v))
    normed = g / denom
    del denom
    if hp.clip_exp is not None:
        bound = like(xp, (t - 1) ** hp.clip_exp, p)
        normed = xp.clip(normed, -bound, bound)
    # step 1 only accumulates v (v + g2: v * 1 + 1 * g2 is exact); afterwards v is updated after the param
    one = scalar_like(xp, 1.0, v)
    g2 = g * g
    g2 *= xp.where(first, one, scalar_like(xp, 1 - beta2, v))
    v *= xp.where(first, one, scalar_like(xp, beta2, v))
    v += g2
    del g2
    s["exp_avg_sq"] = v
    normed -= m  # m_new = m + (1 - beta1) * (normed - m), in the normed buffer
    normed *= 1 - beta1
    normed += m
    m_new = normed
    u = caution(xp, m_new, g) if hp.caution else m_new
    s["exp_avg"] = assign(m, xp.where(first, m, m_new))
    del m_new, normed
    u *= hp.lr  # hp.lr * u (m_new is stored: its buffer is free)
    if hp.weight_decay != 0 and hp.decoupled:
        p_new = p * (1.0 - decay_scale(hp) * hp.weight_decay)
        p_new -= u
    else:
        p_new = p - u
    del u
    return assign(p, xp.where(first, p, p_new))


_CORRECTED = " with corrected decoupled weight decay (lr²/max_lr scaling)"
register(
    OptimInfo("adopt", "Modified Adam that can converge with any β2 with the optimal rate", AdoptHyperparams,
              kernel=adopt_kernel, init=adopt_init, param_slots=("exp_avg", "exp_avg_sq"), has_betas=True),
    variants={
        "adoptw": ("Modified AdamW (decoupled decay) that can converge with any β2 with the optimal rate",
                   {"decoupled": True}),
        "adoptc": ("Adopt" + _CORRECTED, {"decoupled": True, "corrected_weight_decay": True}),
        "cadopt": ("Cautious Adopt", {"caution": True}),
        "cadoptw": ("Cautious AdoptW (decoupled decay)", {"decoupled": True, "caution": True}),
        "cadoptc": ("Cautious Adopt" + _CORRECTED,
                    {"decoupled": True, "caution": True, "corrected_weight_decay": True}),
    },
)
