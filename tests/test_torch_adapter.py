"""ArrayOptimizer against torch.optim: every registered name anchored on a torch.optim class, over torch's own
optim_db configurations, in float64 (1e-9 relative, params and every state slot after every step); dtypes, layouts,
zero copy, groups, schedulers, GradScaler and hooks (state_dict interop: test_torch_adapter_state.py).
"""
from __future__ import annotations

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arrayoptim.torch import ArrayOptimizer  # noqa: E402
from arrayoptim.torch import _bridge  # noqa: E402
from oracles import hparams_from_torch, torch_default_dtype  # noqa: E402
from test_torch_adapter_support import (  # noqa: E402
    step_takes, torch_anchored,
    compare, grads_for, lockstep, make_tensors, set_grads, twin,
)

RTOL = 1e-9
#: documented differences of the core (not of the adapter): torch's Muon runs Newton-Schulz in bfloat16
CLASS_RTOL = {"Muon": 2e-3}


TORCH_ANCHORED = torch_anchored()
#: driven by grads alone (sparse-gradient and closure-driven classes have their own tests)
DENSE = {c: n for c, n in TORCH_ANCHORED.items() if not step_takes(n, "grad_mask", "closure")}
CLOSURE = {c: n for c, n in TORCH_ANCHORED.items() if step_takes(n, "closure")}


def _grid(classes):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from torch.testing._internal.common_optimizers import optim_db
        except Exception:  # pragma: no cover - expecttest missing
            return []
    out = []
    for info in optim_db:
        cls = info.optim_cls
        if cls.__name__ not in classes:
            continue
        for inp in info.optim_inputs_func(device="cpu", dtype=torch.float64):
            out.append(pytest.param(cls, dict(inp.kwargs), id=f"{cls.__name__}-{inp.desc.replace(' ', '_')}"))
    return out


GRID = _grid(DENSE)
CLOSURE_GRID = _grid(CLOSURE)


def _tensors_for(cls, kwargs):
    """The standard tensor set, or its 2-D members for classes that only take matrices (torch's Muon)."""
    ts = make_tensors()
    try:
        probe = cls(twin(ts), **kwargs)
        set_grads(probe.param_groups[0]["params"], [torch.ones(p.shape, dtype=p.dtype) for p in ts])
        probe.step()
    except (ValueError, RuntimeError):
        ts = [t for t in ts if t.ndim == 2]
    return ts


@pytest.mark.oracle
@pytest.mark.parametrize("cls, kwargs", GRID)
def test_optim_db_configuration_matches_torch(cls, kwargs):
    name = DENSE[cls.__name__]
    with torch_default_dtype(torch.float64):
        ts = _tensors_for(cls, kwargs)
        probe = cls([torch.zeros(2, 2, requires_grad=True)], **kwargs)
        ours, theirs = twin(ts), twin(ts)
        a = ArrayOptimizer(ours, opt=name, **hparams_from_torch(probe.defaults, name))
        b = cls(theirs, **kwargs)
        lockstep(a, b, ours, theirs, grads_for(ts, 10, missing=len(ts) > 3), CLASS_RTOL.get(cls.__name__, RTOL),
                 cls.__name__)


@pytest.mark.oracle
@pytest.mark.parametrize("cls, kwargs", CLOSURE_GRID)
def test_closure_driven_configuration_matches_torch(cls, kwargs):
    """LBFGS-style classes: ``step(closure)`` on a quadratic; the adapter's closure sets the params to each point
    the core evaluates. Params and the returned loss are compared (the state layouts differ, see the docs)."""
    name = CLOSURE[cls.__name__]
    with torch_default_dtype(torch.float64):
        ts = [t for t in make_tensors() if t.is_contiguous()]  # torch's LBFGS .view(-1)s the grads
        sign = -1.0 if kwargs.get("maximize") else 1.0
        g = torch.Generator().manual_seed(4)
        targets = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in ts]
        weights = [torch.rand(t.shape, generator=g, dtype=torch.float64) + 0.5 for t in ts]
        probe = cls([torch.zeros(2, 2, requires_grad=True)], **kwargs)
        ours, theirs = twin(ts), twin(ts)
        a = ArrayOptimizer(ours, opt=name, **hparams_from_torch(probe.defaults, name))
        b = cls(theirs, **kwargs)

        def closure_for(opt, ps):
            def closure():
                opt.zero_grad()
                loss = sign * sum((w * (p - c) ** 2).sum() + 0.1 * (p ** 4).sum()
                                  for p, c, w in zip(ps, targets, weights))
                loss.backward()
                return loss
            return closure

        for t in range(3):
            la, lb = a.step(closure_for(a, ours)), b.step(closure_for(b, theirs))
            la, lb = la.item(), lb.item()
            assert abs(la - lb) <= RTOL * max(1.0, abs(lb)), f"step {t + 1} loss"
            compare(a, b, ours, theirs, RTOL, f"{cls.__name__} step {t + 1}", state=False)
        with pytest.raises(TypeError, match="closure"):
            a.step()


def test_grid_covers_every_torch_anchored_name():
    assert GRID, "torch's optim_db grid is empty (expecttest missing, or the mapping broke)"
    assert {p.values[0].__name__ for p in GRID} == set(DENSE)


# ----------------------------------------------------------------------------------------------- zero copy

def test_zero_copy_params_and_state_keep_their_storage():
    ts = make_tensors()
    opt = ArrayOptimizer(ts, opt="adamw", lr=0.1)
    ptrs = [p.data_ptr() for p in ts]
    set_grads(ts, [torch.ones_like(p) for p in ts])
    opt.step()
    state_ptrs = {(i, k): v.data_ptr() for i, p in enumerate(ts) for k, v in opt.state[p].items()}
    for gs in grads_for(ts, 5, missing=False):
        set_grads(ts, gs)
        opt.step()
    assert [p.data_ptr() for p in ts] == ptrs
    assert {(i, k): v.data_ptr() for i, p in enumerate(ts) for k, v in opt.state[p].items()} == state_ptrs
    assert all(isinstance(v, torch.Tensor) for p in ts for v in opt.state[p].values())
    assert not ts[4].is_contiguous() and ts[4].stride() == (1, 6)  # the transposed param stayed as it was


def test_lazily_created_slot_is_torch_allocated_and_stable():
    ts = make_tensors()
    opt = ArrayOptimizer(ts, opt="momentum", lr=0.1, momentum=0.9)
    set_grads(ts, [torch.ones_like(p) for p in ts])
    opt.step()
    buf = opt.state[ts[1]]["momentum_buffer"]
    ptr = buf.data_ptr()
    opt.step()
    assert opt.state[ts[1]]["momentum_buffer"].data_ptr() == ptr
    assert buf.dtype == torch.float64 and buf.shape == ts[1].shape


def test_views_are_numpy_views_of_the_torch_storage():
    t = torch.zeros(3, 4, dtype=torch.float32).t()
    b = _bridge.bind(t)
    assert not b.copied and isinstance(b.array, np.ndarray)
    b.array[0, 0] = 5.0
    assert t[0, 0].item() == 5.0


def test_import_arrayoptim_does_not_import_torch():
    code = "import sys, arrayoptim; assert 'torch' not in sys.modules and 'arrayoptim.torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------------------------- dtypes / layouts

@pytest.mark.oracle
@pytest.mark.parametrize("dtype, rtol", [(torch.float32, 2e-5), (torch.float64, RTOL)], ids=["float32", "float64"])
@pytest.mark.parametrize("clsname", ["AdamW", "SGD"])
def test_float_dtypes_match_torch(dtype, rtol, clsname):
    kwargs = {"lr": 0.01, "weight_decay": 0.1} if clsname == "AdamW" else {"lr": 0.01, "momentum": 0.9}
    ts = make_tensors(dtype)
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours, opt=TORCH_ANCHORED[clsname], **_all_hparams(clsname, kwargs))
    b = getattr(torch.optim, clsname)(theirs, **kwargs)
    lockstep(a, b, ours, theirs, grads_for(ts, 8), rtol, clsname)
    assert all(v.dtype == dtype for p in ours for k, v in a.state[p].items() if k != "step")


def _all_hparams(clsname, kwargs):
    name = TORCH_ANCHORED[clsname]
    return hparams_from_torch(getattr(torch.optim, clsname)([torch.zeros(1, requires_grad=True)], **kwargs).defaults,
                              name)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype, tol", [(torch.float16, 2e-3), (torch.bfloat16, 2e-2)], ids=["float16", "bfloat16"])
def test_low_precision_follows_torch(dtype, tol):
    """Half params through the adapter (zero-copy float16 NumPy views; bfloat16 as torch tensors): computed in
    float32 and rounded once per stored value, state kept in the param's dtype like torch's. torch rounds after
    every op, so where its float16 ``exp_avg_sq`` underflows to 0 its denominator is ``eps`` alone while ours is
    ``|g| + eps`` within the step (``tests/test_half_opmath.py`` bounds that gap): eps=1e-2 keeps it under the
    tolerance here (eps=1e-8 underflows to 0 in float16)."""
    ts = make_tensors(dtype)
    ours, theirs = twin(ts), twin(ts)
    kwargs = {"lr": 0.01, "weight_decay": 0.1, "eps": 1e-2}
    a = ArrayOptimizer(ours, opt="adamw", **_all_hparams("AdamW", kwargs))
    b = torch.optim.AdamW(theirs, **kwargs)
    ptrs = [p.data_ptr() for p in ours]
    lockstep(a, b, ours, theirs, grads_for(ts, 6), tol, str(dtype))
    assert [p.data_ptr() for p in ours] == ptrs
    assert all(a.state[p]["exp_avg"].dtype == dtype for p in ours)
    assert a.state[ours[0]]["step"].dtype == torch.float32


def test_bfloat16_is_float32_math_rounded_once():
    ts = make_tensors(torch.bfloat16)
    ref = [t.detach().float().clone().requires_grad_() for t in ts]
    a = ArrayOptimizer(ts, opt="sgd", lr=0.1, momentum=0.0, nesterov=False)
    b = ArrayOptimizer(ref, opt="sgd", lr=0.1, momentum=0.0, nesterov=False)
    gs = [torch.randn(p.shape).to(torch.bfloat16) for p in ts]
    set_grads(ts, gs)
    set_grads(ref, [g.float() for g in gs])
    a.step()
    b.step()
    for p, r in zip(ts, ref):
        assert torch.equal(p.detach(), r.detach().to(torch.bfloat16))


def test_neg_bit_param_is_updated_with_its_sign():
    base = torch.randn(5, dtype=torch.float64)
    p = torch._neg_view(base.clone()).requires_grad_()
    q = p.detach().resolve_neg().clone().requires_grad_()
    assert p.is_neg()
    a = ArrayOptimizer([p], opt="adamw", lr=0.1)
    b = torch.optim.AdamW([q], lr=0.1)
    lockstep(a, b, [p], [q], [[torch.randn(5, dtype=torch.float64)] for _ in range(4)], RTOL, "neg-bit")


def test_read_only_view_takes_the_copy_path(monkeypatch):
    monkeypatch.setattr(_bridge, "_writeable", lambda a: False)
    ts = make_tensors()
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours, opt="adamw", lr=0.1)
    b = torch.optim.AdamW(theirs, lr=0.1)
    ptrs = [p.data_ptr() for p in ours]
    lockstep(a, b, ours, theirs, grads_for(ts, 4), RTOL, "read-only")
    assert [p.data_ptr() for p in ours] == ptrs


def test_to_torch_normalises_negative_strides():
    a = np.arange(6.0)[::-1]
    t = _bridge.to_torch(a)
    assert t.tolist() == a.tolist() and t.is_contiguous()
    z = _bridge.to_torch(np.float64(2.0))
    assert z.shape == () and z.item() == 2.0


def test_frozen_and_gradless_params_are_untouched():
    ts = make_tensors()
    ts[2].requires_grad_(False)
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours, opt="adamw", lr=0.1)
    b = torch.optim.AdamW(theirs, lr=0.1)
    gs = [[None if i == 2 else g for i, g in enumerate(step)] for step in grads_for(ts, 5)]
    lockstep(a, b, ours, theirs, gs, RTOL, "frozen")
    assert ours[2] not in a.state or not a.state[ours[2]]


def test_expanded_param_is_refused():
    p = torch.zeros(1, dtype=torch.float64).expand(3).requires_grad_()
    opt = ArrayOptimizer([p], opt="sgd", lr=0.1)
    p.grad = torch.ones(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="internal overlap"):
        opt.step()


def test_complex_and_unknown_arguments_are_refused():
    with pytest.raises(TypeError, match="complex"):
        ArrayOptimizer([torch.zeros(2, dtype=torch.complex64, requires_grad=True)], opt="adamw")
    with pytest.raises(TypeError, match="bogus"):
        ArrayOptimizer([torch.zeros(2, requires_grad=True)], opt="adamw", bogus=1)
    with pytest.raises(ValueError, match="lr"):
        ArrayOptimizer([torch.zeros(2, requires_grad=True)], opt="adamw", lr=-1.0)
    with pytest.raises(ValueError, match="param group 1"):
        ArrayOptimizer([{"params": [torch.zeros(2, requires_grad=True)]},
                        {"params": [torch.zeros(2, requires_grad=True)], "lr": -1.0}], opt="adamw")
    with pytest.raises(TypeError, match="opt"):
        ArrayOptimizer([torch.zeros(2, requires_grad=True)], opt=3)


def test_sparse_grad_refused_by_dense_optimizers():
    p = torch.zeros(4, 2, dtype=torch.float64, requires_grad=True)
    opt = ArrayOptimizer([p], opt="adam")
    p.grad = torch.sparse_coo_tensor([[0, 2]], torch.ones(2, 2, dtype=torch.float64), (4, 2), check_invariants=True)
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()


@pytest.mark.oracle
def test_sparseadam_with_embedding_grads_matches_torch():
    assert "SparseAdam" in TORCH_ANCHORED, "sparseadam no longer maps to torch.optim.SparseAdam"
    torch.manual_seed(0)
    e1 = torch.nn.Embedding(10, 3, sparse=True).double()
    e2 = copy.deepcopy(e1)
    a = ArrayOptimizer(e1.parameters(), opt=TORCH_ANCHORED["SparseAdam"], lr=0.05)
    b = torch.optim.SparseAdam(e2.parameters(), lr=0.05)
    for t in range(6):
        idx = torch.tensor([[t % 10, 3, 3], [7, (2 * t) % 10, 1]])
        for e, o in ((e1, a), (e2, b)):
            o.zero_grad()
            e(idx).square().sum().backward()
            o.step()
        compare(a, b, list(e1.parameters()), list(e2.parameters()), RTOL, f"sparseadam step {t + 1}")
    e1.weight.grad = torch.ones_like(e1.weight)
    with pytest.raises(RuntimeError, match="dense"):
        a.step()


# ----------------------------------------------------------------------------------------------- groups / drivers

@pytest.mark.oracle
def test_param_groups_with_their_own_lr_match_torch():
    ts = make_tensors()
    ours, theirs = twin(ts), twin(ts)

    def groups(ps):
        return [{"params": ps[:2]}, {"params": ps[2:4], "lr": 0.03, "weight_decay": 0.0}, {"params": ps[4:], "lr": 0.002}]

    a = ArrayOptimizer(groups(ours), opt="adamw", lr=0.01, weight_decay=0.05)
    b = torch.optim.AdamW(groups(theirs), lr=0.01, weight_decay=0.05)
    lockstep(a, b, ours, theirs, grads_for(ts, 6), RTOL, "groups")
    # groups edited between steps are read at the next step
    a.param_groups[1]["lr"] = b.param_groups[1]["lr"] = 0.5
    lockstep(a, b, ours, theirs, grads_for(ts, 3, seed=9), RTOL, "edited group")


@pytest.mark.oracle
def test_add_param_group_matches_torch():
    ts = make_tensors()
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours[:3], opt="adamw", lr=0.01)
    b = torch.optim.AdamW(theirs[:3], lr=0.01)
    lockstep(a, b, ours[:3], theirs[:3], [g[:3] for g in grads_for(ts, 3, missing=False)], RTOL, "before")
    a.add_param_group({"params": ours[3:], "lr": 0.1})
    b.add_param_group({"params": theirs[3:], "lr": 0.1})
    lockstep(a, b, ours, theirs, grads_for(ts, 4, seed=5), RTOL, "after")


@pytest.mark.oracle
def test_one_cycle_lr_drives_it_like_torch():
    ts = make_tensors()
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours, opt="adamw", lr=0.01)
    b = torch.optim.AdamW(theirs, lr=0.01)
    sa = torch.optim.lr_scheduler.OneCycleLR(a, max_lr=0.1, total_steps=12)
    sb = torch.optim.lr_scheduler.OneCycleLR(b, max_lr=0.1, total_steps=12)

    def tick(t):
        sa.step()
        sb.step()
        assert a.param_groups[0]["lr"] == b.param_groups[0]["lr"]
        assert a.param_groups[0]["betas"] == b.param_groups[0]["betas"]  # cycle_momentum drives beta1

    lockstep(a, b, ours, theirs, grads_for(ts, 11), RTOL, "OneCycleLR", between=tick)


@pytest.mark.oracle
def test_grad_scaler_matches_torch():
    ts = make_tensors(torch.float32)
    ours, theirs = twin(ts), twin(ts)
    a = ArrayOptimizer(ours, opt="adamw", lr=0.01)
    b = torch.optim.AdamW(theirs, lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc_a, sc_b = torch.amp.GradScaler("cpu", init_scale=1024.0), torch.amp.GradScaler("cpu", init_scale=1024.0)
    for t, gs in enumerate(grads_for(ts, 6, missing=False)):
        if t == 3:
            gs[1] = gs[1].clone()
            gs[1][0, 0] = float("inf")  # an overflow: both skip the step and lower the scale
        for ps, opt, sc in ((ours, a, sc_a), (theirs, b, sc_b)):
            sc.scale(torch.zeros(()))  # the scaler initialises its scale lazily here
            set_grads(ps, [g * sc.get_scale() for g in gs])
            sc.step(opt)
            sc.update()
        assert sc_a.get_scale() == sc_b.get_scale()
        compare(a, b, ours, theirs, 2e-6, f"GradScaler step {t + 1}")


def test_closure_hooks_zero_grad_repr_and_deepcopy():
    ts = make_tensors()
    opt = ArrayOptimizer(ts, opt="adamw", lr=0.1, foreach=None)
    calls = []
    opt.register_step_pre_hook(lambda o, args, kw: calls.append("pre"))
    opt.register_step_post_hook(lambda o, args, kw: calls.append("post"))
    opt.register_state_dict_post_hook(lambda o, sd: calls.append("sd"))

    def closure():
        opt.zero_grad()
        loss = sum((p * p).sum() for p in ts)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and calls == ["pre", "post"]
    opt.state_dict()
    assert calls[-1] == "sd"
    assert "ArrayOptimizer (" in repr(opt) and "lr: 0.1" in repr(opt) and "foreach: None" in repr(opt)
    opt.zero_grad(set_to_none=False)
    assert all(torch.count_nonzero(p.grad) == 0 for p in ts)
    opt.zero_grad()
    assert all(p.grad is None for p in ts)
    clone = copy.deepcopy(opt)
    assert clone.opt_name == "adamw" and clone.state_dict()["state"][0]["step"].item() == 1
    cp = clone.param_groups[0]["params"]
    set_grads(cp, [torch.ones_like(p) for p in cp])
    set_grads(ts, [torch.ones_like(p) for p in ts])
    clone.step()
    opt.step()
    for x, y in zip(cp, ts):
        assert torch.equal(x, y)


# state_dict interop: tests/test_torch_adapter_state.py


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (and CuPy)")
def test_cuda_views_match_torch():  # pragma: no cover - only where CUDA exists
    pytest.importorskip("cupy")
    ts = [t.detach().cuda().requires_grad_() for t in make_tensors()]
    ours, theirs = twin_cuda(ts), twin_cuda(ts)
    a = ArrayOptimizer(ours, opt="adamw", lr=0.1)
    b = torch.optim.AdamW(theirs, lr=0.1, foreach=False)
    ptrs = [p.data_ptr() for p in ours]
    lockstep(a, b, ours, theirs, [[None if g is None else g.cuda() for g in s] for s in grads_for(ts, 5)], 1e-9,
             "cuda")
    assert [p.data_ptr() for p in ours] == ptrs


def twin_cuda(ts):
    return [t.detach().clone().requires_grad_() for t in ts]


def test_a_failing_step_leaves_torch_params_and_state_unchanged():
    """A step that raises (an invalid lr written into a param group, as a buggy scheduler might) changes nothing."""
    torch.manual_seed(0)
    params = [torch.randn(4, 3, dtype=torch.float64, requires_grad=True),
              torch.randn(3, dtype=torch.float64, requires_grad=True)]
    opt = ArrayOptimizer([{"params": [params[0]]}, {"params": [params[1]], "lr": 0.1}], opt="adamw", lr=0.01)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    before_p = [p.detach().clone() for p in params]
    before_s = {i: {k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()}
                for i, p in enumerate(params)}
    opt.param_groups[1]["lr"] = -1.0  # the second group fails validation after the first group is fine
    for p in params:
        p.grad = torch.randn_like(p)
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    for p, b in zip(params, before_p):
        assert torch.equal(p.detach(), b)
    for i, p in enumerate(params):
        for k, v in before_s[i].items():
            assert torch.equal(opt.state[p][k], v) if torch.is_tensor(v) else opt.state[p][k] == v
