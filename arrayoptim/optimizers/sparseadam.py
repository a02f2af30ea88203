r"""SparseAdam exactly as torch.optim implements it (``sparseadam``), with sparse gradients given as a dense
gradient plus a boolean mask of the entries present."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _device

from .._hyper import BETAS, Hyperparams, Range
from .._registry import OptimInfo, StepInput, StepView, register
from .._xp import increment_step, like, new_step, zeros_like


@dataclasses.dataclass(frozen=True, kw_only=True)
class SparseAdamHyperparams(Hyperparams):
    r"""torch.optim.SparseAdam: Adam restricted to the entries present in a sparse gradient.

    With :math:`M` the set of entries present in the gradient (``grad_mask``), :math:`\beta_1, \beta_2` =
    ``betas``, :math:`\epsilon` = ``eps``, :math:`\gamma` = ``lr``, ``t`` the ``step`` slot after its increment and
    ``g`` negated first if ``maximize``; on :math:`M` only (everything else is left exactly as it was):

    .. math::

        m &\leftarrow m + (1-\beta_1)(g - m) \qquad v \leftarrow v + (1-\beta_2)(g^2 - v) \\
        p &\leftarrow p - \frac{\gamma\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,\frac{m}{\sqrt{v} + \epsilon}

    State: ``step`` (0-d; counts every step with a grad, even one with no entry present), ``exp_avg`` (m),
    ``exp_avg_sq`` (v).

    **Sparse gradients.** ``step(params, grads, state, grad_mask=...)`` takes the gradient dense, plus an optional
    keyword ``grad_mask``: a mapping from param name to a boolean array of the param's shape, True where the sparse
    gradient has an entry. torch's COO gradient ``torch.sparse_coo_tensor(indices, values, shape)`` corresponds to
    ``grad = dense(coalesce(g))`` and ``grad_mask[indices] = True``. A name without a mask uses
    ``grad != 0`` -- torch's documented "intended" semantics (the non-zero values of the gradient).

    Warnings
    --------
    * This is the :math:`\hat\epsilon` form: ``eps`` is added to :math:`\sqrt{v}` *before* bias correction and the
      correction :math:`\sqrt{1-\beta_2^t}` is folded into the step size, unlike torch's Adam (where ``eps`` is added
      to the corrected root). ``lr`` and ``eps`` must be strictly positive.
    * torch infers presence from the sparse layout, not from values: an explicitly stored 0 is present (and
      updates the moments); with the default ``grad_mask`` an exact 0 is treated as absent. Duplicate COO indices
      are summed first (torch coalesces); pass the summed dense gradient.
    * torch refuses dense gradients (``RuntimeError``); here every gradient is dense and the mask carries the
      sparsity.
    * Unlike Adam the second moment is updated as a lerp (:math:`v + (1-\beta_2)(g^2 - v)`), as torch does.

    References
    ----------
    Kingma & Ba, "Adam: A Method for Stochastic Optimization", arXiv:1412.6980 (section 2, the
    :math:`\hat\epsilon` form).

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> opt = ao.create_optimizer('sparseadam', lr=0.1)
    >>> p = {'emb': np.zeros(4)}
    >>> s = opt.init(p)
    >>> p, s = opt.step(p, {'emb': np.array([0.0, 1.0, 0.0, -1.0])}, s,
    ...                 grad_mask={'emb': np.array([True, True, False, False])})
    >>> p['emb'].round(6)
    array([ 0. , -0.1,  0. ,  0. ])
    """

    anchor = "torch.optim.SparseAdam"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    maximize: bool = False

    checks = {"lr": Range(gt=0.0, label="learning rate"), "eps": Range(gt=0.0, label="epsilon value"), "betas": BETAS}


def sparseadam_init(xp, p, hp):
    return {"step": new_step(xp, p), "exp_avg": zeros_like(xp, p), "exp_avg_sq": zeros_like(xp, p)}


def sparseadam_kernel(xp, p, g, s, hp, ctx):
    """Per-array SparseAdam update on the entries where ``ctx['mask']`` is True (default ``g != 0``)."""
    beta1, beta2 = hp.betas
    if hp.maximize:
        g = -g
    mask = ctx.get("mask")
    if mask is None:
        mask = g != 0
    t = increment_step(s)
    m, v = s["exp_avg"], s["exp_avg_sq"]
    zero = xp.zeros((), dtype=p.dtype, device=_device(p))
    m += xp.where(mask, (g - m) * (1 - beta1), zero)
    v += xp.where(mask, (g * g - v) * (1 - beta2), zero)
    s["exp_avg"], s["exp_avg_sq"] = m, v
    step_size = like(xp, hp.lr * xp.sqrt(1 - beta2 ** t) / (1 - beta1 ** t), p)
    p += xp.where(mask, -step_size * (m / (xp.sqrt(v) + hp.eps)), zero)
    return p


def prepare_grad_mask(view: StepView, grad_mask: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Validate ``grad_mask`` (name -> boolean array of the param's shape); each param's kernel gets ``ctx['mask']``."""
    params, active = view.params, view.active
    if grad_mask is None:
        return {}
    if not isinstance(grad_mask, Mapping):
        raise TypeError(f"grad_mask must be a mapping from param names to boolean arrays, got "
                        f"{type(grad_mask).__name__}")
    stray = [n for n in grad_mask if n not in params]
    if stray:
        raise ValueError(f"grad_mask has entries for names that are not params: {stray}")
    out = {}
    for n in active:
        m = grad_mask.get(n)
        if m is None:
            continue
        p = params[n]
        if not is_array_api_obj(m):
            raise TypeError(f"grad_mask[{n!r}] must be a boolean array or None, got {type(m).__name__}")
        try:
            mxp = array_namespace(p, m)
        except TypeError:
            raise ValueError(f"grad_mask[{n!r}] is a {type(m).__name__} but its param a {type(p).__name__}: "
                             "one array library per step") from None
        if tuple(m.shape) != tuple(p.shape):
            raise ValueError(f"grad_mask[{n!r}] has shape {tuple(m.shape)}, its param has shape {tuple(p.shape)}")
        if not mxp.isdtype(m.dtype, "bool"):
            raise ValueError(f"grad_mask[{n!r}] must have a bool dtype, got {m.dtype}")
        out[n] = {"mask": m}
    return out


register(OptimInfo("sparseadam", "torch.optim.SparseAdam, Adam on the entries present in sparse gradients",
                   SparseAdamHyperparams, kernel=sparseadam_kernel, init=sparseadam_init,
                   param_slots=("exp_avg", "exp_avg_sq"), locality="element", has_betas=True,
                   step_inputs=(StepInput("grad_mask", "name -> boolean array of the param's shape, True where the "
                                          "sparse gradient has an entry (default: grad != 0)", prepare_grad_mask),)))
