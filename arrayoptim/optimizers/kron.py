r"""timm's Kron (PSGD with a Kronecker-factored preconditioner): ``kron``, ``kronw``, ``kronc``.

All randomness is an explicit step input: ``opt.step(..., seed=int)`` or ``opt.step(..., draws=...)``, where
``draws`` can replay timm's own random streams (see :func:`kron_draws`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from array_api_compat import array_namespace, is_array_api_obj
from array_api_compat import device as _device

from .._hyper import LR, MAX_LR_SNAPSHOT, NONNEG, Hyperparams, Range, hyperfield
from .._xp import decay_scale
from .._registry import OptimInfo, StepInput, StepView, register

__all__ = ["KronHyperparams", "kron_draws", "precond_update_prob_schedule"]

_TINY = 1.1754943508222875e-38  # torch.finfo(torch.bfloat16).tiny, timm's guard
_MEMORY_SAVE_MODES = (None, "one_diag", "smart_one_diag", "all_diag")
_DTYPES = (None, "float32", "float64")


def precond_update_prob_schedule(n: float, max_prob: float = 1.0, min_prob: float = 0.03, decay: float = 0.001,
                                 flat_start: float = 500) -> float:
    """timm's default update-probability schedule, ``clamp(max_prob * exp(-decay (n - flat_start)), min, max)``,
    evaluated in float32 as timm does (a float32 torch tensor)."""
    import numpy as np

    n32 = np.float32(n)
    with np.errstate(over="ignore"):
        prob = np.float32(max_prob) * np.exp(np.float32(-decay) * (n32 - np.float32(flat_start)))
    return float(np.clip(prob, np.float32(min_prob), np.float32(max_prob)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class KronHyperparams(Hyperparams):
    r"""timm.optim.Kron: PSGD with a Kronecker-factored preconditioner :math:`Q = \otimes_i Q_i`.

    Per param (flattened over ``flatten_start_dim..flatten_end_dim`` first when ``flatten``), with :math:`\mu` =
    ``momentum``, :math:`\gamma` = ``lr``, :math:`\eta` = ``precond_lr``, ``t`` the ``step`` slot after its
    increment, and :math:`\times_i` the product along dimension ``i``:

    .. math::

        c &\leftarrow c + 1;\quad \text{update} = c \ge 1/\pi(t-1);\quad c \leftarrow 0 \text{ if update} \\
        m &\leftarrow \mu m + (1-\mu) g \qquad \hat m = m / (1-\mu^t) \\
        &\text{if update and } u_{\text{balance}} < 0.01 \text{ and ndim} > 1:\quad
            Q_i \leftarrow Q_i \cdot \big(\textstyle\prod_j \|Q_j\|_\infty\big)^{1/n} / \|Q_i\|_\infty \\
        &\text{if update:}\quad A = G \times_i Q_i,\quad B^* = V \times_i Q_i^{-\top}\ (G = \hat m
            \text{ or } g),\ V \sim \mathcal N(0, I) \\
        &\qquad T_1^{(i)} = A_{(i)} A_{(i)}^\top,\quad T_2^{(i)} = B^*_{(i)} B^{*\top}_{(i)}
            \quad (\text{diagonals only for diagonal } Q_i) \\
        &\qquad Q_i \leftarrow Q_i - \eta\,\frac{\mathrm{triu}(T_1 - T_2)}{\|T_1 + T_2\|_{\text{lb}} + \tau} Q_i
            \quad\text{or}\quad Q_i - \eta\,\frac{(T_1 - T_2) Q_i}{\|T_1 + T_2\|_\infty + \tau} \text{ (diagonal)} \\
        P &= \hat m \times_i Q_i^\top Q_i,\qquad P \leftarrow P \cdot \min\!\big(1, 1.1/(\mathrm{RMS}(P) +
            10^{-8})\big) \\
        p &\leftarrow p\,(1 - s\lambda')\ \text{(decoupled; } s = \gamma \text{ or } \gamma^2/\gamma_{\max})
            \quad\text{or}\quad P \leftarrow P + \lambda' p \\
        p &\leftarrow p - \gamma P

    where :math:`\pi` is ``preconditioner_update_probability`` (None: :func:`precond_update_prob_schedule`; a
    float; or a callable of the step), :math:`\|\cdot\|_{\text{lb}}` timm's cheap lower bound of the spectral
    norm, :math:`\tau` the bfloat16 ``tiny`` and :math:`\lambda' = \lambda` (or :math:`2u_{\text{wd}}\lambda` with
    ``stochastic_weight_decay``). :math:`Q_i` is upper triangular (initialised to
    ``precond_init_scale**(1/ndim) * I``), or a diagonal vector when the dim has size 1, exceeds
    ``max_size_triangular``, the param has fewer than ``min_ndim_triangular`` dims, or ``memory_save_mode`` says so
    ('one_diag': the largest dim; 'smart_one_diag': the largest if strictly largest; 'all_diag').

    **Randomness is an input**: per param and step, ``u_balance`` (always), ``V`` (on update steps) and ``u_wd``
    (stochastic decay with ``weight_decay != 0``). Pass ``seed=`` (NumPy draws from
    ``default_rng([seed, step])``) or ``draws={name: {'balance': u, 'V': array, 'wd': u}}``;
    :func:`kron_draws` builds ``draws`` from any uniform/normal sources, e.g. replaying timm's
    ``random.Random(1337)`` and torch generator.

    State: ``step`` and ``update_counter`` (Python ints, as timm), ``momentum_buffer`` (the possibly flattened
    grad shape, ``mu_dtype``), ``Q`` (a list of factors, ``precond_dtype``). ``mu_dtype``/``precond_dtype`` are
    None (the param dtype), 'float32' or 'float64'.

    Warnings
    --------
    * timm shares one Python RNG over all params (so draws depend on param order) and draws ``V`` from torch's
      global RNG unless ``deterministic=True``; here nothing is drawn implicitly. ``deterministic`` is accepted and
      only changes how :func:`kron_draws` consumes a replayed stream.
    * timm solves the triangular systems in **float32** whatever the precond dtype (``_solve_triangular_right``);
      here they are solved in the precond dtype (``xp.linalg.solve``), so float64 runs differ from timm by float32
      rounding (~1e-7 relative) unless timm's solve is run in float64 (as the oracle test does).
    * "Update probability" is not random: an update happens when the counter reaches ``1/prob``.
    * ``memory_save_mode`` is checked at construction (timm raises at the first step). bfloat16 ``mu_dtype``/
      ``precond_dtype`` are not supported.
    * Host decisions (update counter, balancing, which preconditioner shape) make the step non-jittable.

    References
    ----------
    Li, "Preconditioned Stochastic Gradient Descent", arXiv:1512.04202.
    Li, "Black Box Lie Group Preconditioners for SGD", arXiv:2211.04422.
    Chou, "Why Gradients Rapidly Increase Near the End of Training" (corrected decay), arXiv:2506.02285.
    """

    anchor = "timm.optim.kron.Kron"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 0.0
    preconditioner_update_probability: Any = hyperfield(None, "?any", "None (schedule), a float or a callable")
    max_size_triangular: int = hyperfield(2048, "int")
    min_ndim_triangular: int = hyperfield(2, "int")
    memory_save_mode: str | None = hyperfield(None, "?str")
    momentum_into_precond_update: bool = True
    precond_lr: float = 0.1
    precond_init_scale: float = 1.0
    mu_dtype: str | None = hyperfield(None, "?str")
    precond_dtype: str | None = hyperfield(None, "?str")
    decoupled_decay: bool = False
    corrected_weight_decay: bool = False
    max_lr_snapshot: float | None = hyperfield(None, "?float")
    flatten: bool = False
    flatten_start_dim: int = hyperfield(2, "int")
    flatten_end_dim: int = hyperfield(-1, "int")
    stochastic_weight_decay: bool = False
    deterministic: bool = False

    checks = {"lr": LR, "momentum": Range(ge=0.0, lt=1.0, label="beta parameter"), "weight_decay": NONNEG,
              "max_lr_snapshot": MAX_LR_SNAPSHOT,
              # not checked by timm: the preconditioner's step size and initial scale
              "precond_lr": NONNEG, "precond_init_scale": Range(gt=0.0)}

    def validate(self) -> None:
        prob = self.preconditioner_update_probability
        if prob is not None and not callable(prob):
            if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 < prob <= 1.0:
                raise ValueError(f"Invalid preconditioner_update_probability: {prob!r} (must be None, a callable "
                                 "or a number in (0, 1])")
            object.__setattr__(self, "preconditioner_update_probability", float(prob))
        if self.memory_save_mode not in _MEMORY_SAVE_MODES:
            raise ValueError(f"Invalid memory_save_mode: {self.memory_save_mode}, must be one of [None, 'one_diag', "
                             f"'all_diag'] (memory_save_mode={self.memory_save_mode!r}; 'smart_one_diag' too)")
        for name in ("mu_dtype", "precond_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"Invalid {name}: {getattr(self, name)!r} (must be None, 'float32' or 'float64')")
        if self.max_size_triangular < 0 or self.min_ndim_triangular < 0:
            raise ValueError("max_size_triangular and min_ndim_triangular must be >= 0 "
                             f"(got {self.max_size_triangular}, {self.min_ndim_triangular})")


# ------------------------------------------------------------------------------------------- shapes, init

def _flat_shape(shape: tuple[int, ...], hp: KronHyperparams) -> tuple[int, ...]:
    """timm's ``safe_flatten`` on a shape (identity unless ``flatten``)."""
    if not hp.flatten:
        return shape
    ndim = len(shape)
    start, end = hp.flatten_start_dim, hp.flatten_end_dim
    end = min(end if end >= 0 else ndim + end, ndim - 1)
    if ndim <= start or start > end:
        return shape
    return shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]


def _diag_dims(shape: tuple[int, ...], hp: KronHyperparams) -> list[bool]:
    n = len(shape)
    mode = hp.memory_save_mode
    marked = [False] * n
    if n and mode == "all_diag":
        marked = [True] * n
    elif n and mode in ("one_diag", "smart_one_diag"):
        largest = max(range(n), key=lambda i: (shape[i], i))  # numpy's argsort(shape)[::-1][0] on short shapes
        if mode == "one_diag" or (n >= 2 and sorted(shape)[-1] > sorted(shape)[-2]):
            marked[largest] = True
    return [size == 1 or size > hp.max_size_triangular or n < hp.min_ndim_triangular or d
            for size, d in zip(shape, marked)]


def _dtype(xp, name, default):
    return default if name is None else getattr(xp, name)


def kron_init(xp, p, hp):
    shape = _flat_shape(tuple(p.shape), hp)
    dev = _device(p)
    pd = _dtype(xp, hp.precond_dtype, p.dtype)
    if not shape:
        Q = [xp.full((), hp.precond_init_scale, dtype=pd, device=dev)]
    else:
        scale = hp.precond_init_scale ** (1 / len(shape))
        Q = [xp.full((d,), scale, dtype=pd, device=dev) if diag else scale * xp.eye(d, dtype=pd, device=dev)
             for d, diag in zip(shape, _diag_dims(shape, hp))]
    return {"step": 0, "update_counter": 0,
            "momentum_buffer": xp.zeros(shape, dtype=_dtype(xp, hp.mu_dtype, p.dtype), device=dev), "Q": Q}


def _schedule(s: Mapping[str, Any], hp: KronHyperparams) -> tuple[bool, int]:
    """(update this step, the new update_counter) from the state's Python ints."""
    prob = hp.preconditioner_update_probability
    if prob is None:
        prob = precond_update_prob_schedule(s["step"])
    elif callable(prob):
        prob = float(prob(s["step"]))
    counter = int(s["update_counter"]) + 1
    update = counter >= 1 / prob
    return update, (0 if update else counter)


# ------------------------------------------------------------------------------------------------- draws

def kron_draws(opt: Any, params: Mapping[str, Any], grads: Mapping[str, Any], state: Mapping[str, Mapping], *,
               uniform: Callable[[], float], normal: Callable[[tuple[int, ...], Any], Any],
               order=None) -> dict[str, dict[str, Any]]:
    """The ``draws=`` input for one step, drawn in timm's order from the given sources.

    Walks the params with a grad (in ``order``, default ``params``' order, which should be timm's param-group
    order) exactly as timm's step does: ``uniform()`` for the balance test, then on update steps
    ``normal(shape, p)`` for ``V`` (the momentum's shape), then ``uniform()`` for stochastic weight decay. To
    replay timm: ``uniform=rng.random`` with ``rng = random.Random(1337)`` kept beside the optimizer, and
    ``normal`` = ``torch.randn(shape)`` from torch's global RNG (forked) or, with ``deterministic=True``,
    ``torch.randn(shape, generator=torch.Generator().manual_seed(rng.randint(0, 2**31)))``.
    """
    names = [n for n in (list(params) if order is None else list(order)) if grads.get(n) is not None]
    return _walk_draws(names, params, state, opt.hyperparams_for, uniform, normal)


def _walk_draws(names, params, state, record, uniform, normal) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        hp, p = record(n), params[n]
        s = state.get(n)
        if s is None or "step" not in s:
            s = kron_init(array_namespace(p), p, hp)
        update, _ = _schedule(s, hp)
        d: dict[str, Any] = {"balance": float(uniform())}
        if update:
            d["V"] = normal(_flat_shape(tuple(p.shape), hp), p)
        if hp.weight_decay != 0 and hp.stochastic_weight_decay:
            d["wd"] = float(uniform())
        out[n] = d
    return out


def _seeded_draws(view: StepView, seed: int) -> dict[str, dict[str, Any]]:
    import numpy as np

    rng = np.random.default_rng([int(seed), int(view.slots[view.active[0]].get("step", 0))])

    def normal(shape, p):
        return view.xp.asarray(np.asarray(rng.standard_normal(shape), dtype=np.float64), device=_device(p))

    return _walk_draws(view.active, view.params, view.slots, view.record, rng.random, normal)


# ------------------------------------------------------------------------------------------ contractions

def _mode(xp, X, i, M):
    """Product of ``X`` along axis ``i`` with ``M`` (vector: elementwise; matrix: ``sum_b M[a, b] X[..b..]``)."""
    if M.ndim < 2:
        shape = [1] * X.ndim
        shape[i] = M.shape[0]
        return X * xp.reshape(M, tuple(shape))
    Y = xp.tensordot(M, X, axes=([1], [i]))  # the new axis comes first
    perm = list(range(1, X.ndim))
    perm.insert(i, 0)
    return xp.permute_dims(Y, tuple(perm))


def _unfold(xp, X, i):
    perm = (i,) + tuple(j for j in range(X.ndim) if j != i)
    return xp.reshape(xp.permute_dims(X, perm), (X.shape[i], -1))


def _terms(xp, X, Y, i, diag):
    """timm's exprG for dim ``i``: contraction of X and Y over every axis but ``i``."""
    Xi, Yi = _unfold(xp, X, i), _unfold(xp, Y, i)
    return xp.sum(Xi * Yi, axis=1) if diag else Xi @ xp.matrix_transpose(Yi)


def _solve_right_upper(xp, X, A):
    """``X @ inv(A)`` over the last axis of X, A upper triangular (timm's ``_solve_triangular_right``)."""
    flat = xp.reshape(X, (-1, X.shape[-1]))
    sol = xp.linalg.solve(xp.matrix_transpose(A), xp.matrix_transpose(flat))
    return xp.reshape(xp.matrix_transpose(sol), tuple(X.shape))


def _norm_lower_bound(xp, A):
    """timm's cheap lower bound of the spectral norm of A, both branches evaluated, no host decision."""
    max_abs = xp.max(xp.abs(A))
    positive = max_abs > 0
    B = A / xp.where(positive, max_abs, xp.ones_like(max_abs))
    aa = B * B
    col, row = xp.sum(aa, axis=0), xp.sum(aa, axis=1)
    i, j = xp.argmax(col), xp.argmax(row)

    def unit(x):
        nrm = xp.sqrt(xp.sum(x * x))
        return x / xp.where(nrm > 0, nrm, xp.ones_like(nrm))

    x0 = xp.reshape(xp.take(B, xp.reshape(i, (1,)), axis=1), (-1,)) @ B  # B[:, i] @ B
    x1 = B @ xp.reshape(xp.take(B, xp.reshape(j, (1,)), axis=0), (-1,))  # B @ B[j]
    lb0 = xp.sqrt(xp.sum(xp.square(B @ unit(x0))))
    lb1 = xp.sqrt(xp.sum(xp.square(xp.matrix_transpose(B) @ unit(x1))))
    lb = max_abs * xp.where(xp.max(col) > xp.max(row), lb0, lb1)
    return xp.where(positive, lb, max_abs)


def _triu(xp, T):
    n = T.shape[0]
    r = xp.arange(n, device=_device(T))
    return xp.where(xp.reshape(r, (-1, 1)) <= xp.reshape(r, (1, -1)), T, xp.zeros_like(T))


def kron_kernel(xp, p, g, s, hp, ctx):
    """Per-array Kron update; ``ctx`` carries this param's draws and schedule decision (host side)."""
    update, counter, d = ctx["update"], ctx["counter"], ctx["draws"]
    shape = _flat_shape(tuple(p.shape), hp)
    grad = xp.reshape(g, shape) if shape != tuple(g.shape) else g
    pd = _dtype(xp, hp.precond_dtype, g.dtype)
    s["update_counter"] = counter
    s["step"] = t = int(s["step"]) + 1
    mb = s["momentum_buffer"]
    mb *= hp.momentum
    mb += (1 - hp.momentum) * xp.astype(grad, mb.dtype)
    s["momentum_buffer"] = mb
    debiased = xp.astype(mb / (1 - hp.momentum ** t), pd)
    Q = s["Q"]
    nonempty = math.prod(shape) > 0  # timm fails on empty params (no norm of an empty tensor); here Q stays
    if grad.ndim > 1 and update and d["balance"] < 0.01 and nonempty:
        norms = [xp.max(xp.abs(q)) for q in Q]
        gmean = xp.prod(xp.stack(norms)) ** (1 / len(Q))
        for k, q in enumerate(Q):
            q *= gmean / norms[k]
            Q[k] = q
    if update and nonempty:
        V = xp.astype(d["V"], pd)
        G = debiased if hp.momentum_into_precond_update else xp.astype(grad, pd)
        if G.ndim == 0:
            A, conjB = Q[0] * G, V / Q[0]
            terms = [(A * A, conjB * conjB)]
        else:
            A = G
            for i, q in enumerate(Q):
                A = _mode(xp, A, i, q)
            order = G.ndim
            conjB = xp.permute_dims(V, tuple(range(1, order)) + (0,))
            for i, q in enumerate(Q):
                conjB = conjB / q if q.ndim < 2 else _solve_right_upper(xp, conjB, q)
                if i < order - 1:
                    perm = list(range(order))
                    perm[i], perm[order - 1] = perm[order - 1], perm[i]
                    conjB = xp.permute_dims(conjB, tuple(perm))
            terms = [(_terms(xp, A, A, i, q.ndim < 2), _terms(xp, conjB, conjB, i, q.ndim < 2))
                     for i, q in enumerate(Q)]
        for k, (q, (t1, t2)) in enumerate(zip(Q, terms)):
            tmp = (t1 - t2) * hp.precond_lr
            if q.ndim < 2:
                tmp = tmp * q / (xp.max(xp.abs(t1 + t2)) + _TINY)
            else:
                tmp = _triu(xp, tmp) / (_norm_lower_bound(xp, t1 + t2) + _TINY)
                tmp = tmp @ q
            q -= tmp
            Q[k] = q
    s["Q"] = Q
    pre = debiased
    if pre.ndim == 0:
        pre = Q[0] * Q[0] * pre
    else:
        for i, q in enumerate(Q):
            pre = _mode(xp, _mode(xp, pre, i, q), i, xp.matrix_transpose(q) if q.ndim == 2 else q)
    pre = xp.astype(pre, p.dtype)
    rms = xp.sqrt(xp.mean(pre * pre)) if math.prod(shape) else xp.asarray(0.0, dtype=p.dtype, device=_device(p))
    pre = pre * xp.clip(1.1 / (rms + 1e-8), max=1.0)
    pre = xp.reshape(pre, tuple(p.shape))
    wd = hp.weight_decay
    if wd != 0:
        if hp.stochastic_weight_decay:
            wd = 2 * d["wd"] * wd
        if hp.decoupled_decay:
            scale = decay_scale(hp)
            p *= 1.0 - scale * wd
        else:
            pre = pre + wd * p
    p -= hp.lr * pre
    return p


# ---------------------------------------------------------------------------------------------------- step

def _check_state(xp, name, p, s, hp):
    shape = _flat_shape(tuple(p.shape), hp)
    mb, Q = s.get("momentum_buffer"), s.get("Q")
    if mb is None or Q is None or "step" not in s or "update_counter" not in s:
        raise ValueError(f"state[{name!r}] is not a Kron state (slots {sorted(s)})")
    if not is_array_api_obj(mb) or tuple(mb.shape) != shape:
        raise ValueError(f"state[{name!r}]['momentum_buffer'] has shape {tuple(getattr(mb, 'shape', ()))}, expected "
                         f"{shape}: this state does not belong to these params")
    if not isinstance(Q, (list, tuple)) or len(Q) != max(len(shape), 1) or not all(is_array_api_obj(q) for q in Q):
        raise ValueError(f"state[{name!r}]['Q'] must be a list of {max(len(shape), 1)} arrays: this state does not "
                         "belong to these params")
    for k, q in enumerate(Q):
        try:
            array_namespace(p, q)
        except TypeError:
            raise ValueError(f"state[{name!r}]['Q'][{k}] is a {type(q).__name__}, its param a "
                             f"{type(p).__name__}: this state does not belong to these params") from None
        want = (() if not shape else (shape[k], shape[k]) if q.ndim == 2 else (shape[k],))
        if tuple(q.shape) != want or _device(q) != _device(p):
            raise ValueError(f"state[{name!r}]['Q'][{k}] has shape {tuple(q.shape)} on {_device(q)}: this state "
                             "does not belong to these params")


def prepare_draws(view: StepView, draws: Mapping[str, Any] | None = None,
                  seed: int | None = None) -> dict[str, dict[str, Any]]:
    """Validate ``draws`` (or make them from ``seed``) and decide each param's preconditioner update on the host;
    each kernel gets its plan (``update``, ``counter``, ``draws``) in ``ctx``."""
    if (draws is None) == (seed is None):
        raise TypeError("kron step needs its randomness explicitly: pass exactly one of seed=<int> or "
                        f"draws=<dict> (got seed={seed!r}, draws={'None' if draws is None else '...'})")
    if not view.active:
        return {}
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        draws = _seeded_draws(view, seed)
    if not isinstance(draws, Mapping):
        raise TypeError(f"draws must be a mapping from param names to dicts, got {type(draws).__name__}")
    plans = {}
    for n in view.active:
        hp, p = view.record(n), view.params[n]
        update, counter = _schedule(view.slots[n], hp)
        d = draws.get(n)
        if not isinstance(d, Mapping) or "balance" not in d:
            raise ValueError(f"draws[{n!r}] must be a dict with 'balance' (a uniform draw in [0, 1))")
        if update:
            V = d.get("V")
            want = _flat_shape(tuple(p.shape), hp)
            if not is_array_api_obj(V) or tuple(V.shape) != want:
                raise ValueError(f"draws[{n!r}]['V'] must be a standard normal array of shape {want} on this "
                                 f"step (a preconditioner update), got {type(V).__name__}")
            try:
                array_namespace(p, V)
            except TypeError:
                raise ValueError(f"draws[{n!r}]['V'] is a {type(V).__name__}, its param a {type(p).__name__}: one "
                                 "array library per step") from None
        if hp.weight_decay != 0 and hp.stochastic_weight_decay and "wd" not in d:
            raise ValueError(f"draws[{n!r}] needs 'wd' (a uniform draw) for stochastic_weight_decay")
        plans[n] = {"update": update, "counter": counter, "draws": d}
    return plans


register(
    OptimInfo("kron", "PSGD optimizer with Kronecker-factored preconditioner", KronHyperparams,
              kernel=kron_kernel, init=kron_init, check_state=_check_state, locality="matrix", has_eps=False,
              has_momentum=True,
              step_inputs=(StepInput("draws", "name -> {'balance', 'V', 'wd'} random draws (see kron_draws), or "
                                     "seed=<int> to draw them here", prepare_draws, also=("seed",), host=True),)),
    variants={
        "kronw": ("PSGD optimizer with Kronecker-factored preconditioner and decoupled weight decay",
                  {"decoupled_decay": True}),
        "kronc": ("PSGD Kron with corrected decoupled weight decay (lr²/max_lr scaling)",
                  {"decoupled_decay": True, "corrected_weight_decay": True}),
    },
)
