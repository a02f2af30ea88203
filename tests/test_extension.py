"""A third-party optimizer, registered from a module outside the package with public names only
(``tests/extension/toy_sgd.py``), gets everything a built-in one gets: ``create_optimizer``, flat mode (it is
element-wise), the torch adapter, checkpoints, ``verify`` against its anchor, and the contract suite.

Each check runs in a subprocess, so the toy never enters this process's registry (other suites count names)."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

TESTS = pathlib.Path(__file__).parent
EXT = TESTS / "extension"


def _run(code: str = "", args: list[str] | None = None, env_extra: dict | None = None, timeout: int = 300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(EXT), str(TESTS), os.environ.get("PYTHONPATH", "")]),
           **(env_extra or {})}
    cmd = [sys.executable] + (args if args is not None else ["-c", textwrap.dedent(code)])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=TESTS.parent)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"
    return r.stdout


def test_toy_module_uses_public_names_only():
    import ast

    tree = ast.parse((EXT / "toy_sgd.py").read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    private = sorted(m for m in modules if m.startswith("arrayoptim") and any(
        part.startswith("_") for part in m.split(".")))
    assert "arrayoptim" in modules and not private, private
    attrs = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
             and isinstance(n.value, ast.Name) and n.value.id == "ao"}
    assert attrs and not any(a.startswith("_") for a in attrs), attrs


@pytest.mark.oracle
def test_toy_through_create_optimizer_flat_adapter_checkpoint_and_verify(tmp_path):
    out = _run(f"""
        import numpy as np, torch, arrayoptim as ao
        import toy_sgd  # registers 'toysgd'
        from arrayoptim.torch import ArrayOptimizer
        from arrayoptim.verify import verify_name

        assert 'toysgd' in ao.list_optimizers('toy*')
        rng = np.random.default_rng(0)
        p0 = {{'w': rng.standard_normal((3, 4)), 'b': rng.standard_normal(4)}}
        gs = [{{k: rng.standard_normal(v.shape) for k, v in p0.items()}} for _ in range(5)]
        kw = dict(lr=0.1, momentum=0.9, weight_decay=0.01)

        # functional, against torch.optim.SGD itself
        opt = ao.create_optimizer('toysgd', **kw)
        p, s = dict(p0), opt.init(p0)
        tp = {{k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}}
        ref = torch.optim.SGD(list(tp.values()), **kw)
        for g in gs:
            p, s = opt.step(p, g, s)
            for k, t in tp.items():
                t.grad = torch.tensor(g[k])
            ref.step()
        for k in p0:
            np.testing.assert_allclose(p[k], tp[k].detach().numpy(), rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(s[k]['momentum_buffer'], ref.state[tp[k]]['momentum_buffer'].numpy(),
                                       rtol=1e-12, atol=1e-14)

        # flat mode, bitwise equal to the per-tensor step
        fo = ao.flat(opt)
        fp = fo.pack({{k: v.copy() for k, v in p0.items()}})
        fs = fo.init(fp)
        for g in gs:
            fp, fs = fo.step(fp, fo.pack(g, like=fp), fs)
        assert all(np.array_equal(fo.unpack(fp)[k], p[k]) for k in p0)

        # checkpoint round trip: a resumed run equals the uninterrupted one
        opt2 = ao.create_optimizer('toysgd', **kw)
        q, st = dict(p0), opt2.init(p0)
        for g in gs[:2]:
            q, st = opt2.step(q, g, st)
        ao.save_checkpoint({str(tmp_path / 'ck.npz')!r}, opt2, st)
        opt3, st3 = ao.load_checkpoint({str(tmp_path / 'ck.npz')!r}, q)
        assert opt3.name == 'toysgd' and opt3.hyperparams == opt2.hyperparams
        for g in gs[2:]:
            q, st3 = opt3.step(q, g, st3)
        assert all(np.array_equal(q[k], p[k]) for k in p0)

        # the torch adapter, against torch.optim.SGD
        ta = {{k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}}
        tb = {{k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}}
        ours, theirs = ArrayOptimizer(list(ta.values()), opt='toysgd', **kw), torch.optim.SGD(list(tb.values()), **kw)
        for g in gs:
            for k in p0:
                ta[k].grad, tb[k].grad = torch.tensor(g[k]), torch.tensor(g[k])
            ours.step(); theirs.step()
        for k in p0:
            torch.testing.assert_close(ta[k], tb[k], rtol=1e-12, atol=1e-14)
        sd = ours.state_dict()
        assert sorted(sd['state'][0]) == ['momentum_buffer']

        # verify, against its declared anchor
        label, res = verify_name('toysgd')
        assert label == 'torch.optim.SGD' and res.passed and res.max_param_diff < 1e-14, (label, res)
        print('OK')
        """)
    assert out.strip().endswith("OK")


def test_contract_suite_runs_on_the_toy():
    out = _run(args=["-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", str(TESTS / "test_contract.py"),
                     "-k", "toysgd and not cupy"], env_extra={"ARRAYOPTIM_TEST_EXTENSIONS": "toy_sgd"}, timeout=600)
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) >= 10, out[-2000:]
    assert "failed" not in out and "error" not in out.lower().split("passed")[-1], out[-2000:]
