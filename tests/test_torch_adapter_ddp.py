"""DDP (gloo, 2 processes on 127.0.0.1) with ArrayOptimizer: both ranks stay identical and equal torch's AdamW."""
from __future__ import annotations

import socket

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.oracle]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    import torch.distributed as dist

    from arrayoptim.torch import ArrayOptimizer

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    ref = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    ref.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = ArrayOptimizer(ddp.parameters(), opt="adamw", lr=0.05, weight_decay=0.1)
    ref_opt = torch.optim.AdamW(ref.parameters(), lr=0.05, weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        xs = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(world)]
        opt.zero_grad()
        ddp(xs[rank]).square().mean().backward()
        opt.step()
        ref_opt.zero_grad()  # the same global batch, averaged like DDP averages the ranks' grads
        (sum(ref(x).square().mean() for x in xs) / world).backward()
        ref_opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save({"ours": flat, "ref": torch.cat([p.detach().flatten() for p in ref.parameters()])},
               f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_gloo_two_ranks_match_torch_adamw(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.equal(r0["ours"], r1["ours"])
    torch.testing.assert_close(r0["ours"], r0["ref"], rtol=1e-9, atol=1e-12)
