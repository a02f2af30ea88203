"""Parity with the real thing: run torch.optim / timm beside arrayoptim and compare after every step.

``arrayoptim.testing`` is the one parity harness of the project, a documented library part: the oracle test
suites (``tests/test_oracle_*.py``, through ``tests/oracles.py``), ``arrayoptim verify`` (through
:mod:`arrayoptim.verify`) and third-party optimizers use it. It is split by part:

=====================  ========================================================================================
:mod:`.problem`        the problem (params of every shape kind, grad streams with missing grads, torch groups)
:mod:`.compare`        the relative difference of arrays, numbers and slot dicts (:func:`rel_diff`)
:mod:`.lockstep`       :func:`run_parity` / :func:`check_parity`: both sides step, compare, re-sync
:mod:`.drivers`        :data:`STEP_INPUT_DRIVERS`: one driver per declared step input (closure, grad_mask,
                       hessian, draws), feeding both sides the same inputs
:mod:`.oracles`        the oracle table from the registry's anchors (:func:`oracle_for`), :func:`verify_name`
                       and :data:`DOCUMENTED_GAPS`
=====================  ========================================================================================

Running an oracle changes nothing outside the run: torch's global RNG state and any timm function a driver swaps
are restored when the run ends.

After each step it compares params **and every state slot** (keys and values), then re-syncs arrayoptim from the
oracle (torch's ``TensorTracker`` idea), so a failure names the first divergent step and slot instead of an
accumulated drift.

The problem always includes a 4-D conv weight, a matrix, a vector, a 0-d param and a non-contiguous (transposed)
param, and steps where some grads are missing.

Optimizers whose step takes more than grads are driven by a :class:`Driver`, chosen by the step's keyword
(:data:`STEP_INPUT_DRIVERS`): ``closure=`` (torch's LBFGS: both sides call a closure of one seeded objective),
``grad_mask=`` (torch's SparseAdam: sparse COO grads for torch, dense grads and a mask for arrayoptim),
``hessian=`` (timm's Adahessian: grads with a graph for timm, timm's own Hutchinson estimate for arrayoptim) and
``draws=`` (timm's Kron: timm's random streams cloned and replayed).

torch and timm are imported lazily, inside the functions that need them: ``import arrayoptim`` (and
``import arrayoptim.testing``) never imports torch.

The relative difference of an array against the oracle's is

.. math::

    d = \\max_i \\frac{|o_i - r_i|}{\\max(1, \\max_j |r_j|) + |r_i|}

(``o`` ours, ``r`` the oracle's; equal NaNs and equal infinities count as 0, any other NaN as ``inf``), so
``d <= rtol`` is exactly ``numpy.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * max(1, max|r|))``. For
Python numbers it is :math:`|o - r| / \\max(1, |r|)`.
"""
from __future__ import annotations

from .compare import DEFAULT_RTOL, assert_close, rel_diff, to_numpy
from .drivers import (KRON_FLOAT32_SOLVE_RTOL, STEP_INPUT_DRIVERS, ClosureDriver, Driver, HutchinsonDriver,
                      ReplayedDrawsDriver, SparseGradDriver, lbfgs_state_as_arrays)
from .lockstep import GROUP_COUNTERS, STEPPED, OracleError, ParityResult, TimmStateView, check_parity, resync, run_parity
from .oracles import DOCUMENTED_GAPS, OracleSpec, Skip, oracle_for, verify_name
from .problem import SELECTORS, grad_schedule, hparams_from_torch, make_params, to_py, torch_default_dtype, torch_groups

__all__ = [
    "SELECTORS", "torch_default_dtype", "to_py", "hparams_from_torch", "make_params", "torch_groups", "grad_schedule",
    "rel_diff", "assert_close", "to_numpy", "ParityResult", "OracleError", "run_parity", "check_parity", "resync",
    "OracleSpec", "Skip", "oracle_for", "verify_name", "DEFAULT_RTOL", "DOCUMENTED_GAPS", "TimmStateView",
    "GROUP_COUNTERS", "STEPPED", "Driver", "ClosureDriver", "SparseGradDriver", "HutchinsonDriver",
    "ReplayedDrawsDriver", "STEP_INPUT_DRIVERS", "KRON_FLOAT32_SOLVE_RTOL", "lbfgs_state_as_arrays",
]
