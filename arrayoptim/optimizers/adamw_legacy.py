r"""timm's own AdamW (``AdamWLegacy``): ``adamwlegacy``, ``adamc``, ``cadamw``, ``cadamc``."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, MAX_LR_SNAPSHOT, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, register
from .._xp import amsgrad_max, caution, decay_scale, increment_step, like, rms_clip_denom, update_moments
from .adam import adam_init


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamWLegacyHyperparams(Hyperparams):
    r"""timm.optim.AdamWLegacy: AdamW with caution, corrected decay and StableAdamW update clipping.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\gamma_{\max}` = ``max_lr_snapshot`` (the constructor ``lr``), ``t`` the
    ``step`` slot after its increment, ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (corrected\_weight\_decay)} \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \text{ (amsgrad, slot max\_exp\_avg\_sq)} \quad\text{else}\quad \hat v = v \\
        d &\leftarrow \sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon \\
        d &\leftarrow d \cdot \max\!\Big(1, \frac{\mathrm{RMS}(g/d)}{c}\Big)
            \text{ (clipping\_threshold } c \text{, RMS over the tensor)} \\
        u &\leftarrow m \odot \frac{\mathbb{1}[m g > 0]}{\max(\mathrm{mean}(\mathbb{1}[m g > 0]), 10^{-3})}
            \text{ (caution)} \quad\text{else}\quad u = m \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{u}{d}

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad only).

    Warnings
    --------
    * Without caution, clipping and corrected decay this is torch.optim.AdamW (``adamw`` in the registry is
      torch's class; ``adamwlegacy`` is timm's copy). Note the class default ``weight_decay=1e-2``.
    * The clip (StableAdamW) scales the *denominator*, so it does not touch the decoupled decay; the RMS is of
      ``g / d`` (the normalised gradient), not of the update ``m / d``.
    * The caution mask is computed per tensor from the stored ``exp_avg`` and the (maximize-negated) gradient;
      the stored ``exp_avg`` is not masked.
    * The decay multiplies the param even when ``weight_decay`` is 0 (by exactly 1).
    * timm does not check ``weight_decay``; a negative value is rejected here.

    References
    ----------
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Wortsman et al., "Stable and low-precision training for large-scale vision-language models" (StableAdamW),
    arXiv:2304.13013.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('cadamw', lr=0.1, weight_decay=0.0)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, opt.init(p))
    >>> p['x']
    array([ 0.9, -1.9])
    """

    anchor = "timm.optim.AdamWLegacy"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    amsgrad: bool = False
    caution: bool = False
    corrected_weight_decay: bool = False
    maximize: bool = False
    clipping_threshold: float | None = hyperfield(None, "?float")
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**ADAM_CHECKS, "max_lr_snapshot": MAX_LR_SNAPSHOT,
              "clipping_threshold": Range(gt=0.0, note=" or None", inf_ok=True)}


def adamw_legacy_kernel(xp, p, g, s, hp, ctx):
    """Per-array AdamWLegacy update; see :class:`AdamWLegacyHyperparams` for the math."""
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    t = increment_step(s)
    scale = decay_scale(hp)
    p *= 1.0 - scale * hp.weight_decay
    m, v = update_moments(xp, s, g, hp.betas)
    if hp.amsgrad:
        v = amsgrad_max(xp, s, "max_exp_avg_sq", v)
    denom = xp.sqrt(v) / like(xp, xp.sqrt(1 - beta2 ** t), p)
    denom += hp.eps
    if hp.clipping_threshold is not None:
        denom = rms_clip_denom(xp, denom, g, hp.clipping_threshold)
    u = caution(xp, m, g) if hp.caution else m
    p -= like(xp, hp.lr / (1 - beta1 ** t), p) * (u / denom)
    return p


_CORRECTED = " with corrected weight decay (lr²/max_lr scaling)"
register(
    OptimInfo("adamwlegacy", "legacy impl of AdamW that pre-dates inclusion to torch.optim", AdamWLegacyHyperparams,
              kernel=adamw_legacy_kernel, init=adam_init,
              param_slots=("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), has_betas=True),
    variants={
        "adamc": ("AdamW" + _CORRECTED, {"corrected_weight_decay": True}),
        "cadamw": ("Cautious AdamW", {"caution": True}),
        "cadamc": ("Cautious AdamW" + _CORRECTED, {"caution": True, "corrected_weight_decay": True}),
    },
)
