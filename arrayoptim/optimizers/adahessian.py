r"""timm's Adahessian (``adahessian``): Adam with the Hutchinson Hessian-diagonal estimate as second moment.

The estimate is an explicit step input: ``opt.step(params, grads, state, hessian={name: estimate})``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _device

from .._hyper import ADAM_CHECKS, Hyperparams, Range, hyperfield
from .._registry import OptimInfo, StepInput, StepView, register
from .._xp import assign, increment_step, like, new_step, zeros_like

__all__ = ["AdahessianHyperparams", "hessian_due", "hutchinson_diag"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdahessianHyperparams(Hyperparams):
    r"""timm.optim.Adahessian, with the Hessian-diagonal estimate given by the caller.

    With :math:`\beta_1, \beta_2` = ``betas``, :math:`\epsilon` = ``eps``, :math:`\lambda` = ``weight_decay``,
    :math:`\gamma` = ``lr``, :math:`k` = ``hessian_power``, ``t`` the ``step`` slot after its increment and
    :math:`h` the ``hess`` slot:

    .. math::

        h &\leftarrow \widehat{\mathrm{diag}}(H) = \tfrac1S \textstyle\sum_{i=1}^S z_i \odot (H z_i),
            \quad z_i \sim \mathrm{Rademacher} \quad \text{(given, when the param's estimate is due)} \\
        h &\leftarrow \mathrm{mean}_{\text{spatial}}|h| \text{ broadcast back (4-D params, avg\_conv\_kernel)} \\
        p &\leftarrow p\,(1 - \gamma\lambda) \\
        m &\leftarrow \beta_1 m + (1-\beta_1) g \qquad v \leftarrow \beta_2 v + (1-\beta_2)\,h^2 \\
        p &\leftarrow p - \frac{\gamma}{1-\beta_1^t}\,\frac{m}{(v/(1-\beta_2^t))^{k/2} + \epsilon}

    An estimate is **due** for a param when its ``hessian step`` count is a multiple of ``update_each`` or it has
    no ``hess`` yet (see :func:`hessian_due`); otherwise the stored ``hess`` is reused and ``hessian=`` may omit it.
    ``hessian step`` counts the steps on which the param had a gradient.

    Computing the estimate: with a Hessian-vector product ``hvp(z) = H z`` (forward-over-reverse autodiff, or
    finite differences of gradients), draw Rademacher ``z`` (entries ±1 with probability 1/2) and average
    ``z * hvp(z)`` over ``n_samples`` draws; :func:`hutchinson_diag` does exactly that for a dict of params.

    State: ``hessian step`` (a Python int, created by ``init``, timm's key with its space), ``step`` (0-d),
    ``exp_avg``, ``exp_hessian_diag_sq`` (created at the param's first step, as timm does) and ``hess``.

    Warnings
    --------
    * timm keeps the estimate on the Parameter (``p.hess``), not in its state; here it is the ``hess`` slot.
      timm's ``zero_hessian`` also zeroes ``p.hess`` of params without a gradient at a due step; here a param
      without a gradient is untouched (its estimate is recomputed at its next step anyway, as in timm).
    * timm draws ``z`` from its own ``torch.Generator`` seeded 2147483647, over all params in order, and needs the
      autograd graph (``backward(create_graph=True)``); here the estimate (and its randomness) is the caller's.
      ``n_samples`` is recorded for fidelity and used as the default of :func:`hutchinson_diag`; ``update_each``,
      ``n_samples`` and ``avg_conv_kernel`` are optimizer-wide in timm and may differ per group here.
    * The decay is decoupled (AdamW style) although timm's docstring says "L2 penalty". The moment is
      ``beta1 * m + (1 - beta1) * g`` (not a lerp), the denominator power is applied to the bias-corrected
      :math:`v`, and ``eps`` is added after the power.
    * The data-dependent choice of which params need a fresh estimate is a host decision: not jittable.

    References
    ----------
    Yao et al., "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning", arXiv:2006.00719.
    Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian smoothing splines",
    1990.

    Examples
    --------
    A quadratic loss :math:`\tfrac12 p^\top H p`: its gradient is :math:`Hp` and its Hessian-vector product
    :math:`Hz`.

    >>> import numpy as np, arrayoptim as ao
    >>> from arrayoptim.optimizers.adahessian import hutchinson_diag
    >>> H = np.array([[2.0, 0.5], [0.5, 1.0]])
    >>> opt = ao.create_optimizer('adahessian', lr=0.1, n_samples=4)
    >>> params = {'w': np.array([1.0, -1.0])}
    >>> state = opt.init(params)
    >>> rng = np.random.default_rng(0)
    >>> est = hutchinson_diag(lambda z: {'w': H @ z['w']}, params, n_samples=4, rng=rng)
    >>> est['w']  # z * (H z) = diag(H) + off-diagonal terms with random signs
    array([2.25, 1.25])
    >>> params, state = opt.step(params, {'w': H @ params['w']}, state, hessian=est)
    >>> state['w']['hessian step'], float(state['w']['step'])
    (1, 1.0)
    """

    anchor = "timm.optim.adahessian.Adahessian"
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    hessian_power: float = 1.0
    update_each: int = hyperfield(1, "int")
    n_samples: int = hyperfield(1, "int")
    avg_conv_kernel: bool = False

    checks = {**ADAM_CHECKS, "hessian_power": Range(ge=0.0, le=1.0, label="Hessian power value"),
              "update_each": Range(ge=1, label="update_each"), "n_samples": Range(ge=1, label="n_samples")}


def adahessian_init(xp, p, hp):
    return {"hessian step": 0}


def _is_due(s: Mapping[str, Any], hp: AdahessianHyperparams) -> bool:
    return "hess" not in s or int(s.get("hessian step", 0)) % hp.update_each == 0


def hessian_due(opt: Any, state: Mapping[str, Mapping], names=None) -> list[str]:
    """Names (of ``names``, default all in ``state``) whose next step needs a fresh Hessian-diagonal estimate."""
    names = list(state) if names is None else list(names)
    return [n for n in names if _is_due(state.get(n, {}), opt.hyperparams_for(n))]


def hutchinson_diag(hvp: Callable[[dict], Mapping[str, Any]], params: Mapping[str, Any], n_samples: int = 1,
                    rng: Any = None) -> dict[str, Any]:
    r"""The Hutchinson estimate :math:`\tfrac1S\sum_i z_i \odot (H z_i)` of the Hessian diagonal.

    ``hvp(z)`` takes and returns dicts keyed like ``params`` (a Hessian-vector product over all params at once,
    so cross-param curvature enters as in timm). ``z`` entries are Rademacher (±1) draws from ``rng``
    (a ``numpy.random.Generator``; ``numpy.random.default_rng()`` if None), made on each param's namespace and
    device. Returns a dict for ``opt.step(..., hessian=...)``.
    """
    import numpy as np

    rng = np.random.default_rng() if rng is None else rng
    out: dict[str, Any] = {}
    for _ in range(n_samples):
        zs = {}
        for n, p in params.items():
            xp = array_namespace(p)
            draw = rng.integers(0, 2, size=tuple(p.shape)).astype(np.float64) * 2.0 - 1.0
            zs[n] = xp.asarray(draw, dtype=p.dtype, device=_device(p))
        hz = hvp(zs)
        for n in params:
            term = zs[n] * hz[n] / n_samples
            out[n] = term if n not in out else out[n] + term
    return out


def adahessian_kernel(xp, p, g, s, hp, ctx):
    """Per-array Adahessian update; ``ctx['hess']`` is the fresh estimate (or None to reuse the ``hess`` slot)."""
    s["hessian step"] = int(s.get("hessian step", 0)) + 1
    h = ctx.get("hess")
    if h is not None:
        old = s.get("hess")
        s["hess"] = h = assign(old, h) if old is not None else xp.asarray(h, copy=True)
    else:
        h = s["hess"]
    if hp.avg_conv_kernel and p.ndim == 4:
        h = assign(h, xp.broadcast_to(xp.mean(xp.abs(h), axis=(2, 3), keepdims=True), tuple(h.shape)))
        s["hess"] = h
    p *= 1.0 - hp.lr * hp.weight_decay
    for k in ("exp_avg", "exp_hessian_diag_sq"):
        if k not in s:
            s[k] = zeros_like(xp, p)
    if "step" not in s:
        s["step"] = new_step(xp, p)
    beta1, beta2 = hp.betas
    t = increment_step(s)
    m, v = s["exp_avg"], s["exp_hessian_diag_sq"]
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (h * h)
    s["exp_avg"], s["exp_hessian_diag_sq"] = m, v
    vhat = v / like(xp, 1 - beta2 ** t, p)
    k = hp.hessian_power
    denom = (xp.sqrt(vhat) if k == 1.0 else vhat ** (k / 2)) + hp.eps
    p -= like(xp, hp.lr / (1 - beta1 ** t), p) * (m / denom)
    return p


_SLOTS = ("exp_avg", "exp_hessian_diag_sq", "hess")


def prepare_hessian(view: StepView, hessian: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Validate the estimates of the params whose estimate is due; their kernels get ``ctx['hess']``."""
    if hessian is not None and not isinstance(hessian, Mapping):
        raise TypeError(f"hessian must be a mapping from param names to arrays, got {type(hessian).__name__}")
    hessian = hessian or {}
    stray = [n for n in hessian if n not in view.params]
    if stray:
        raise ValueError(f"hessian has entries for names that are not params: {stray}")
    out: dict[str, dict[str, Any]] = {}
    for n in view.active:
        hp, s, h = view.record(n), view.state.get(n, {}), hessian.get(n)
        if not _is_due(s, hp):
            continue  # the stored estimate is reused; a given one is ignored, as timm does not compute it
        if h is None:
            raise ValueError(
                f"hessian[{n!r}] is missing: Adahessian needs a Hessian-diagonal estimate for this param at this "
                f"step ('hessian step'={s.get('hessian step', 0)}, update_each={hp.update_each}); pass "
                "hessian={name: z * hvp(z)} (see hutchinson_diag)")
        p = view.params[n]
        if not is_array_api_obj(h) or tuple(h.shape) != tuple(p.shape):
            raise ValueError(f"hessian[{n!r}] must be an array of its param's shape {tuple(p.shape)}, got "
                             f"{type(h).__name__} {tuple(getattr(h, 'shape', ()))}")
        try:
            array_namespace(p, h)
        except TypeError:
            raise ValueError(f"hessian[{n!r}] is a {type(h).__name__}, its param a {type(p).__name__}: one "
                             "array library per step") from None
        if not view.xp.isdtype(h.dtype, "real floating"):
            raise ValueError(f"hessian[{n!r}] must have a real floating dtype, got {h.dtype}")
        if _device(h) != _device(p):
            raise ValueError(f"hessian[{n!r}] is on device {_device(h)}, its param on {_device(p)}")
        out[n] = {"hess": h if h.dtype == p.dtype else view.xp.astype(h, p.dtype)}
    return out


register(OptimInfo("adahessian", "An Adaptive Second Order Optimizer", AdahessianHyperparams,
                   kernel=adahessian_kernel, init=adahessian_init, param_slots=_SLOTS,
                   has_betas=True, second_order=True,
                   step_inputs=(StepInput("hessian", "name -> Hessian-diagonal estimate of the param's shape, for "
                                          "the params whose estimate is due (see hutchinson_diag)", prepare_hessian,
                                          host=True),)))
