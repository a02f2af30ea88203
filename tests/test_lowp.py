"""arrayoptim._lowp: bfloat16/float16/float32 storage emulated with standard arithmetic, against torch's CPU
conversions and ``lerp_`` bit for bit (torch is the oracle: these are the roundings timm's buffers see)."""
from __future__ import annotations

import numpy as np
import pytest

from arrayoptim import _lowp

torch = pytest.importorskip("torch")
array_api_strict = pytest.importorskip("array_api_strict")

pytestmark = pytest.mark.oracle

TORCH_DTYPE = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
N = 300_000


def _wide_values(rng, dtype):
    x = rng.standard_normal(N) * np.exp(rng.uniform(-30, 30, N))
    specials = [0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.0, 65520.0, -65520.0, 1e5, 6e-8, 3e-8, 1e-40, 3.3e38]
    return np.concatenate([x, specials]).astype(dtype)


def _torch_round(x, name):
    return torch.from_numpy(x).to(TORCH_DTYPE[name]).to(torch.from_numpy(x).dtype).numpy()


@pytest.mark.parametrize("src", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
def test_round_to_is_torchs_conversion(name, src):
    """Ties, subnormals and overflow included; float64 goes through float32 first, as torch converts it."""
    x = _wide_values(np.random.default_rng(0), src)
    with np.errstate(over="ignore"):
        ours = _lowp.round_to(np, x, name)
    np.testing.assert_array_equal(ours, _torch_round(x, name))
    assert ours.dtype == x.dtype


def test_direct_rounding_of_float64_differs_from_torch():
    """The reason for :func:`round_to`'s detour through float32: rounding float64 straight to bfloat16 is a
    different function (a test that would pass with either is no test)."""
    x = _wide_values(np.random.default_rng(1), np.float64)
    with np.errstate(over="ignore"):
        direct = _lowp.round_to_bfloat16(np, x)
    assert np.sum(direct != _torch_round(x, "bfloat16")) > 0


@pytest.mark.parametrize("w", [0.1, 1 - 0.9, 0.3, 0.5, 0.75, 1.0])
@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("src", [np.float32, np.float64])
def test_lowp_lerp_is_torchs_lerp(name, w, src):
    """``a.lerp_(b.to(fmt), w)`` on a tensor stored in ``fmt``: both branches of torch's formula (w < 0.5 and not),
    inputs of very different magnitudes (so ``b - a`` is rounded), bit for bit."""
    rng = np.random.default_rng(2)
    a = _lowp.round_to(np, (rng.standard_normal(N) * np.exp(rng.uniform(-3, 3, N))).astype(src), name)
    b = (a * rng.uniform(-2, 2, N) + rng.standard_normal(N) * np.exp(rng.uniform(-12, 3, N))).astype(src)
    ta = torch.from_numpy(a.copy()).to(TORCH_DTYPE[name])  # (a float32 .to(float32) would alias a)
    ta.lerp_(torch.from_numpy(b).to(TORCH_DTYPE[name]), w)
    ours = _lowp.lowp_lerp(np, a, b, w, name)
    assert ours.dtype == a.dtype
    np.testing.assert_array_equal(ours, ta.to(torch.from_numpy(a).dtype).numpy())


def test_lowp_lerp_on_array_api_strict_and_its_second_device():
    xp = array_api_strict
    rng = np.random.default_rng(3)
    a = _lowp.round_to(np, rng.standard_normal(1000), "bfloat16")
    b = rng.standard_normal(1000)
    want = _lowp.lowp_lerp(np, a, b, 0.1, "bfloat16")
    dev = xp.Device("device1")
    got = _lowp.lowp_lerp(xp, xp.asarray(a, device=dev), xp.asarray(b, device=dev), 0.1, "bfloat16")
    assert got.device == dev and got.dtype == xp.float64
    np.testing.assert_array_equal(np.asarray(got.to_device(xp.Device("CPU_DEVICE"))), want)


def test_jax_without_x64_steps_in_float32_without_warnings():
    """JAX without ``jax_enable_x64`` has no float64 (``astype`` warns and truncates): the emulation then computes
    in float32 and never asks for float64 (a subprocess: the test session enables x64 globally)."""
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    code = """if True:
        import jax.numpy as jnp
        import arrayoptim as ao
        opt = ao.create_optimizer('adafactorbv', lr=0.05)
        p = {'w': jnp.ones((20, 18)), 'b': jnp.ones(5)}
        s = opt.init(p)
        for _ in range(3):
            p, s = opt.step(p, {'w': jnp.full((20, 18), 0.3), 'b': jnp.full(5, -0.2)}, s)
        assert p['w'].dtype == jnp.float32 and s['w']['exp_avg'].dtype == jnp.float32
        m = s['w']['exp_avg']
        assert bool((m.astype(jnp.bfloat16).astype(jnp.float32) == m).all())  # bfloat16 values
    """
    env = {**os.environ, "JAX_ENABLE_X64": "0", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
