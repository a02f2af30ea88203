"""Parity harness for the oracle suites: a re-export of :mod:`arrayoptim.verify`, where the machinery lives once.

``check_parity``, ``hparams_from_torch``, ``make_params``, ``grad_schedule``, ``assert_close``,
``torch_default_dtype``, ``to_py`` and ``SELECTORS`` keep their names and signatures; see ``arrayoptim/verify.py``
for the comparison (params and every state slot after each step, then a re-sync from the oracle).
"""
from __future__ import annotations

from arrayoptim.verify import (  # noqa: F401  (re-exported)
    SELECTORS,
    OracleError,
    ParityResult,
    TimmStateView,
    _np,
    _resync,
    assert_close,
    check_parity,
    grad_schedule,
    hparams_from_torch,
    make_params,
    rel_diff,
    run_parity,
    to_py,
    torch_default_dtype,
)
