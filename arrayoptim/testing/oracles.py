"""The oracle table derived from the registry: each name's anchor (torch.optim or timm), how to build it, and
``verify_name``, what ``arrayoptim verify`` runs per name."""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from typing import Any, Callable, Mapping

import numpy as np

from .compare import DEFAULT_RTOL
from .drivers import STEP_INPUT_DRIVERS, Driver
from .lockstep import OracleError, ParityResult, TimmStateView, run_parity
from .problem import grad_schedule, make_params, to_py


#: Documented gaps to an anchor run with its own internals, per registry name (test metadata, kept with the
#: oracles): ``verify`` compares within the larger of this and the dtype's default, and says so.
DOCUMENTED_GAPS = {
    "torchmuon": 1e-3,  # torch's Newton-Schulz runs in bfloat16 (measured 1e-5..3e-4 per step)
    "radamlegacy": 1e-6,  # timm computes RAdamLegacy in float32 for every param dtype (~5e-8)
}




# ------------------------------------------------------------------------------- oracles derived from the registry

@dataclasses.dataclass(frozen=True)
class Skip:
    """A name that cannot be verified here, and why. ``missing`` names an oracle library that is not installed."""

    reason: str
    missing: str | None = None


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """How to verify one name: the oracle's label, arrayoptim's keywords and the oracle factory."""

    label: str
    ours_kwargs: Mapping[str, Any]
    make_oracle: Callable[[list], Any]
    note: str = ""
    driver: Callable[[], Driver] | None = None  # the step needs inputs beyond grads: how both sides get them


#: counters timm keeps per param group (not per param): shown as the per-param slots arrayoptim keeps
def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _timm_names() -> set[str]:
    import timm.optim

    return set(timm.optim.list_optimizers())


def oracle_for(name: str, against: str | None = None, *, lr: float | None = None,
               weight_decay: float | None = None) -> OracleSpec | Skip:
    """The oracle for a registry name, derived from its record's ``anchor`` (no per-name table).

    * ``against='timm'`` (the default for ``timm.optim.*`` anchors and ``lookahead_`` names): the name must be in
      timm's registry; both sides are built from the same keywords (``timm.optim.create_optimizer_v2(params,
      opt=name, lr=..., weight_decay=...)`` beside ``ao.create_optimizer(name, lr=..., weight_decay=...)``), so
      timm's registry defaults are verified too.
    * ``against='torch'`` (the default for ``torch.optim.*`` anchors): the anchor class is built with arrayoptim's
      complete hyperparameter record (registry defaults applied), so every field must be a constructor argument.
    * A step that takes an input of :data:`STEP_INPUT_DRIVERS` (``closure``, ``grad_mask``, ``hessian``,
      ``draws``) gets that driver (``OracleSpec.driver``); ``lookahead_`` over such a name is skipped.

    Parameters
    ----------
    lr, weight_decay
        Passed to both sides where the optimizer has them (None: each side's default).

    Returns
    -------
    OracleSpec or Skip
    """
    import arrayoptim as ao
    from .._registry import LOOKAHEAD_PREFIX

    lookahead = name.startswith(LOOKAHEAD_PREFIX)
    base = name[len(LOOKAHEAD_PREFIX):] if lookahead else name
    info = ao.get_optimizer_info(base)
    lib, _, cls_name = info.anchor.rpartition(".")
    anchor_lib = "timm" if lookahead or lib.startswith("timm") else "torch" if lib.startswith("torch") else lib
    against = against or anchor_lib
    if against not in ("torch", "timm"):
        raise ValueError(f"against must be 'torch' or 'timm', got against={against!r}")
    step_inputs = set(info.step_keywords)
    driver = next((cls for k, cls in STEP_INPUT_DRIVERS.items() if k in step_inputs), None)
    if driver is not None and lookahead:
        return Skip(f"its step takes {sorted(k for k in STEP_INPUT_DRIVERS if k in step_inputs)} beyond grads: "
                    f"verified without the lookahead_ wrapper ({base})")
    if driver is None and info.second_order:
        return Skip("needs Hessian-vector products (backward with create_graph): not drivable by a grad stream")
    if driver is None and {"seed", "draws"} & step_inputs:
        return Skip("needs its random draws explicitly (seed= or draws=); its oracle test replays timm's draws")
    fields = set(info.hyperparams.field_names())
    kw = {k: v for k, v in (("lr", lr), ("weight_decay", weight_decay)) if v is not None and k in fields}
    for mod in ("torch", "timm") if against == "timm" else ("torch",):
        if not _installed(mod):
            return Skip(f"oracle not installed: {mod} (pip install {mod})", missing=mod)

    if against == "timm":
        if base not in _timm_names():
            return Skip(f"not in timm's registry (anchor {info.anchor}); try --against torch")
        import timm.optim

        def make(groups, _name=name, _kw=dict(kw)):
            return TimmStateView(timm.optim.create_optimizer_v2(groups, opt=_name, **_kw))

        if driver is not None:  # the driver feeds the oracle itself (no plain-grad probe)
            return OracleSpec(f"timm:{name}", kw, make, driver=driver)
        return OracleSpec(f"timm:{name}", kw, make)

    if lookahead:
        return Skip("torch has no Lookahead; use --against timm")
    if anchor_lib != "torch":
        return Skip(f"no torch oracle (anchor {info.anchor}); use --against timm")
    import torch.optim

    cls = getattr(torch.optim, cls_name, None)
    if cls is None:
        return Skip(f"{info.anchor} does not exist in this torch ({torch.__version__})")
    record = ao.create_optimizer(name, **kw).hyperparams.as_dict()
    accepted = set(inspect.signature(cls).parameters)
    args = {k: v for k, v in record.items() if k in accepted}
    own = {f.name: f.default for f in dataclasses.fields(info.hyperparams)}
    # arrayoptim-only fields at their record default reproduce the anchor; fields the class fixes itself (AdamW's
    # decoupled_weight_decay=True) must equal its defaults
    fixed = {k: v for k, v in record.items() if k not in accepted and not (k in own and own[k] == v)}
    if fixed:
        try:
            probe = cls([torch.zeros(2, 2, requires_grad=True)], **args).defaults
        except Exception as e:  # noqa: BLE001 - reported
            return Skip(f"{info.anchor} rejects the record: {type(e).__name__}: {e}")
        differ = sorted(k for k, v in fixed.items() if k not in probe or to_py(probe[k]) != v)
        if differ:
            return Skip(f"record fields {differ} are neither {info.anchor} arguments nor equal to its defaults")
    return OracleSpec(info.anchor, record, lambda groups, _cls=cls, _args=args: _cls(groups, **_args), driver=driver)


def verify_name(name: str, against: str | None = None, *, steps: int = 12, dtype: str = "float64",
                rtol: float | None = None, lr: float | None = None, weight_decay: float | None = None,
                on_step: Callable[[int, int], None] | None = None) -> tuple[str, ParityResult | Skip | Exception]:
    """Verify one name against its oracle on the standard problem.

    Returns
    -------
    (str, ParityResult or Skip or Exception)
        The oracle's label and the outcome: a :class:`ParityResult`, a :class:`Skip` (nothing to compare: oracle not
        installed, or the oracle cannot run a plain grad stream, or the step needs inputs beyond grads that no
        driver provides), or the exception arrayoptim raised (an error: counts as a failure). A driver's documented
        gap for ``dtype`` (:meth:`Driver.rtol_for`) widens the default tolerance, and the note says so.
    """
    if dtype not in DEFAULT_RTOL:
        raise ValueError(f"dtype must be one of {sorted(DEFAULT_RTOL)}, got dtype={dtype!r}")
    spec = oracle_for(name, against, lr=lr, weight_decay=weight_decay)
    if isinstance(spec, Skip):
        return "-", spec
    import torch

    t_dtype = getattr(torch, dtype)
    np_params, _ = make_params(0, t_dtype)
    grads = grad_schedule(np_params, steps)

    documented = DOCUMENTED_GAPS.get(name.removeprefix("lookahead_"))
    try:
        driver = spec.driver() if spec.driver is not None else None
    except Exception as e:  # noqa: BLE001 - the oracle's module could not be prepared: reported
        return spec.label, Skip(f"the oracle cannot be driven here: {type(e).__name__}: {e}")
    note = "; ".join(filter(None, [spec.note, driver.note_for(dtype) if driver is not None else ""]))
    gap = driver.rtol_for(dtype) if driver is not None else None
    if gap is not None and rtol is None:
        rtol = max(DEFAULT_RTOL[dtype], gap)
    if rtol is None:
        rtol = DEFAULT_RTOL[dtype] if documented is None else max(DEFAULT_RTOL[dtype], documented)
    run = dict(steps=steps, grads=grads, dtype=t_dtype, rtol=rtol, wrap_oracle_errors=True, on_step=on_step,
               driver=driver)
    if documented is not None:
        note = "; ".join(filter(None, [note, f"documented gap to the anchor: rtol {rtol:g}"]))
    try:
        try:
            res = run_parity(name, spec.ours_kwargs, spec.make_oracle, **run)
        except OracleError as first:
            # matrix-only optimizers (Muon): the same problem restricted to its 2-D params
            matrices = [n for n, v in np_params.items() if np.ndim(v) == 2]
            try:
                res = run_parity(name, spec.ours_kwargs, spec.make_oracle, only=matrices, **run)
            except OracleError:
                raise first from None
            note = "; ".join(filter(None, [note, f"2-D params only (the oracle: {first})"]))
    except OracleError as e:
        return spec.label, Skip(f"the oracle cannot run a plain grad stream: {e}")
    except TypeError as e:
        if "step()" in str(e) and ("keyword" in str(e) or "argument" in str(e)):
            return spec.label, Skip(f"step needs inputs beyond grads: {e}")
        return spec.label, e
    except Exception as e:  # noqa: BLE001 - an arrayoptim error is a failed verification, reported
        return spec.label, e
    res.note = note
    return spec.label, res
