"""Shared helpers of the torch adapter suites (no tests here): twin param sets, a lock-step driver, comparisons."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def make_tensors(dtype=torch.float64, seed=0):
    """Leaf tensors: a conv weight, a matrix, a vector, a 0-d param and a transposed (non-contiguous) param."""
    g = torch.Generator().manual_seed(seed)
    out = [torch.randn(4, 3, 3, 3, generator=g, dtype=torch.float64), torch.randn(5, 7, generator=g, dtype=torch.float64),
           torch.randn(3, generator=g, dtype=torch.float64), torch.randn((), generator=g, dtype=torch.float64),
           torch.randn(4, 6, generator=g, dtype=torch.float64).t()]
    return [t.to(dtype).requires_grad_() if i != 4 else t.to(dtype).requires_grad_() for i, t in enumerate(out)]


def twin(tensors):
    """A second set of leaf tensors with the same values and the same strides."""
    out = []
    for t in tensors:
        c = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype)
        with torch.no_grad():
            c.copy_(t)
        out.append(c.requires_grad_(t.requires_grad))
    return out


def grads_for(tensors, steps, seed=1, scale=1.0, missing=True):
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in range(steps):
        gs = [scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype) for p in tensors]
        if missing and t == 2:
            gs[2] = None
        if missing and t in (4, 5):
            gs[3] = None
        out.append(gs)
    return out


def set_grads(tensors, gs):
    for p, g in zip(tensors, gs):
        p.grad = None if g is None else g.clone()


def assert_close(ours, theirs, rtol, what):
    if isinstance(theirs, torch.Tensor) or isinstance(ours, torch.Tensor):
        a = torch.as_tensor(ours).detach().resolve_neg().double().cpu().numpy()
        b = torch.as_tensor(theirs).detach().resolve_neg().double().cpu().numpy()
        assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
        scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)
    elif isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        assert abs(float(ours) - theirs) <= rtol * max(1.0, abs(theirs)), f"{what}: {ours} != {theirs}"
    else:
        assert ours == theirs, f"{what}: {ours!r} != {theirs!r}"


def compare(ours_opt, theirs_opt, ours, theirs, rtol, what, state=True, slot_filter=None):
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a, b, rtol, f"{what} param {i}")
        if not state:
            continue
        sa, sb = ours_opt.state.get(a, {}), theirs_opt.state.get(b, {})
        if slot_filter:
            sa, sb = slot_filter(sa), slot_filter(sb)
        assert set(sa) == set(sb), f"{what} param {i}: slots {sorted(sa)} != {sorted(sb)}"
        for k in sb:
            assert_close(sa[k], sb[k], rtol, f"{what} param {i} slot {k!r}")


def lockstep(ours_opt, theirs_opt, ours, theirs, grads, rtol, what="", state=True, between=None, slot_filter=None):
    """Step both optimizers with the same grads, comparing params (and state slots) after every step."""
    for t, gs in enumerate(grads):
        set_grads(ours, gs)
        set_grads(theirs, gs)
        ours_opt.step()
        theirs_opt.step()
        compare(ours_opt, theirs_opt, ours, theirs, rtol, f"{what} step {t + 1}", state=state,
                slot_filter=slot_filter)
        if between:
            between(t)


class SmallNet(torch.nn.Module):
    """A model with the shapes timm's grouping rules care about: conv, norm, linear, biases, a frozen param,
    a ``no_weight_decay()`` name and a ``group_matcher`` for layer decay."""

    def __init__(self):
        super().__init__()
        # no bias before BatchNorm (as in ResNets): that bias's grad is pure rounding noise (~1e-17), which
        # optimizers with a tiny eps (LaProp 1e-15, NovoGrad, Adafactor 1e-30) amplify into different updates
        self.stem = torch.nn.Conv2d(2, 4, 3, bias=False)
        self.norm = torch.nn.BatchNorm2d(4)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(4, 4) for _ in range(3)])
        self.pos = torch.nn.Parameter(torch.randn(1, 4))
        self.head = torch.nn.Linear(4, 3)
        self.frozen = torch.nn.Parameter(torch.randn(2), requires_grad=False)

    def no_weight_decay(self):
        return {"pos"}

    def group_matcher(self, coarse=False):
        return {"stem": r"^stem|^norm|^pos", "blocks": r"^blocks\.(\d+)"}

    def forward(self, x):
        # a nonlinearity between the norm and the pooling, so the norm's weight gets a real gradient (with a
        # plain mean right after BatchNorm it is rounding noise around 0, as the conv bias would be)
        y = torch.relu(self.norm(self.stem(x))).mean(dim=(2, 3)) + self.pos
        for b in self.blocks:
            y = torch.tanh(b(y))
        return self.head(y)


def make_net(seed=0):
    torch.manual_seed(seed)
    return SmallNet().double()


def train_steps(model, opt, steps, seed=3, scheduler=None, per_update=False, create_graph=False, torch_seed=None):
    """A few forward/backward/step iterations on fixed random data; returns the flat params after each.

    ``create_graph``: ``backward(create_graph=True)`` (second-order optimizers, as timm's train loop does);
    ``torch_seed``: seed torch's global RNG first (optimizers that draw from it, e.g. timm's Kron)."""
    import warnings

    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64) for _ in range(steps)]
    if torch_seed is not None:
        torch.manual_seed(torch_seed)
    out = []
    for t, x in enumerate(xs):
        opt.zero_grad()
        loss = model(x).square().mean()
        with warnings.catch_warnings():  # torch warns of the param <-> grad reference cycle (zero_grad breaks it)
            warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
            loss.backward(create_graph=create_graph)
        opt.step()
        if scheduler is not None:
            if per_update:
                scheduler.step_update(num_updates=t + 1)
            else:
                scheduler.step(t + 1)
        out.append(torch.cat([p.detach().flatten() for p in model.parameters()]).clone())
    return out


def torch_anchored():
    """registry name per torch.optim class (the first name, sorted, whose anchor is that class)."""
    import arrayoptim as ao

    out = {}
    for name in ao.list_optimizers():
        anchor = ao.get_optimizer_info(name).anchor
        if anchor.startswith("torch.optim.") and hasattr(torch.optim, anchor.split(".")[-1]):
            out.setdefault(anchor.split(".")[-1], name)
    return out


def step_takes(name, *kws):
    """Whether the registered step of ``name`` takes any of the keywords ``kws`` (closure, grad_mask, ...)."""
    import arrayoptim as ao

    return any(ao.get_optimizer_info(name).takes(k) for k in kws)
