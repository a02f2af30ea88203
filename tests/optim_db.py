"""The configuration database: every registered optimizer's interesting configurations and expected errors, as data.

Modelled on torch's ``torch/testing/_internal/common_optimizers.py`` (``OptimizerInput`` /
``ErrorOptimizerInput``). The generic suites in ``test_contract.py`` run every name x configuration x backend x
dtype from here; they branch on capability flags, never on names. Adding an optimizer = adding one entry.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class OptimizerInput:
    """Keyword arguments for ``ao.create_optimizer(name, **kwargs)`` and a short description."""

    kwargs: dict[str, Any]
    desc: str = ""


@dataclasses.dataclass(frozen=True)
class ErrorInput:
    """Keyword arguments that must make ``ao.create_optimizer`` raise ``error`` with a message matching ``match``."""

    kwargs: dict[str, Any]
    error: type[Exception]
    match: str
    desc: str = ""


@dataclasses.dataclass(frozen=True)
class DBEntry:
    inputs: tuple[OptimizerInput, ...]
    errors: tuple[ErrorInput, ...] = ()
    #: lr used for the "goes downhill on a quadratic" check (None: the optimizer's default)
    descent_lr: float | None = 0.05
    #: extra keyword arguments for ``opt.step`` given the params of that step (LBFGS's closure, Kron's seed,
    #: Adahessian's Hessian estimate, ...): ``step_kwargs(params, grads) -> dict``
    step_kwargs: Callable[[Any, Any], dict] | None = None
    #: steps taken by the multi-step checks (optimizers that do nothing on step 1 need more)
    steps: int = 4
    #: the generic problem's param shapes, for optimizers that accept only some (torch's Muon: 2-D only).
    #: Same keys as DEFAULT_SHAPES: ``w`` (updated), ``b`` and ``scalar`` (left without grads in some checks),
    #: ``empty`` (a size-0 param, replaced by bad grads in the atomicity check).
    shapes: dict[str, tuple[int, ...]] | None = None
    #: lr=0 leaves params unchanged (False where the math moves anyway: MADGRAD adds eps to lr)
    lr_zero_is_noop: bool = True
    #: the step takes its gradients from a closure (``step_kwargs``), not from ``grads`` (LBFGS)
    grads_from_closure: bool = False


DEFAULT_SHAPES: dict[str, tuple[int, ...]] = {"w": (5, 4), "b": (4,), "scalar": (), "empty": (0, 3)}


def problem_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The param shapes the generic suites use for ``name`` (``lookahead_`` names use their base's)."""
    entry = OPTIM_DB[name.removeprefix("lookahead_")]
    return dict(entry.shapes or DEFAULT_SHAPES)


def _common_errors(*, betas: bool = False, eps: bool = False, momentum: bool = False) -> tuple[ErrorInput, ...]:
    out = [
        ErrorInput({"lr": -1e-2}, ValueError, r"Invalid learning rate: -0.01.*lr", "negative lr"),
        ErrorInput({"lr": float("nan")}, ValueError, r"Invalid learning rate", "nan lr"),
        ErrorInput({"weight_decay": -1.0}, ValueError, r"Invalid weight_decay value: -1.0.*weight_decay", "neg wd"),
        ErrorInput({"no_such_hparam": 1.0}, TypeError, r"unknown hyperparameter 'no_such_hparam'", "unknown"),
        ErrorInput({"lr": "0.1"}, TypeError, r"'lr' must be a real number", "lr as str"),
    ]
    if betas:
        out += [
            ErrorInput({"betas": (1.0, 0.999)}, ValueError, r"Invalid beta parameter at index 0: 1.0", "beta1=1"),
            ErrorInput({"betas": (0.9, -0.1)}, ValueError, r"Invalid beta parameter at index 1: -0.1", "beta2<0"),
            ErrorInput({"betas": (0.9,)}, ValueError, r"Invalid betas", "one beta"),
        ]
    if eps:
        out.append(ErrorInput({"eps": -1e-8}, ValueError, r"Invalid epsilon value: -1e-08.*eps", "negative eps"))
    if momentum:
        out += [
            ErrorInput({"momentum": -0.5}, ValueError, r"Invalid momentum value: -0.5.*momentum", "neg momentum"),
            ErrorInput({"momentum": 0.0, "nesterov": True}, ValueError,
                       r"Nesterov momentum requires a momentum and zero dampening", "nesterov no momentum"),
            ErrorInput({"momentum": 0.9, "dampening": 0.5, "nesterov": True}, ValueError,
                       r"Nesterov momentum requires a momentum and zero dampening", "nesterov dampening"),
        ]
    return tuple(out)


_SGD = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.1, "momentum": 0.0, "nesterov": False}, "plain"),
        OptimizerInput({"lr": 0.1, "momentum": 0.9, "nesterov": False, "dampening": 0.5}, "dampening"),
        OptimizerInput({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.05, "momentum": 0.9, "maximize": True, "weight_decay": 0.01}, "maximize"),
        OptimizerInput({"lr": 0.01, "foreach": True, "fused": False, "differentiable": False}, "selectors ignored"),
    ),
    errors=_common_errors(momentum=True),
)

_SGDW = DBEntry(
    inputs=_SGD.inputs + (
        OptimizerInput({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "caution": True}, "caution"),
        OptimizerInput({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.1, "corrected_weight_decay": True},
                       "corrected decay"),
    ),
    errors=_common_errors(momentum=True) + (
        ErrorInput({"lr": 0.0, "corrected_weight_decay": True}, ValueError,
                   r"Corrected weight decay requires a positive max lr", "corrected with lr=0"),
    ),
)

_ADAM = DBEntry(
    inputs=(
        OptimizerInput({}, "registry defaults"),
        OptimizerInput({"lr": 0.01, "weight_decay": 0.1}, "weight decay"),
        OptimizerInput({"lr": 0.01, "amsgrad": True}, "amsgrad"),
        OptimizerInput({"lr": 0.01, "maximize": True, "amsgrad": True, "weight_decay": 0.1}, "maximize amsgrad wd"),
        OptimizerInput({"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-3}, "betas as list, big eps"),
        OptimizerInput({"lr": 0.01, "capturable": True, "fused": True}, "selectors ignored"),
    ),
    errors=_common_errors(betas=True, eps=True),
)

OPTIM_DB: dict[str, DBEntry] = {  # the core's families; other families live in tests/optim_db_<family>.py
    "sgd": _SGD, "momentum": _SGD, "nesterov": _SGD,
    "sgdw": _SGDW, "nesterovw": _SGDW, "sgdc": _SGDW, "csgdw": _SGDW, "csgdc": _SGDW,
    "adam": _ADAM,
    "adamw": dataclasses.replace(_ADAM, inputs=_ADAM.inputs + (
        OptimizerInput({"lr": 0.01, "weight_decay": 0.0}, "no decay"),)),
}


def _load_family_entries() -> None:
    """Merge ``ENTRIES`` from every ``tests/optim_db_<family>.py`` (one file per optimizer family)."""
    import importlib
    import pathlib

    for path in sorted(pathlib.Path(__file__).parent.glob("optim_db_*.py")):
        entries = importlib.import_module(path.stem).ENTRIES
        clash = set(entries) & set(OPTIM_DB)
        if clash:
            raise ValueError(f"{path.name} redefines configurations for {sorted(clash)}")
        OPTIM_DB.update(entries)


_load_family_entries()


def _load_extensions() -> None:
    """Third-party optimizers under test: modules named in ARRAYOPTIM_TEST_EXTENSIONS (comma-separated, importable)
    register themselves on import and give their configurations as ``ENTRIES`` (tests/test_extension.py)."""
    import importlib
    import os

    for mod in filter(None, os.environ.get("ARRAYOPTIM_TEST_EXTENSIONS", "").split(",")):
        OPTIM_DB.update(importlib.import_module(mod.strip()).ENTRIES)


_load_extensions()
