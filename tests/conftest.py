"""Shared fixtures: the backends declared in ``arrayoptim.backends`` (selectable with ARRAYOPTIM_BACKENDS)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

# property tests are reproducible in CI: a fixed seed profile, bounded examples, no wall-clock deadline
settings.register_profile("arrayoptim", derandomize=True, deadline=None, max_examples=25, print_blob=True)
settings.load_profile("arrayoptim")

from arrayoptim.backends import selected_backends

BACKEND_PARAMS = [pytest.param(b, id=b.name) for b in selected_backends()]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    b = request.param
    if not b.available():
        pytest.skip(f"backend {b.name} is not available here ({b.module} not installed or no device)")
    return b


@pytest.fixture(params=DTYPES)
def dtype(request, backend):
    if request.param == np.float64 and not backend.float64:
        pytest.skip(f"{backend.name} has no float64")
    return request.param
