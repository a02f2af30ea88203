r"""timm's NAdamW, the MLCommons algorithmic-efficiency algorithm (``nadamw``, ``nadamc``, ``cnadamw``, ``cnadamc``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, MAX_LR_SNAPSHOT, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, register
from .._xp import (caution, decay_scale, increment_step, lerp, like, new_step, rms_clip_denom, update_moments,
                  zeros_like)


@dataclasses.dataclass(frozen=True, kw_only=True)
class NAdamWHyperparams(Hyperparams):
    r"""timm.optim.NAdamW: AdamW with a Nesterov look-ahead numerator (MLCommons algorithmic-efficiency).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`\gamma_{\max}` = ``max_lr_snapshot`` (the constructor ``lr``), ``t`` the ``step``
    slot after its increment, and ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - s\lambda), \quad s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \text{ (corrected\_weight\_decay)} \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        \tilde m &= m + (1-\beta_1)(g - m) \quad \text{(the Nesterov term: a second lerp towards } g) \\
        d &= \sqrt{v}/\sqrt{1-\beta_2^t} + \epsilon \\
        d &\leftarrow d \cdot \max\!\big(1, \mathrm{RMS}(g/d)/\tau\big) \quad
            \text{(clipping\_threshold } \tau \text{, StableAdamW)} \\
        \tilde m &\leftarrow \tilde m \odot \frac{\mathbb{1}[\tilde m g > 0]}{\max(\mathrm{mean}(\mathbb{1}[\tilde m g > 0]),
            10^{-3})} \quad \text{(caution)} \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{\tilde m}{d}

    State: ``step`` (0-d), ``exp_avg`` (m, never masked), ``exp_avg_sq`` (v).

    Warnings
    --------
    * This is **not** ``torch.optim.NAdam`` (Dozat's :math:`\mu_t` momentum schedule with ``momentum_decay``) nor
      ``optax.nadam`` (which uses :math:`1-\beta_1^{t+1}` for the momentum term): the only difference from AdamW is
      the numerator :math:`\tilde m`, still bias-corrected by :math:`1-\beta_1^t`.
    * The decoupled decay multiplies the param even when ``weight_decay`` is 0 (by exactly 1).
    * Caution masks the Nesterov numerator :math:`\tilde m`, not the stored ``exp_avg``.
    * ``clipping_threshold`` must be positive here; timm does not check it (0 divides by zero).

    References
    ----------
    Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop.
    Dahl et al., "Benchmarking Neural Network Training Algorithms" (MLCommons AlgoPerf), arXiv:2306.07179.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    Wortsman et al., "Stable and low-precision training for large-scale vision-language models" (StableAdamW),
    arXiv:2304.13013.
    """

    anchor = "timm.optim.NAdamW"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    caution: bool = False
    corrected_weight_decay: bool = False
    maximize: bool = False
    clipping_threshold: float | None = hyperfield(None, "?float")
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {**ADAM_CHECKS,
              "clipping_threshold": Range(gt=0.0, label="clipping threshold", note=" or None", inf_ok=True),
              "max_lr_snapshot": MAX_LR_SNAPSHOT}


def nadamw_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def nadamw_kernel(xp, p, g, s, hp, ctx):
    """Per-array NAdamW update; see :class:`NAdamWHyperparams` for the math."""
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    t = increment_step(s)
    scale = decay_scale(hp)
    p *= 1.0 - scale * hp.weight_decay
    m, v = update_moments(xp, s, g, hp.betas)
    step_size = like(xp, hp.lr / (1 - beta1 ** t), p)
    bc2_sqrt = like(xp, (1 - beta2 ** t) ** 0.5, p)
    num = lerp(xp, m, g, 1 - beta1)
    denom = xp.sqrt(v) / bc2_sqrt + hp.eps
    if hp.clipping_threshold is not None:
        denom = rms_clip_denom(xp, denom, g, hp.clipping_threshold)
    if hp.caution:
        num = caution(xp, num, g)
    p -= step_size * (num / denom)
    return p


register(
    OptimInfo("nadamw", "Adam with Nesterov momentum and decoupled weight decay, mlcommons/algorithmic-efficiency impl",
              NAdamWHyperparams, kernel=nadamw_kernel, init=nadamw_init, param_slots=("exp_avg", "exp_avg_sq"),
              has_betas=True),
    variants={
        "nadamc": ("NAdamW with corrected weight decay (lr²/max_lr scaling)", {"corrected_weight_decay": True}),
        "cnadamw": ("Cautious NAdamW", {"caution": True}),
        "cnadamc": ("Cautious NAdamW with corrected weight decay (lr²/max_lr scaling)",
                    {"caution": True, "corrected_weight_decay": True}),
    },
)
