"""Step inputs beyond grads that some optimizers need from torch: Adahessian's Hessian-diagonal estimate (from the
autograd graph of ``loss.backward(create_graph=True)``) and Kron's random draws (replayable like timm's).

``step_inputs(opt, core, part)`` returns the extra keyword arguments of ``core.step`` for one device part of
:meth:`ArrayOptimizer._step`; ``{}`` for every optimizer that needs none. Which inputs a core needs is read from
its registry entry (``OptimInfo.step_inputs``: a ``hessian`` or a ``draws`` input), never from its name.

**Hessian** (``hessian=``, Adahessian). The usual timm loop works unchanged::

    loss.backward(create_graph=True)
    optimizer.step()

For the params with a grad whose estimate is due (:func:`arrayoptim.optimizers.adahessian.hessian_due`: every
``update_each``-th step of a param, or when it has no estimate yet), in param-group order, each of ``n_samples``
rounds draws Rademacher vectors ``z = randint(0, 2) * 2 - 1`` (one per due param, in that order, in the param's
dtype) and takes the Hessian-vector product ``H z = torch.autograd.grad(grads, params, grad_outputs=zs)`` through
the grads' graph (kept between rounds, freed after the last); the estimate is ``sum_i z_i * (H z_i) / n_samples``,
converted to arrays and passed as ``hessian=``. This is
timm's ``Adahessian.set_hessian`` step by step: the draws come from the optimizer's own ``generator``, a
``torch.Generator`` seeded ``seed = 2147483647`` (timm's attribute names and seed), created at the first step
and re-created (re-seeded) on the device of the due params when that differs, as timm does. So an
``ArrayOptimizer(..., opt='adahessian')`` run replays ``timm.optim.Adahessian``'s draws exactly; assign
``optimizer.generator`` (or ``optimizer.seed`` before the first step) to draw differently. As in timm the
generator is not part of ``state_dict()``: a fresh optimizer loading one draws from the seed again. ``n_samples``
is optimizer-wide in timm; with groups that differ here, all draw the largest count's vectors and each param
averages over its first ``n_samples`` of them. A grad without an
autograd graph (``backward()`` without ``create_graph=True``) raises ``RuntimeError`` before anything is written.
A grad that is constant in the params (a graph-less grad beside others that have one) contributes a zero
Hessian-vector product, where timm's ``autograd.grad`` raises.

**Draws** (``draws=``, Kron). The adapter builds them with :func:`arrayoptim.optimizers.kron.kron_draws` from
timm's two sources, in timm's order (params with a grad, in param-group order):

* uniforms (preconditioner balancing, stochastic weight decay) from the optimizer's ``rng``, a
  ``random.Random(1337)`` (timm's attribute name and seed) created at the first step;
* the normal ``V`` of a preconditioner update from ``torch.randn`` with the precond dtype on the param's device:
  torch's **global** RNG (timm's default), or with ``deterministic=True`` a fresh ``torch.Generator`` seeded
  ``rng.randint(0, 2**31)`` (timm's ``deterministic`` mode, which also consumes ``rng``).

So with the same torch global seed an ``ArrayOptimizer(..., opt='kron')`` run replays ``timm.optim.Kron``'s
trajectory, up to timm's float32 triangular solve (:class:`~arrayoptim.optimizers.kron.KronHyperparams`; ~2e-8
relative over 8 steps on small random params, ~1e-10 on a small net; 1e-15 when timm's solve runs in float64).
timm's Kron has no seed argument; as there, seed it by assigning ``optimizer.rng = random.Random(seed)`` (and
seeding torch). ``state_dict()`` carries ``rng_state`` and ``load_state_dict`` restores it, as timm's Kron does.

The random sources (``generator``, ``seed``, ``rng``) are part of the pickled/deep-copied optimizer
(:func:`persistent_attrs`), so a copy continues the stream where the original stands. With params on several
devices the adapter steps one device at a time, so the streams are consumed device by device (timm would walk
all params in one order, or fail).
"""
from __future__ import annotations

import random
from typing import Any

import torch

from ._bridge import bind

__all__ = ["step_inputs", "hutchinson_autograd", "timm_kron_draws", "persistent_attrs", "kron_state_dict", "pop_kron_rng_state", "ADAHESSIAN_SEED",
           "KRON_SEED"]

#: timm's Adahessian generator seed
ADAHESSIAN_SEED = 2147483647
#: timm's Kron ``random.Random`` seed
KRON_SEED = 1337
#: the optimizer attributes that hold random sources (kept by pickle/deepcopy)
_PERSISTENT = ("generator", "seed", "rng")
_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def step_inputs(opt: Any, core: Any, part: dict[str, Any]) -> dict[str, Any]:
    """Extra ``core.step`` keywords for ``part`` (``part['b'][name] = (tensor, param binding, slot bindings)``)."""
    base = getattr(core, "base", core)  # the optimizer a lookahead_ wrapper drives
    if base.info.takes("hessian"):
        return {"hessian": _hessian(opt, base, part)}
    if base.info.takes("draws"):
        return {"draws": _draws(opt, base, part)}
    return {}


def persistent_attrs(opt: Any) -> dict[str, Any]:
    """The random sources ``step_inputs`` keeps on ``opt`` (for ``__getstate__``: deepcopy/pickle continue them)."""
    return {k: opt.__dict__[k] for k in _PERSISTENT if k in opt.__dict__}


def kron_state_dict(opt: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` plus ``rng_state`` (the Python RNG's state) where ``opt`` holds Kron's ``rng``, as timm."""
    rng = opt.__dict__.get("rng")
    if rng is not None:
        state_dict["rng_state"] = rng.getstate()
    return state_dict


def pop_kron_rng_state(opt: Any, state_dict: dict[str, Any]) -> dict[str, Any]:
    """``state_dict`` without ``rng_state``; a saved state is restored into ``opt.rng`` (created if missing)."""
    if "rng_state" not in state_dict:
        return state_dict
    state_dict = dict(state_dict)
    rng_state = state_dict.pop("rng_state")
    if rng_state is not None:
        rng = opt.__dict__.get("rng")
        if rng is None:
            rng = opt.rng = random.Random(KRON_SEED)
        rng.setstate(rng_state)
    return state_dict


# ---------------------------------------------------------------------------------------------------- Adahessian

def _hessian(opt: Any, core: Any, part: dict[str, Any]) -> dict[str, Any]:
    """timm's ``set_hessian``: the Hutchinson estimate for the due params of ``part``, as arrays."""
    from arrayoptim.optimizers.adahessian import hessian_due

    due = hessian_due(core, part["state"], list(part["params"]))
    if not due:
        return {}
    tensors = [part["b"][n][0] for n in due]
    grads = [t.grad for t in tensors]
    with_graph = [i for i, g in enumerate(grads) if g.requires_grad]
    if not with_graph:
        raise RuntimeError(
            f"{opt.opt_name} needs the autograd graph of the gradients for its Hessian-vector products: call "
            "loss.backward(create_graph=True) (or torch.autograd.grad(..., create_graph=True) into .grad) before "
            "optimizer.step(); the gradients of this step have no graph")
    gen = _generator(opt, tensors[0].device)
    counts = [core.hyperparams_for(n).n_samples for n in due]  # optimizer-wide in timm; per group here
    est = hutchinson_autograd(tensors, grads, gen, counts)
    return {n: bind(h.detach()).array for n, h in zip(due, est)}


def hutchinson_autograd(tensors: list, grads: list, gen: torch.Generator, counts: list[int], *,
                        keep_graph: bool = False) -> list:
    """timm's Hutchinson rounds on ``tensors`` through their ``grads``' autograd graph: ``max(counts)`` rounds of
    Rademacher vectors ``z`` (one per tensor, in order, from ``gen``, in the tensor's dtype) and Hessian-vector
    products ``H z``; tensor ``j`` averages ``z * H z`` over its first ``counts[j]`` rounds. A grad without a graph
    contributes a zero product. The graph is freed after the last round unless ``keep_graph``."""
    with_graph = [i for i, g in enumerate(grads) if g.requires_grad]
    n_samples = max(counts)
    est: list = [None] * len(tensors)
    for i in range(n_samples):
        zs = [(torch.randint(0, 2, t.size(), generator=gen, device=t.device) * 2.0 - 1.0).to(t.dtype)
              for t in tensors]
        hzs = torch.autograd.grad([grads[j] for j in with_graph], tensors, grad_outputs=[zs[j] for j in with_graph],
                                  retain_graph=keep_graph or i < n_samples - 1, allow_unused=True)
        for j, (hz, z) in enumerate(zip(hzs, zs)):
            if i < counts[j]:  # a param of a group with fewer samples uses the first of the shared draws
                term = torch.zeros_like(z) if hz is None else hz * z / counts[j]
                est[j] = term if est[j] is None else est[j] + term
    return est


def _generator(opt: Any, device: torch.device) -> torch.Generator:
    """``opt.generator`` (timm's seeded ``torch.Generator``), created or re-seeded on ``device`` as timm does."""
    d = opt.__dict__
    d.setdefault("seed", ADAHESSIAN_SEED)
    gen = d.get("generator")
    if gen is None or gen.device != device:
        gen = opt.generator = torch.Generator(device).manual_seed(opt.seed)
    return gen


# ---------------------------------------------------------------------------------------------------------- Kron

def _draws(opt: Any, core: Any, part: dict[str, Any]) -> dict[str, Any]:
    """timm's Kron random streams for ``part``, drawn into ``draws=`` (see the module docstring)."""
    rng = opt.__dict__.get("rng")
    if rng is None:
        rng = opt.rng = random.Random(KRON_SEED)
    tensors = {n: t for n, (t, pb, sb) in part["b"].items()}
    return timm_kron_draws(core, part["params"], part["grads"], part["state"], rng,
                           dtype_of=lambda n: tensors[n].grad.dtype, device_of=lambda n: tensors[n].device)


def timm_kron_draws(core: Any, params: dict, grads: dict, state: dict, rng: random.Random, *,
                    dtype_of: Any, device_of: Any = lambda n: None, order: Any = None) -> dict[str, Any]:
    """Kron's ``draws=`` from timm's two sources, in timm's order (:func:`~arrayoptim.optimizers.kron.kron_draws`):
    uniforms from ``rng`` (timm's ``random.Random``) and ``V`` from ``torch.randn`` in the precond dtype (else
    ``dtype_of(name)``, timm's grad dtype) on ``device_of(name)``: torch's global RNG, or with ``deterministic``
    a ``torch.Generator`` seeded ``rng.randint(0, 2**31)``."""
    from arrayoptim.optimizers.kron import kron_draws

    name_of = {id(a): n for n, a in params.items()}

    def normal(shape: tuple[int, ...], p: Any) -> Any:
        n = name_of[id(p)]
        hp, device = core.hyperparams_for(n), device_of(n)
        dtype = _TORCH_DTYPES[hp.precond_dtype] if hp.precond_dtype else dtype_of(n)
        gen = None
        if hp.deterministic:
            gen = torch.Generator(device=device or "cpu")
            gen.manual_seed(rng.randint(0, 2 ** 31))
        return bind(torch.randn(shape, generator=gen, dtype=dtype, device=device)).array

    return kron_draws(core, params, grads, state, uniform=rng.random, normal=normal, order=order)
