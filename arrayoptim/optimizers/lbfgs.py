r"""L-BFGS exactly as torch.optim.LBFGS implements it (``lbfgs``), with an optional strong-Wolfe line search.

Not a per-array map: it works on the flattened concatenation of all params, calls a closure several times per
step and takes host-side decisions (``locality='step'``: not traceable).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from array_api_compat import is_array_api_obj
from array_api_compat import device as _device

from .._hyper import LR, Hyperparams, OneOf, Range, hyperfield
from .._registry import OptimInfo, StepInput, StepView, register
from .._xp import assign, claim

#: the slots torch keeps in ``state[first param]``; here under the first param name
SLOTS = ("func_evals", "n_iter", "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss",
         "al")


@dataclasses.dataclass(frozen=True, kw_only=True)
class LBFGSHyperparams(Hyperparams):
    r"""torch.optim.LBFGS: limited-memory BFGS on the flattened params, driven by a closure.

    ``step(params, grads, state, closure=f)`` with ``f(params) -> (loss, grads)`` (name -> array mappings; a
    ``None`` or missing grad counts as zeros, as torch treats a param whose ``.grad`` is None). One step runs up to
    ``max_iter`` iterations (``max_eval`` closure calls, default ``max_iter * 5 // 4``); with :math:`x` the flat
    params, :math:`g` the flat grad (negated with the loss if ``maximize``), history pairs
    :math:`(s_i, y_i)`, :math:`\rho_i = 1/(y_i^\top s_i)`, kept when :math:`y^\top s > 10^{-10}` (at most
    ``history_size``, oldest dropped), :math:`H = y^\top s / y^\top y` of the newest pair:

    .. math::

        d &= -g \ \text{(very first iteration)}, \quad\text{else two-loop:}\ q = -g,\
            \alpha_i = \rho_i s_i^\top q,\ q \mathrel{-}= \alpha_i y_i \ (\text{newest first}),\
            r = H q,\ r \mathrel{+}= (\alpha_i - \rho_i y_i^\top r)\, s_i \ (\text{oldest first}),\ d = r \\
        t &= \min(1, 1/\lVert g\rVert_1)\,\gamma \ \text{(very first iteration)}, \quad t = \gamma \ \text{after} \\
        x &\leftarrow x + t\,d \quad \text{(} t \text{ from the strong-Wolfe search when }
            \texttt{line\_search\_fn='strong\_wolfe'}\text{)}

    The step returns at once if :math:`\max|g| \le` ``tolerance_grad`` at the start, and stops iterating on
    :math:`g^\top d > -` ``tolerance_change``, ``max_iter``, ``max_eval``, :math:`\max|g| \le` ``tolerance_grad``,
    :math:`\max|t d| \le` ``tolerance_change`` or a loss change below ``tolerance_change``.

    **State.** torch keeps all of L-BFGS's state in ``state[first param]``; here it lives in ``state[first name]``
    (the first name of ``params`` in iteration order; the other names' dicts stay empty), with torch's slot names
    in a flat form: ``func_evals``, ``n_iter`` (Python ints), ``d``, ``prev_flat_grad`` (flat vectors),
    ``t``, ``H_diag``, ``prev_loss`` (0-d arrays), and the history as fixed-size arrays ``old_dirs``,
    ``old_stps`` (``(history_size, n)``: row ``i`` is torch's ``old_dirs[i]``), ``ro`` and ``al``
    (``(history_size,)``). Rows past the current history length are zero (``ro == 0`` marks an empty row: a stored
    pair always has :math:`\rho > 0`); ``al`` entries torch has not filled yet (``None``) are 0. Fixed shapes keep
    ``copy=False`` in place.

    **Which params move.** The ``grads`` argument is not used for its values (the closure is evaluated first, as
    torch does): it selects the params that take part. A param whose entry is ``None`` or missing is held fixed --
    its components of the gradient and of the search direction are zero for this step; with every grad given this
    is exactly torch's algorithm.

    Warnings
    --------
    * The strong-Wolfe search uses torch's fixed ``tolerance_change=1e-9`` (torch does not pass the group's value
      on), ``c1=1e-4``, ``c2=0.9``, and at most ``max_eval - evaluations so far`` evaluations.
    * ``t`` (initially :math:`\min(1, 1/\lVert g\rVert_1)\,\gamma`) applies only to the very first iteration of
      the optimizer's life, not of each step; ``n_iter`` counts iterations over all steps.
    * Line-search scalars (losses, :math:`g^\top d`, ``t``) are Python floats (double) here; torch keeps some as
      tensors of the param dtype, so float32 runs may differ from torch in the last bits of these scalars.
    * ``line_search_fn`` other than None/'strong_wolfe' and ``history_size < 1`` raise ``ValueError`` at
      construction (torch: ``RuntimeError``/``IndexError`` at the first step); param groups raise ``ValueError``
      at the first step, as torch refuses them.

    References
    ----------
    Nocedal & Wright, "Numerical Optimization", 2nd ed., Springer 2006 (Algorithms 7.4, 7.5; 3.5, 3.6 for the
    line search). Liu & Nocedal, "On the limited memory BFGS method for large scale optimization", Math.
    Programming 45 (1989).

    Examples
    --------
    >>> import numpy as np, arrayoptim as ao
    >>> target = np.array([1.0, -2.0])
    >>> def closure(p):
    ...     r = p['x'] - target
    ...     return 0.5 * np.sum(r * r), {'x': r}
    >>> opt = ao.create_optimizer('lbfgs', line_search_fn='strong_wolfe')
    >>> p = {'x': np.zeros(2)}
    >>> s = opt.init(p)
    >>> p, s = opt.step(p, {'x': p['x'] - target}, s, closure=closure)
    >>> np.allclose(p['x'], target), s['x']['func_evals'] > 1
    (True, True)
    """

    anchor = "torch.optim.LBFGS"
    lr: float = 1.0
    max_iter: int = hyperfield(20, "int")
    max_eval: int | None = hyperfield(None, "?int")
    tolerance_grad: float = 1e-7
    tolerance_change: float = 1e-9
    history_size: int = hyperfield(100, "int")
    line_search_fn: str | None = hyperfield(None, "?str")
    maximize: bool = False

    checks = {"lr": LR,
              "line_search_fn": OneOf((None, "strong_wolfe"), "only 'strong_wolfe' is supported ({name}={value!r})"),
              "history_size": Range(ge=1, message="{name} must be {bound} ({name}={value!r})")}

    @property
    def effective_max_eval(self) -> int:
        return self.max_iter * 5 // 4 if self.max_eval is None else self.max_eval


# ------------------------------------------------------------------------------------------- scalar helpers

def _div(a: float, b: float) -> float:
    """IEEE division on Python floats (torch divides tensors: inf/nan instead of ZeroDivisionError)."""
    if b != 0:
        return a / b
    if a == 0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """Minimizer of the cubic through (x1, f1, g1), (x2, f2, g2), clamped to ``bounds`` (default [x1, x2])."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - _div(3 * (f1 - f2), x1 - x2)
    d2_square = d1 * d1 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            pos = x2 - (x2 - x1) * _div(g2 + d2 - d1, g2 - g1 + 2 * d2)
        else:
            pos = x1 - (x1 - x2) * _div(g1 + d2 - d1, g1 - g2 + 2 * d2)
        return min(max(pos, lo), hi)
    return (lo + hi) / 2.0


def _strong_wolfe(evaluate, x, t, d, f, g, gtd, dot, absmax, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Strong-Wolfe line search (Nocedal & Wright 3.5/3.6) with torch's bracketing and zoom rules.

    ``evaluate(x, t, d) -> (loss, flat_grad)``; returns ``(loss, flat_grad, t, evaluations)``.
    """
    d_norm = absmax(d)
    f_new, g_new = evaluate(x, t, d)
    evals = 1
    gtd_new = dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, g, gtd
    done = False
    ls_iter = 0
    bracket = bracket_f = bracket_g = bracket_gtd = None
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate within [t + 0.01 (t - t_prev), 10 t]
        t_next = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                    bounds=(t + 0.01 * (t - t_prev), t * 10))
        t_prev, f_prev, g_prev, gtd_prev = t, f_new, g_new, gtd_new
        t = t_next
        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [g, g_new]
    if bracket is None:  # max_ls < 0: torch fails here with an UnboundLocalError
        raise ValueError(f"max_eval leaves no evaluation for the line search (max_ls={max_ls})")

    insuf_progress = False
    low, high = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        # safeguard: stay at least 10% of the bracket away from its ends
        b_max, b_min = max(bracket), min(bracket)
        eps = 0.1 * (b_max - b_min)
        if min(b_max - t, t - b_min) < eps:
            if insuf_progress or t >= b_max or t <= b_min:
                t = b_max - eps if abs(t - b_max) < abs(t - b_min) else b_min + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low]:
            bracket[high], bracket_f[high], bracket_g[high], bracket_gtd[high] = t, f_new, g_new, gtd_new
            low, high = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bracket_f[high] = bracket[low], bracket_f[low]
                bracket_g[high], bracket_gtd[high] = bracket_g[low], bracket_gtd[low]
            bracket[low], bracket_f[low], bracket_g[low], bracket_gtd[low] = t, f_new, g_new, gtd_new
    return bracket_f[low], bracket_g[low], bracket[low], evals


# ------------------------------------------------------------------------------------------------ the step

class _Flat:
    """The flat layout of the params (torch's ``_gather_flat_grad`` / ``_add_grad`` order: ``params`` order)."""

    def __init__(self, xp, params: Mapping[str, Any], active: list[str]):
        self.xp = xp
        self.names = list(params)
        self.params = params
        self.shapes = {n: tuple(p.shape) for n, p in params.items()}
        self.sizes = {n: math.prod(s) for n, s in self.shapes.items()}
        self.n = sum(self.sizes.values())
        self.dtype = xp.result_type(*[p.dtype for p in params.values()])
        self.device = _device(params[self.names[0]])
        self.active = set(active)
        self.mask = None
        if len(self.active) < len(self.names):
            self.mask = self.cat({n: (xp.ones(self.shapes[n], dtype=self.dtype, device=self.device) if n in self.active
                                      else None) for n in self.names})

    def cat(self, arrays: Mapping[str, Any]) -> Any:
        xp = self.xp
        parts = []
        for n in self.names:
            a = arrays.get(n)
            if a is None or n not in self.active:
                parts.append(xp.zeros((self.sizes[n],), dtype=self.dtype, device=self.device))
            else:
                parts.append(xp.reshape(xp.astype(a, self.dtype), (self.sizes[n],)))
        return xp.concat(parts) if parts else xp.zeros((0,), dtype=self.dtype, device=self.device)

    def split(self, flat: Any) -> dict[str, Any]:
        """name -> array of the param's shape and dtype, for the active params (others: the params themselves)."""
        xp, out, off = self.xp, {}, 0
        for n in self.names:
            size = self.sizes[n]
            if n in self.active:
                out[n] = xp.astype(xp.reshape(flat[off:off + size], self.shapes[n]), self.params[n].dtype)
            else:
                out[n] = self.params[n]
            off += size
        return out


def _check_closure_grads(grads: Any, flat: _Flat) -> None:
    if not isinstance(grads, Mapping):
        raise TypeError(f"the closure must return (loss, grads) with grads a mapping from names to arrays, got "
                        f"{type(grads).__name__}")
    for n in flat.active:
        g = grads.get(n)
        if g is None:
            continue
        if not is_array_api_obj(g):
            raise TypeError(f"closure grads[{n!r}] must be an array or None, got {type(g).__name__}")
        if tuple(g.shape) != flat.shapes[n]:
            raise ValueError(f"closure grads[{n!r}] has shape {tuple(g.shape)}, its param has shape {flat.shapes[n]}")


def check_closure(view: StepView, closure: Callable[[Any], Any] | None = None) -> dict:
    """The closure must be given and callable (what it returns is checked at each call)."""
    if closure is None or not callable(closure):
        raise TypeError(f"lbfgs.step() needs closure=f with f(params) -> (loss, grads), got closure={closure!r}")
    return {}


def lbfgs_step(opt, view: StepView, *, copy=True, closure: Callable[[Any], Any]):
    """One torch LBFGS ``step(closure)``; see :class:`LBFGSHyperparams`. Nothing is written before the end."""
    if opt.groups:
        raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
    params, state, xp, active = view.params, view.state, view.xp, list(view.active)
    hp = opt.hyperparams if not active else view.record(active[0])
    new_state = {n: dict(s) for n, s in state.items()}
    if not active:
        return dict(params), new_state
    flat = _Flat(xp, params, active)
    first = flat.names[0]
    st = dict(state.get(first, {}))
    h = hp.history_size
    _check_state(st, flat, h)

    def dot(a, b) -> float:
        return float(xp.sum(a * b))

    def absmax(a) -> float:
        return float(xp.max(xp.abs(a))) if flat.n else 0.0

    def evaluate(point: Mapping[str, Any]):
        out = closure(point)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(f"the closure must return a pair (loss, grads), got {type(out).__name__}")
        loss, g = out
        _check_closure_grads(g, flat)
        loss = float(loss)
        g = flat.cat(g)
        if hp.maximize:
            loss, g = -loss, -g
        return loss, g

    def evaluate_dir(x, t, d):
        return evaluate(flat.split(x + t * d))

    lr, max_iter, max_eval, tol_change = hp.lr, hp.max_iter, hp.effective_max_eval, hp.tolerance_change
    func_evals = int(st.get("func_evals", 0))
    n_iter_total = int(st.get("n_iter", 0))

    loss, flat_grad = evaluate(dict(params))
    current_evals = 1
    func_evals += 1
    if absmax(flat_grad) <= hp.tolerance_grad:
        return _finish(xp, params, new_state, first, st, {"func_evals": func_evals, "n_iter": n_iter_total},
                       flat, None, copy)

    d = st.get("d")
    t = float(st["t"]) if "t" in st else None
    k = int(xp.sum(xp.astype(st["ro"] > 0, xp.int32))) if "ro" in st else 0
    old_dirs = [st["old_dirs"][i, :] for i in range(k)]
    old_stps = [st["old_stps"][i, :] for i in range(k)]
    ro = [st["ro"][i] for i in range(k)]
    H_diag = st.get("H_diag")
    prev_flat_grad = st.get("prev_flat_grad")
    prev_loss = float(st["prev_loss"]) if "prev_loss" in st else None
    al = [st["al"][i] for i in range(h)] if "al" in st else None
    x = flat.cat(params)

    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        n_iter_total += 1
        if n_iter_total == 1:
            d = -flat_grad
            old_dirs, old_stps, ro = [], [], []
            H_diag = xp.ones((), dtype=flat.dtype, device=flat.device)
        else:
            y = flat_grad - prev_flat_grad
            s = d * t
            ys = xp.sum(y * s)
            if float(ys) > 1e-10:
                if len(old_dirs) == h:
                    old_dirs.pop(0)
                    old_stps.pop(0)
                    ro.pop(0)
                old_dirs.append(y)
                old_stps.append(s)
                ro.append(1.0 / ys)
                H_diag = ys / xp.sum(y * y)
            if al is None:
                al = [None] * h
            q = -flat_grad
            for i in range(len(old_dirs) - 1, -1, -1):
                al[i] = xp.sum(old_stps[i] * q) * ro[i]
                q = q + (-al[i]) * old_dirs[i]
            r = q * H_diag
            for i in range(len(old_dirs)):
                be_i = xp.sum(old_dirs[i] * r) * ro[i]
                r = r + (al[i] - be_i) * old_stps[i]
            d = r
        if flat.mask is not None:
            d = d * flat.mask
        prev_flat_grad = flat_grad
        prev_loss = loss
        if n_iter_total == 1:
            t = min(1.0, _div(1.0, float(xp.sum(xp.abs(flat_grad))))) * lr
        else:
            t = lr
        gtd = dot(flat_grad, d)
        if gtd > -tol_change:
            break
        ls_evals = 0
        if hp.line_search_fn is not None:
            loss, flat_grad, t, ls_evals = _strong_wolfe(evaluate_dir, x, t, d, loss, flat_grad, gtd, dot, absmax,
                                                         max_ls=max_eval - current_evals)
            x = x + t * d
            opt_cond = absmax(flat_grad) <= hp.tolerance_grad
        else:
            x = x + t * d
            opt_cond = False
            if n_iter != max_iter:
                loss, flat_grad = evaluate(flat.split(x))
                opt_cond = absmax(flat_grad) <= hp.tolerance_grad
                ls_evals = 1
        current_evals += ls_evals
        func_evals += ls_evals
        if n_iter == max_iter or current_evals >= max_eval or opt_cond:
            break
        if absmax(d * t) <= tol_change:
            break
        if abs(loss - prev_loss) < tol_change:
            break

    if n_iter == 0:  # max_iter=0: nothing but the first evaluation (torch then stores its None slots)
        return _finish(xp, params, new_state, first, st, {"func_evals": func_evals, "n_iter": n_iter_total},
                       flat, None, copy)

    def scalar(v):
        return xp.asarray(v, dtype=flat.dtype, device=flat.device)

    def rows(vectors):
        zero = xp.zeros((flat.n,), dtype=flat.dtype, device=flat.device)
        return xp.stack(list(vectors) + [zero] * (h - len(vectors)))

    slots = {"func_evals": func_evals, "n_iter": n_iter_total, "d": d, "t": scalar(t),
             "old_dirs": rows(old_dirs), "old_stps": rows(old_stps),
             "ro": xp.stack([scalar(v) for v in ro] + [scalar(0.0)] * (h - len(ro))),
             "H_diag": scalar(H_diag), "prev_flat_grad": prev_flat_grad, "prev_loss": scalar(prev_loss)}
    if al is not None:
        slots["al"] = xp.stack([scalar(0.0 if v is None else v) for v in al])
    return _finish(xp, params, new_state, first, st, slots, flat, x, copy)


def _check_state(st: Mapping[str, Any], flat: _Flat, h: int) -> None:
    """The state under the first name must be this problem's: flat vectors of length n, history of h rows."""
    expect = {"d": (flat.n,), "prev_flat_grad": (flat.n,), "old_dirs": (h, flat.n), "old_stps": (h, flat.n),
              "ro": (h,), "al": (h,), "t": (), "H_diag": (), "prev_loss": ()}
    unknown = [k for k in st if k not in SLOTS]
    if unknown:
        raise ValueError(f"state[{flat.names[0]!r}] has slots LBFGS does not use: {unknown}")
    for k, shape in expect.items():
        v = st.get(k)
        if v is not None and (not is_array_api_obj(v) or tuple(v.shape) != shape):
            raise ValueError(f"state[{flat.names[0]!r}][{k!r}] has shape {tuple(getattr(v, 'shape', ()))}, expected "
                             f"{shape} (n={flat.n} params in all, history_size={h}): this state does not belong to "
                             "these params")


def _finish(xp, params, new_state, first, st, slots, flat: _Flat, x, copy):
    """Write the new params (active ones) and the state slots, in place where ``copy`` says so."""
    new_params = dict(params)
    if x is not None:
        for n, v in flat.split(x).items():
            if n in flat.active:
                new_params[n] = assign(claim(xp, params[n], copy), v)
    out = {}
    for k, v in slots.items():
        old = st.get(k)
        if is_array_api_obj(v) and is_array_api_obj(old) and tuple(old.shape) == tuple(v.shape) \
                and old.dtype == v.dtype:
            out[k] = assign(claim(xp, old, copy), v)
        elif is_array_api_obj(v) and v is old:
            out[k] = claim(xp, v, copy)
        else:
            out[k] = v
    new_state.setdefault(first, {})
    new_state[first] = {**st, **out}
    for n in params:
        new_state.setdefault(n, {})
    return new_params, new_state


register(OptimInfo("lbfgs", "torch.optim.LBFGS, limited-memory BFGS with optional strong-Wolfe line search",
                   LBFGSHyperparams, step_fn=lbfgs_step, locality="step", has_eps=False, second_order=False,
                   step_inputs=(StepInput("closure", "f(params) -> (loss, grads), called several times per step",
                                          check_closure, host=True),)))
