r"""Adam and AdamW exactly as torch.optim implements them (``adam``, ``adamw``)."""
from __future__ import annotations

import dataclasses

from .._hyper import ADAM_CHECKS, Hyperparams
from .._registry import OptimInfo, register
from .._xp import amsgrad_max, increment_step, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamHyperparams(Hyperparams):
    r"""torch.optim.Adam (and AdamW, which is Adam with ``decoupled_weight_decay=True``).

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment, and ``g`` negated first if ``maximize``:

    .. math::

        p &\leftarrow p\,(1 - \gamma\lambda) \ \text{(decoupled)} \quad\text{or}\quad g \leftarrow g + \lambda p \\
        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2 \\
        \hat v &\leftarrow \max(\hat v, v) \ \text{(amsgrad, slot max\_exp\_avg\_sq)} \quad\text{else}\quad \hat v = v \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,
             \frac{m}{\sqrt{\hat v}/\sqrt{1-\beta_2^t} + \epsilon}

    State: ``step`` (0-d), ``exp_avg`` (m), ``exp_avg_sq`` (v), ``max_exp_avg_sq`` (amsgrad only).

    Warnings
    --------
    * ``eps`` is added **outside** the bias-corrected square root (torch, optax ``eps``); TensorFlow/Keras and the
      paper's :math:`\hat\epsilon` add it to the uncorrected root, i.e. use :math:`\epsilon\sqrt{1-\beta_2^t}`.
    * AMSGrad takes the max of the *uncorrected* ``v`` and bias-corrects afterwards (torch, TF); optax takes the
      max of the corrected :math:`\hat v`.
    * ``weight_decay`` in Adam is L2 added to the gradient (it then feeds both moments); AdamW (and
      ``decoupled_weight_decay=True``) shrinks the param by :math:`1-\gamma\lambda` instead.

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.
    Reddi et al., "On the Convergence of Adam and Beyond" (AMSGrad), ICLR 2018.

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('adam', lr=0.1)
    >>> p = {'x': np.array([1.0, -2.0])}
    >>> s = opt.init(p)
    >>> p, s = opt.step(p, {'x': np.array([0.5, -0.5])}, s)
    >>> p['x'], s['x']['step']
    (array([ 0.9, -1.9]), array(1.))
    """

    anchor = "torch.optim.Adam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    maximize: bool = False
    decoupled_weight_decay: bool = False

    checks = ADAM_CHECKS


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdamWHyperparams(AdamHyperparams):
    __doc__ = AdamHyperparams.__doc__.replace("torch.optim.Adam (and AdamW,", "torch.optim.AdamW (Adam,", 1)
    anchor = "torch.optim.AdamW"
    weight_decay: float = 1e-2
    decoupled_weight_decay: bool = True

    def validate(self) -> None:
        if not self.decoupled_weight_decay:
            raise ValueError("AdamW always uses decoupled weight decay (decoupled_weight_decay=False given); "
                             "use 'adam' for L2 weight decay")


def adam_init(xp, p, hp):
    s = {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}
    if hp.amsgrad:
        s["max_exp_avg_sq"] = zeros_like(xp, p)
    return s


def adam_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adam/AdamW update; see :class:`AdamHyperparams` for the math.

    In place (``copy=False``) it makes the fewest passes the array API allows: augmented operators on the claimed
    ``p``, ``m``, ``v`` and one param-sized scratch ``d`` (at most two are alive at once, while ``d`` is rebound).
    The step is computed as :math:`p \\mathrel{-}= \\frac{m}{\\sqrt{v} + \\epsilon c_2}\\,\\frac{\\gamma c_2}{c_1}`
    with :math:`c_1 = 1-\\beta_1^t`, :math:`c_2 = \\sqrt{1-\\beta_2^t}`: torch's update with the bias corrections
    folded into two scalars (same value up to rounding).
    """
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    t = increment_step(s)
    if hp.weight_decay != 0:
        if hp.decoupled_weight_decay:
            p *= 1 - hp.lr * hp.weight_decay
        else:
            g = g + hp.weight_decay * p
    m, v = s["exp_avg"], s["exp_avg_sq"]
    d = g - m  # m += (1 - beta1) * (g - m): torch's lerp(m, g, 1 - beta1)
    d *= 1 - beta1
    m += d
    d = g * g  # v = beta2 * v + (1 - beta2) * g^2
    d *= 1 - beta2
    v *= beta2
    v += d
    s["exp_avg"], s["exp_avg_sq"] = m, v
    step_size = like(xp, hp.lr / (1 - beta1 ** t), p)
    bc2_sqrt = like(xp, xp.sqrt(1 - beta2 ** t), p)
    if hp.amsgrad:
        v = amsgrad_max(xp, s, "max_exp_avg_sq", v)
    d = xp.sqrt(v)
    d += hp.eps * bc2_sqrt
    d = m / d
    d *= step_size * bc2_sqrt
    p -= d
    return p


_ADAM_SLOTS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
register(OptimInfo("adam", "torch.optim.Adam, Adaptive Moment Estimation", AdamHyperparams,
                   kernel=adam_kernel, init=adam_init, param_slots=_ADAM_SLOTS, has_betas=True,
                   locality="element"))
register(OptimInfo("adamw", "torch.optim.AdamW, Adam with decoupled weight decay", AdamWHyperparams,
                   kernel=adam_kernel, init=adam_init, param_slots=_ADAM_SLOTS, has_betas=True,
                   locality="element"))
