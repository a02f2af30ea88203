"""Optimizers that timm steps with per-group counters (Adan's and LAMB's ``group['step']``, Lookahead's
``group['lookahead_step']``) through the adapter: with params that miss grads, get their first grad late, and two
param groups, the trajectory equals timm's (float64, 1e-10 relative). The adapter keeps each counter where timm does,
in the group dict, and advances it on every step, also for a group in which no param has a grad (timm counts it);
see tests/test_counters.py for the whole state_dict."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
timm_optim = pytest.importorskip("timm.optim")

from arrayoptim.torch import create_optimizer_v2  # noqa: E402
from oracles import torch_default_dtype  # noqa: E402
from test_torch_adapter_support import assert_close  # noqa: E402

pytestmark = pytest.mark.oracle


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 3, generator=g).requires_grad_(), torch.randn(3, generator=g).requires_grad_(),
            torch.randn(5, generator=g).requires_grad_(), torch.randn(2, 2, generator=g).requires_grad_()]


def _missing(i, t):
    """p0 misses step 5, p1 steps 5, 6 and 12 (the first Lookahead sync is step 6), and p2 gets its first grad at
    step 5: then it is the only param of its group with a grad, and the group's count is in the others' slots.
    p3, alone in group 1, misses steps 8 and 9: timm still counts them for its group (and so does the adapter)."""
    return (i == 0 and t == 4) or (i == 1 and t in (4, 5, 11)) or (i == 2 and t < 4) or (i == 3 and t in (7, 8))


@pytest.mark.parametrize("name", ["adan", "lamb", "lookahead_adamw", "lookahead_adan"])
def test_group_counters_match_timm_with_missing_grads(name):
    with torch_default_dtype(torch.float64):
        ours, theirs = _tensors(), _tensors()
        groups = lambda ts: [{"params": ts[:3]}, {"params": ts[3:], "lr": 0.02}]  # noqa: E731
        kw = {"lr": 0.01, "weight_decay": 0.05}
        a = create_optimizer_v2(groups(ours), opt=name, **kw)
        b = timm_optim.create_optimizer_v2(groups(theirs), opt=name, **kw)
        g = torch.Generator().manual_seed(1)
        for t in range(13):
            for i, (p, q) in enumerate(zip(ours, theirs)):
                grad = None if _missing(i, t) else torch.randn(p.shape, generator=g)
                p.grad, q.grad = grad, None if grad is None else grad.clone()
            a.step()
            b.step()
            for i, (p, q) in enumerate(zip(ours, theirs)):
                assert_close(p, q, 1e-10, f"{name} step {t + 1} param {i}")
        counter = "lookahead_step" if name.startswith("lookahead_") else "step"
        for ga, gb in zip(a.param_groups, b.param_groups):
            assert type(ga[counter]) is type(gb[counter]) and float(ga[counter]) == float(gb[counter]) == 13
        assert not any(counter in st for st in a.state.values())  # in the group only, as timm
