r"""timm's TensorFlow-style RMSprop (``rmsproptf``, ``rmsproptfw``, ``rmsproptfc``, ``crmsproptf``)."""
from __future__ import annotations

import dataclasses

from .._hyper import EPS, LR, MAX_LR_SNAPSHOT, NONNEG, Hyperparams, hyperfield
from .._registry import OptimInfo, register
from .._xp import caution, decay_scale, increment_step, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class RMSpropTFHyperparams(Hyperparams):
    r"""timm.optim.RMSpropTF: RMSprop with TensorFlow's epsilon placement, initial accumulator and momentum.

    With :math:`\alpha` = ``alpha``, :math:`\epsilon` = ``eps``, :math:`\mu` = ``momentum``, :math:`\lambda` =
    ``weight_decay``, :math:`\gamma` = ``lr``, :math:`\gamma_{\max}` = ``max_lr_snapshot`` (the constructor ``lr``),
    ``v`` = ``square_avg``, ``a`` = ``grad_avg``, ``buf`` = ``momentum_buffer``:

    .. math::

        p &\leftarrow p\,(1 - s\lambda),\ s = \gamma \text{ or } \gamma^2/\gamma_{\max}
            \ \text{(decoupled\_decay[, corrected\_weight\_decay])} \quad\text{or}\quad g \leftarrow g + \lambda p \\
        v &\leftarrow v + (1-\alpha)(g^2 - v) \\
        a &\leftarrow a + (1-\alpha)(g - a) \quad\text{(centered)} \\
        r &= \sqrt{v + \epsilon} \quad\text{or}\quad r = \sqrt{v - a^2 + \epsilon} \ \text{(centered)} \\
        \mathrm{buf} &\leftarrow \mu\,\mathrm{buf} + \gamma\,g/r, \quad p \leftarrow p - C(\mathrm{buf})
            \quad \text{(momentum} > 0\text{, lr\_in\_momentum)} \\
        \mathrm{buf} &\leftarrow \mu\,\mathrm{buf} + g/r, \quad p \leftarrow p - \gamma\,C(\mathrm{buf})
            \quad \text{(momentum} > 0\text{, not lr\_in\_momentum)} \\
        p &\leftarrow p - \gamma\,g/r \quad \text{(momentum} = 0)

    where :math:`C(u) = u \odot \mathbb{1}[u g > 0] / \max(\mathrm{mean}(\mathbb{1}[u g > 0]), 10^{-3})` when
    ``caution`` (applied to the update only; the stored buffer is not masked) and :math:`C(u) = u` otherwise.

    State: ``step`` (0-d), ``square_avg`` (v, **initialised to ones**), ``momentum_buffer`` (momentum > 0),
    ``grad_avg`` (centered).

    Warnings
    --------
    * ``eps`` is **inside** the square root (TensorFlow); torch.optim.RMSprop adds it outside. ``square_avg`` starts
      at 1, not 0 (torch), which damps the first steps.
    * With ``lr_in_momentum=True`` (the default, as TF) the lr is folded into the momentum buffer, so a change of
      ``lr`` (a schedule) only affects new contributions; torch's RMSprop multiplies the whole buffer by the
      current lr. optax ``rmsprop(eps_in_sqrt=True, initial_scale=1.0)`` matches at constant lr only.
    * Caution only applies when ``momentum > 0``. The registry's ``rmsproptf*`` names use ``alpha=0.9`` and, as
      timm's factory does for momentum optimizers, ``momentum=0.9`` (the class default is 0).
    * Corrected decay only applies with ``decoupled_decay=True``.

    References
    ----------
    Hinton, "Neural Networks for Machine Learning", lecture 6e (RMSprop).
    Graves, "Generating Sequences With Recurrent Neural Networks" (centered), arXiv:1308.0850.
    Liang et al., "Cautious Optimizers", arXiv:2411.16085.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    """

    anchor = "timm.optim.RMSpropTF"
    lr: float = 1e-2
    alpha: float = 0.9
    eps: float = 1e-10
    weight_decay: float = 0.0
    momentum: float = 0.0
    centered: bool = False
    decoupled_decay: bool = False
    corrected_weight_decay: bool = False
    lr_in_momentum: bool = True
    caution: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")

    checks = {"lr": LR, "eps": EPS, "momentum": NONNEG, "weight_decay": NONNEG, "alpha": NONNEG,
              "max_lr_snapshot": MAX_LR_SNAPSHOT}


def rmsprop_tf_init(xp, p, hp):
    s = {"step": new_step(xp, p), "square_avg": xp.ones_like(p)}
    if hp.momentum > 0:
        s["momentum_buffer"] = zeros_like(xp, p)
    if hp.centered:
        s["grad_avg"] = zeros_like(xp, p)
    return s


def _slot(xp, s, key, p):
    """A slot that a state made under other flags may lack (timm would fail with a KeyError): start it at zero."""
    v = s.get(key)
    return zeros_like(xp, p) if v is None else v


def rmsprop_tf_kernel(xp, p, g, s, hp, ctx):
    """Per-array RMSpropTF update; see :class:`RMSpropTFHyperparams` for the math."""
    increment_step(s)
    if hp.weight_decay != 0:
        if hp.decoupled_decay:
            scale = decay_scale(hp)
            p *= 1.0 - scale * hp.weight_decay
        else:
            g = g + hp.weight_decay * p
    one_minus_alpha = 1.0 - hp.alpha
    v = s["square_avg"]
    v += one_minus_alpha * (g * g - v)
    s["square_avg"] = v
    if hp.centered:
        a = _slot(xp, s, "grad_avg", p)
        a += one_minus_alpha * (g - a)
        s["grad_avg"] = a
        avg = xp.sqrt(v - a * a + hp.eps)
    else:
        avg = xp.sqrt(v + hp.eps)
    if hp.momentum > 0:
        buf = _slot(xp, s, "momentum_buffer", p)
        buf *= hp.momentum
        if hp.lr_in_momentum:
            buf += hp.lr * (g / avg)
        else:
            buf += g / avg
        s["momentum_buffer"] = buf
        d = caution(xp, buf, g) if hp.caution else buf
        if hp.lr_in_momentum:
            p -= d
        else:
            p -= hp.lr * d
    else:
        p -= hp.lr * (g / avg)
    return p


_A9 = {"alpha": 0.9}
register(
    OptimInfo("rmsproptf", "TensorFlow-style RMSprop implementation, Root Mean Square Propagation",
              RMSpropTFHyperparams, kernel=rmsprop_tf_kernel, init=rmsprop_tf_init,
              param_slots=("square_avg", "momentum_buffer", "grad_avg"), defaults=_A9, has_momentum=True),
    variants={
        "rmsproptfw": ("TensorFlow-style RMSprop with decoupled weight decay", {"decoupled_decay": True}),
        "rmsproptfc": ("RMSprop TF-style with corrected decoupled weight decay (lr²/max_lr scaling)",
                       {"decoupled_decay": True, "corrected_weight_decay": True}),
        "crmsproptf": ("Cautious TensorFlow-style RMSprop", {"caution": True}),
    },
)
