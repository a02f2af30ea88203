"""Drivers of step inputs beyond grads (:data:`STEP_INPUT_DRIVERS`, keyed by the declared
:class:`~arrayoptim.StepInput` names): each feeds the oracle and arrayoptim the same closure, sparse grads,
Hessian estimate or random draws."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .compare import to_numpy


# ------------------------------------------------------------------------------------- step inputs beyond grads

class Driver:
    """How one step reaches both sides when the optimizer needs more than a grad stream.

    The plain harness sets each oracle param's ``.grad``, calls ``oracle.step()`` and
    ``opt.step(params, grads, state)``. A driver replaces that for one step input of arrayoptim's step
    (``closure=``, ``grad_mask=``, ``hessian=``, ``draws=``; see :data:`STEP_INPUT_DRIVERS`): it feeds the oracle
    what its anchor takes instead (a closure, sparse grads, grads with a graph, its own random streams) and
    arrayoptim the same information as an explicit input. Per step :func:`run_parity` calls
    :meth:`feed_oracle`, :meth:`ours_inputs` (before the oracle steps, so it can clone the oracle's random
    streams), :meth:`oracle_step`, ``opt.step(params, grads, state, **inputs)``, then compares params, state
    (through :meth:`slot_map`) and :meth:`extra_pairs`.

    Attributes
    ----------
    note
        How the problem was adapted (the note column of ``arrayoptim verify``).
    unused_without_grad
        Slots the oracle changes on a param without a grad where arrayoptim keeps them; they are not read until
        they are renewed, so they are not compared at such a step (they are still re-synced).
    """

    note = ""
    unused_without_grad: tuple[str, ...] = ()

    def bind(self, oracle: Any, opt: Any, t_params: dict) -> None:
        """Called once per run, after both sides are built (``t_params``: the oracle's params by name)."""
        self.oracle, self.opt, self.t_params = oracle, opt, t_params

    @property
    def raw(self) -> Any:
        """The oracle's torch optimizer (a :class:`TimmStateView` and timm's Lookahead unwrapped)."""
        opt = getattr(self.oracle, "opt", self.oracle)
        return getattr(opt, "_base_optimizer", opt)

    def feed_oracle(self, t: int, grads: dict) -> dict:
        """Give the oracle step ``t``'s input; return the grads arrayoptim gets (default: ``grads``)."""
        import torch

        for n, p in self.t_params.items():
            p.grad = None if grads[n] is None else torch.tensor(grads[n], dtype=p.dtype)
        return grads

    def ours_inputs(self, t: int, grads: dict, params: dict, state: dict) -> dict:
        """arrayoptim's extra step keywords for step ``t``."""
        return {}

    def oracle_step(self) -> None:
        self.oracle.step()

    def close(self) -> None:
        """Called once when the run ends (also on error): undo what :meth:`bind` changed outside the run."""

    def slot_map(self, name: str, theirs: dict) -> dict:
        """The oracle's state of one param in arrayoptim's form (documented differences only)."""
        return theirs

    def rtol_for(self, dtype: str) -> float | None:
        """A tolerance this driver documents for runs in ``dtype`` (None: the dtype's default)."""
        return None

    def note_for(self, dtype: str) -> str:
        """The note column for a run in ``dtype``."""
        gap = self.rtol_for(dtype)
        return self.note if gap is None else f"{self.note}; documented gap in {dtype}: rtol {gap:g}"

    def extra_pairs(self) -> list[tuple[Any, Any, str]]:
        """``(ours, oracle's, what)`` compared after the step besides params and state (counted as state)."""
        return []

    def _name_of(self) -> dict[int, str]:
        return {id(p): n for n, p in self.t_params.items()}


def _torch_dtype_of(a: Any) -> Any:
    import torch

    return torch.from_numpy(np.empty(0, dtype=np.asarray(a).dtype)).dtype


class ClosureDriver(Driver):
    """``closure=``: torch's LBFGS re-evaluates the objective through a closure, several times per step.

    The objective is smooth and seeded: :math:`\\sum a (x - c)^2 / 2 + x^4 / 10` over the params with a grad at
    this step (curvatures :math:`a` in :math:`10^{[-1, 1]}`); a param whose scheduled grad is missing is left out
    of it for that step (torch's closure leaves its ``.grad`` None and LBFGS gathers zeros; arrayoptim's closure
    returns None for it). Both closures evaluate it with torch's arithmetic on contiguous tensors, so equal points
    give bit-identical losses and grads (the line search would amplify an ulp of difference in the *objective*);
    the grads are written out (no autograd) and the oracle's closure stores them contiguous (torch's LBFGS
    ``view``s each grad: the transposed param). The
    losses of every closure call of the step are compared (their number too). torch keeps all state as lists
    under the first param; it is shown in arrayoptim's flat form (history rows padded with zeros to
    ``history_size``, ``al``'s unfilled entries 0).

    In float32 the documented gap :data:`LBFGS_FLOAT32_RTOL` applies (see ``LBFGSHyperparams``' Warnings: the
    line-search scalars are doubles here, float32 tensors in torch; the two-loop's dot products cancel, so their
    summation order shows): measured on this problem 1.9e-4 in state (``d``, ``al``), 6.9e-7 in params. In
    float64 the largest difference is ``al``, the two-loop's scratch buffer (3.8e-13: summation order).
    """

    note = "closure-driven: a seeded smooth objective (quadratic + quartic); every closure call's loss compared"

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        rng = np.random.default_rng(11)
        self.coef = {n: (torch.tensor(10.0 ** rng.uniform(-1, 1, tuple(p.shape)), dtype=p.dtype),
                         torch.tensor(rng.standard_normal(tuple(p.shape)), dtype=p.dtype))
                     for n, p in t_params.items()}
        self.history = int(self.raw.param_groups[0]["history_size"])
        self.live: list[str] = []
        self.ours_losses: list[float] = []
        self.theirs_losses: list[float] = []

    def _loss_and_grads(self, values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The objective and its gradient over ``values`` (torch tensors), with torch's arithmetic, no autograd."""
        import torch

        total = torch.zeros((), dtype=next(iter(self.coef.values()))[0].dtype)
        grads = {}
        with torch.no_grad():
            for n, x in values.items():
                a, c = self.coef[n]
                x = x.detach().contiguous()
                total = total + torch.sum(a * (x - c) ** 2 / 2 + x ** 4 / 10)
                grads[n] = a * (x - c) + 0.4 * x ** 3
        return total, grads

    def feed_oracle(self, t, grads):
        self.live = [n for n in self.t_params if grads[n] is not None]
        self.ours_losses, self.theirs_losses = [], []
        # the grads argument only selects the params that take part (all: torch's LBFGS moves every param)
        return {n: np.zeros_like(to_numpy(p)) for n, p in self.t_params.items()}

    def ours_inputs(self, t, grads, params, state):
        import torch

        def closure(point):
            loss, g = self._loss_and_grads({n: torch.from_numpy(np.asarray(point[n])) for n in self.live})
            self.ours_losses.append(float(loss))
            return float(loss), {n: (g[n].numpy() if n in g else None) for n in point}

        return {"closure": closure}

    def oracle_step(self):
        raw = self.raw

        def closure():
            raw.zero_grad()
            loss, g = self._loss_and_grads({n: self.t_params[n] for n in self.live})
            for n, gn in g.items():
                self.t_params[n].grad = gn  # contiguous: torch's LBFGS views each grad flat
            self.theirs_losses.append(float(loss))
            return loss

        raw.step(closure)

    def slot_map(self, name, theirs):
        return lbfgs_state_as_arrays(theirs, self.history)

    def extra_pairs(self):
        return [(self.ours_losses, self.theirs_losses, "closure losses")]

    def rtol_for(self, dtype):
        return LBFGS_FLOAT32_RTOL if dtype == "float32" else None


def lbfgs_state_as_arrays(theirs: Mapping[str, Any], history_size: int) -> dict[str, Any]:
    """torch LBFGS's ``state[first param]`` (history lists, ``None`` in ``al``, Python numbers) in arrayoptim's
    fixed-shape form: ``(history_size, n)`` / ``(history_size,)`` arrays with zero rows past the history (the
    torch adapter's own conversion, :func:`arrayoptim.torch._state.lbfgs_fixed_shape`, then NumPy)."""
    if not theirs:
        return dict(theirs)
    import torch

    from ..torch._state import lbfgs_fixed_shape

    like = theirs.get("d")
    like = like if isinstance(like, torch.Tensor) else torch.zeros(0)
    st = lbfgs_fixed_shape({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in theirs.items()},
                           int(like.numel()), history_size, like)
    return {k: to_numpy(v) for k, v in st.items()}


#: LBFGS against torch in float32: scalars in double here, float32 tensors in torch (see ClosureDriver)
LBFGS_FLOAT32_RTOL = 1e-3


class SparseGradDriver(Driver):
    """``grad_mask=``: torch's SparseAdam takes sparse COO grads only.

    Each step's grad keeps a seeded subset of its entries (whole rows of a 2-D param, as an embedding's grad;
    single entries otherwise); the oracle gets it as a coalesced COO tensor, arrayoptim the dense grad (zeros
    elsewhere) and ``grad_mask``. The first present entry of each param with an entry holds an explicit 0
    (present by layout, not by value), and every fourth step the smallest param with a grad has a sparse grad with
    no entry at all (torch still counts its step).
    """

    note = "sparse COO grads (seeded, an explicitly stored 0, an empty one) vs dense grads + grad_mask"

    def bind(self, oracle, opt, t_params):
        super().bind(oracle, opt, t_params)
        self.rng = np.random.default_rng(3)
        self.masks: dict[str, Any] = {}

    def feed_oracle(self, t, grads):
        import torch

        self.masks, dense = {}, {}
        live = [n for n in self.t_params if grads[n] is not None]
        empty = min(live, key=lambda n: np.size(grads[n])) if live and t % 4 == 3 else None
        for n, p in self.t_params.items():
            g = grads[n]
            if g is None:
                p.grad, dense[n] = None, None
                continue
            g = np.array(g, copy=True, order="C")
            if g.ndim == 2:
                m = np.zeros(g.shape, bool)
                m[self.rng.random(g.shape[0]) < 0.5] = True
            else:
                m = np.asarray(self.rng.random(g.shape) < 0.5)
            if n == empty:
                m[...] = False
            if m.any():
                g.reshape(-1)[int(np.flatnonzero(m.reshape(-1))[0])] = 0.0  # an explicitly stored zero
            g = np.where(m, g, np.zeros((), g.dtype))
            idx = np.stack(np.nonzero(m)) if g.ndim else np.zeros((0, int(m)), dtype=np.int64)
            vals = g[m] if g.ndim else g.reshape(1)[: int(m)]
            p.grad = torch.sparse_coo_tensor(torch.tensor(idx, dtype=torch.int64), torch.tensor(vals, dtype=p.dtype),
                                             tuple(p.shape), check_invariants=True)
            self.masks[n], dense[n] = m, g
        return dense

    def ours_inputs(self, t, grads, params, state):
        return {"grad_mask": self.masks}


class HutchinsonDriver(Driver):
    """``hessian=``: timm's Adahessian estimates the Hessian diagonal itself, :math:`z \\odot (H z)` with
    Rademacher :math:`z` from its own ``torch.Generator``, by double backward through grads made with
    ``create_graph=True``.

    The loss is seeded and has curvature across params: :math:`L(x) = a^\\top x + x^\\top M x / 2 + \\sum x^4 / 100`
    over all params flattened together (:math:`M` positive definite, diagonally dominant). The grads are
    :math:`\\nabla L` at the current point (a param whose scheduled grad is missing gets none). The estimate is
    made for the params arrayoptim says are due (:func:`arrayoptim.optimizers.adahessian.hessian_due`), in timm's
    param order, with a clone of timm's generator, and passed as ``hessian=``; a different due set or order on
    either side draws differently and fails. timm zeroes its stored estimate (``p.hess``) of a param without a grad
    where arrayoptim keeps it; neither reads it before renewing it, so ``hess`` is not compared at such a step.
    """

    note = "grads and Hessian estimate of a seeded coupled loss (quadratic + quartic), drawn with timm's generator"
    unused_without_grad = ("hess",)

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        dtype = next(iter(t_params.values())).dtype
        size = sum(p.numel() for p in t_params.values())
        rng = np.random.default_rng(5)
        B = rng.standard_normal((size, size)) / size ** 0.5
        self.a = torch.tensor(rng.standard_normal(size), dtype=dtype)
        self.M = torch.tensor(4.0 * np.eye(size) + 0.25 * (B + B.T), dtype=dtype)

    def _loss(self) -> Any:
        import torch

        x = torch.cat([p.reshape(-1) for p in self.t_params.values()])
        return self.a @ x + 0.5 * x @ (self.M @ x) + (x ** 4).sum() / 100

    def feed_oracle(self, t, grads):
        import torch

        live = [n for n in self.t_params if grads[n] is not None]
        gs = torch.autograd.grad(self._loss(), [self.t_params[n] for n in live], create_graph=True)
        for p in self.t_params.values():
            p.grad = None
        for n, g in zip(live, gs):
            self.t_params[n].grad = g
        return {n: (to_numpy(self.t_params[n].grad) if n in live else None) for n in self.t_params}

    def ours_inputs(self, t, grads, params, state):
        import torch

        from ..optimizers.adahessian import hessian_due
        from ..torch._inputs import hutchinson_autograd

        raw, name_of = self.raw, self._name_of()
        live = [n for n in self.t_params if grads[n] is not None]
        wanted = set(hessian_due(self.opt, state, live))
        due = [name_of[id(p)] for p in raw.get_params() if name_of.get(id(p)) in wanted]
        if not due:
            return {}
        gen = torch.Generator().set_state(raw.generator.get_state())
        ps = [self.t_params[n] for n in due]  # the graph stays for the oracle's own products
        hs = hutchinson_autograd(ps, [p.grad for p in ps], gen, [int(self.opt.hyperparams.n_samples)] * len(ps),
                                 keep_graph=True)
        est = {n: to_numpy(h) for n, h in zip(due, hs)}
        return {"hessian": est}

    def slot_map(self, name, theirs):
        import torch

        hess = getattr(self.t_params[name], "hess", None)
        if isinstance(hess, torch.Tensor):
            theirs["hess"] = hess
        return theirs


def _solve_upper_right(X: Any, A: Any) -> Any:
    """``X @ inv(A)`` for upper-triangular ``A``, in the inputs' dtype (timm's Kron casts to float32)."""
    import torch

    flat = X.reshape(-1, X.shape[-1])
    return torch.linalg.solve_triangular(A, flat, upper=True, left=False).reshape(X.shape)


class ReplayedDrawsDriver(Driver):
    """``draws=``: timm's Kron draws from its own ``random.Random`` (balancing, stochastic weight decay and, with
    ``deterministic=True``, the seeds of a torch generator per param) and from torch's global RNG (the probe
    vectors ``V``).

    Before each step both streams are cloned (the Python RNG's state; torch's global RNG state, restored after
    drawing) and replayed in timm's param order through :func:`arrayoptim.optimizers.kron.kron_draws` into
    ``draws=``. timm solves its triangular systems in float32 whatever the dtype; during the oracle's step its
    ``_solve_triangular_right`` is swapped for the same solve in the inputs' dtype (restored after the step), so
    float64 is compared at 1e-10. If this timm has no such function the step runs as it is and the documented gap
    :data:`KRON_FLOAT32_SOLVE_RTOL` is the tolerance. The oracle's ``torch.compile``'d helpers are replaced on this
    instance by the plain functions they compile (the same math, no compilation time).
    """

    def __init__(self) -> None:
        import timm.optim.kron as tk

        self.tk = tk
        self.patch = callable(getattr(tk, "_solve_triangular_right", None))

    @property
    def note(self) -> str:  # type: ignore[override]
        solve = "run in the param dtype" if self.patch else "kept (no _solve_triangular_right in this timm)"
        return f"timm's draws replayed into draws=; timm's float32 triangular solve {solve}"

    def rtol_for(self, dtype):
        return None if self.patch else KRON_FLOAT32_SOLVE_RTOL

    def bind(self, oracle, opt, t_params):
        import torch

        super().bind(oracle, opt, t_params)
        # torch's global RNG (timm's V when not deterministic) from a fixed seed: the same draws on every run
        self._saved_rng = torch.get_rng_state()
        torch.default_generator.manual_seed(1337)
        raw = self.raw
        for fn in ("_calc_A_and_conjB", "_q_terms", "_precond_grad", "_balance_Q"):
            plain = getattr(self.tk, fn, None)
            if fn in vars(raw) and callable(plain):
                setattr(raw, fn, plain)

    def ours_inputs(self, t, grads, params, state):
        import random

        import torch

        from ..torch._inputs import timm_kron_draws

        raw, name_of = self.raw, self._name_of()
        order = [name_of[id(p)] for g in raw.param_groups for p in g["params"] if id(p) in name_of]
        rng = random.Random()
        rng.setstate(raw.rng.getstate())
        saved = torch.get_rng_state()  # the oracle draws V from the same global stream afterwards
        try:
            return {"draws": timm_kron_draws(self.opt, params, grads, state, rng, order=order,
                                             dtype_of=lambda n: _torch_dtype_of(params[n]))}
        finally:
            torch.set_rng_state(saved)

    def close(self):
        import torch

        if getattr(self, "_saved_rng", None) is not None:
            torch.set_rng_state(self._saved_rng)
            self._saved_rng = None

    def oracle_step(self):
        if not self.patch:
            self.oracle.step()
            return
        tk, orig = self.tk, self.tk._solve_triangular_right
        tk._solve_triangular_right = _solve_upper_right
        try:
            self.oracle.step()
        finally:
            tk._solve_triangular_right = orig


#: timm's Kron solves in float32 whatever the dtype: the gap arrayoptim verify allows when it cannot run that solve
#: in the param dtype (measured against timm's float32 solve on the verify problem, float64, 12 steps, the same
#: draws: 7.8e-9 in state, 5.8e-10 in params)
KRON_FLOAT32_SOLVE_RTOL = 1e-6

#: arrayoptim step keywords (beyond grads) -> the driver that feeds them and the oracle
STEP_INPUT_DRIVERS: dict[str, type[Driver]] = {
    "closure": ClosureDriver,
    "grad_mask": SparseGradDriver,
    "hessian": HutchinsonDriver,
    "draws": ReplayedDrawsDriver,
}
