"""Every field of every registered optimizer has a domain: NaN, infinities and negative lr-like values raise.

The cases are built from the records themselves (``list_optimizers()`` -> ``get_optimizer_info(n).hyperparams`` ->
``dataclasses.fields``), per field kind, so a new field is covered without editing this file:

* ``nan``: NaN for every field (a number field raises ``ValueError``; a bool, int, str or dtype field raises on
  coercion) and NaN at every position of every tuple (``betas``, ``etas``, ``step_sizes``, ``ns_coefficients``);
* ``+inf`` and ``-inf``: for every number and at every tuple position;
* ``negative``: ``-1.0`` for every number and at every tuple position.

A bad value must raise ``ValueError``/``TypeError`` naming the field, both at construction and as a
per-step override (``opt.step(..., hyperparams={field: bad}, copy=False)``), where it must raise before anything is
written. A value a field legitimately accepts is listed in :data:`ACCEPTED` with the reason; the list is checked too
(every entry is still accepted), so it cannot hide a case silently.
"""
from __future__ import annotations

import collections
import dataclasses
import math
import warnings

import numpy as np
import pytest

import arrayoptim as ao
from arrayoptim._hyper import _infer_kind
from optim_db import OPTIM_DB, problem_shapes

NAN, INF = float("nan"), float("inf")
NAMES = ao.list_optimizers()
RECORDS = {n: ao.get_optimizer_info(n).hyperparams for n in NAMES}

#: a valid value for fields whose default is None or not a number, from which the bad values are built
TEMPLATES = {
    "lr": 1e-3,  # timm's Adafactor: None (relative step)
    "betas": (0.9, 0.999),  # timm's Adafactor: None (no first moment)
    "betas_1d": (0.9, 0.99),
    "eps": 1e-30,  # big_vision's Adafactor: None
    "clipping_threshold": 1.0,
    "max_lr_snapshot": 1e-3,
    "adamw_lr": 0.02,
    "ns_coefficients": (3.4445, -4.775, 2.0315),  # timm's Muon: a preset name by default
    "preconditioner_update_probability": 0.5,  # Kron: None (timm's schedule)
}

#: (record, field, category) -> why the value is accepted. ``field`` covers every position of a tuple field.
ACCEPTED: dict[tuple[str, str, str], str] = {
    # +inf where it means "no limit"
    **{(rec, field, "+inf"): "a clipping threshold of inf clips nothing (the same step as no clipping)"
       for rec, field in [("AdafactorHyperparams", "clip_threshold"),
                          ("AdafactorBigVisionHyperparams", "clipping_threshold"),
                          ("AdamWLegacyHyperparams", "clipping_threshold"),
                          ("NAdamWHyperparams", "clipping_threshold"),
                          ("LambHyperparams", "max_grad_norm"),
                          ("TorchAdafactorHyperparams", "d")]},
    ("ASGDHyperparams", "t0", "+inf"): "t0=inf: averaging never starts (mu stays 1)",
    # negatives that are not lr-like
    ("AdafactorHyperparams", "decay_rate", "negative"):
        "timm's domain is <= 0 (beta2_t = 1 - t ** decay_rate; default -0.8)",
    ("TorchAdafactorHyperparams", "beta2_decay", "negative"): "torch's domain is <= 0 (default -0.8)",
    ("TorchMuonHyperparams", "ns_coefficients", "negative"):
        "Newton-Schulz polynomial coefficients are signed (the default b is -4.775)",
    ("MuonHyperparams", "ns_coefficients", "negative"): "Newton-Schulz polynomial coefficients are signed",
    ("AdoptHyperparams", "clip_exp", "negative"):
        "the clip bound step ** clip_exp shrinks over time: a tighter clip, never an ascent (timm accepts it)",
    ("MarsHyperparams", "gamma", "negative"):
        "gamma weighs the variance-reduction term grad - last_grad; its sign changes the estimator, the step "
        "still follows the (normalized) estimate downhill (timm accepts it)",
    ("ASGDHyperparams", "t0", "negative"):
        "a negative t0 means averaging started -t0 steps before the first (mu = 1 / (t - t0)); torch accepts it",
    ("LBFGSHyperparams", "tolerance_grad", "negative"): "a negative tolerance disables that stopping test",
    ("LBFGSHyperparams", "tolerance_change", "negative"): "a negative tolerance disables that stopping test",
}


def _kind(field: dataclasses.Field) -> str:
    return (field.metadata.get("kind") or _infer_kind(field.default)).lstrip("?")


def _template(rec: type, field: dataclasses.Field, defaults: dict):
    value = defaults.get(field.name, field.default)
    if isinstance(value, str) or value is None or value is dataclasses.MISSING:
        value = TEMPLATES.get(field.name, value)
    return value


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _field_cases(name: str):
    """``(field, category, bad value)`` for every field of ``name``'s record."""
    info = ao.get_optimizer_info(name)
    defaults = info.effective_defaults()
    out = []
    for f in dataclasses.fields(info.hyperparams):
        kind, value = _kind(f), _template(info.hyperparams, f, defaults)
        out.append((f.name, "nan", NAN))  # every kind: a number field rejects it, the others on coercion
        if kind == "float" or (kind == "any" and _is_num(value)):
            out += [(f.name, "+inf", INF), (f.name, "-inf", -INF), (f.name, "negative", -1.0)]
        elif isinstance(value, tuple) and any(_is_num(v) for v in value):
            for i, v in enumerate(value):
                if _is_num(v):
                    for cat, bad in (("nan", NAN), ("+inf", INF), ("-inf", -INF), ("negative", -1.0)):
                        out.append((f.name, cat, value[:i] + (bad,) + value[i + 1:]))
    return out


CASES = [(n, field, cat, bad) for n in NAMES for field, cat, bad in _field_cases(n)]


def _accepted(name: str, field: str, category: str) -> str | None:
    return ACCEPTED.get((RECORDS[name].__name__, field, category))


def _names_it(msg: str, field: str, bad) -> bool:
    """The message names the field (every message does today; the brief asks for the field or the value)."""
    return field in msg


def _create(name, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm's deprecated adamw_lr
        return ao.create_optimizer(name, **kw)


def test_case_counts_cover_every_field_of_every_name():
    counts = collections.Counter(cat for _, _, cat, _ in CASES)
    fields = {(n, f.name) for n in NAMES for f in dataclasses.fields(RECORDS[n])}
    covered = {(n, field) for n, field, _, _ in CASES}
    assert covered == fields
    accepted = collections.Counter(cat for n, field, cat, _ in CASES if _accepted(n, field, cat))
    print(f"\n{len(NAMES)} names, {len(set(RECORDS.values()))} records, {len(fields)} (name, field) pairs; cases "
          f"per category: {dict(counts)}; accepted by design: {dict(accepted)}")
    assert all(counts[c] > 0 for c in ("nan", "+inf", "-inf", "negative"))
    # every ACCEPTED entry names a real (record, field, category) case
    real = {(RECORDS[n].__name__, field, cat) for n, field, cat, _ in CASES}
    assert set(ACCEPTED) <= real, set(ACCEPTED) - real


@pytest.mark.parametrize("name", NAMES)
def test_bad_values_raise_at_construction(name):
    unexpected, wrong_message = [], []
    for field, cat, bad in _field_cases(name):
        reason = _accepted(name, field, cat)
        try:
            _create(name, **{field: bad})
        except (ValueError, TypeError) as e:
            if reason:
                unexpected.append(f"{field}={bad!r} raised but is listed as accepted ({reason}): {e}")
            elif not _names_it(str(e), field, bad):
                wrong_message.append(f"{field}={bad!r}: {e}")
        else:
            if not reason:
                unexpected.append(f"{field}={bad!r} ({cat}) was accepted")
    assert not unexpected, unexpected
    assert not wrong_message, wrong_message


def _snapshot(tree):
    if isinstance(tree, dict):
        return {k: _snapshot(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_snapshot(v) for v in tree]
    if isinstance(tree, np.ndarray) or isinstance(tree, np.generic):
        a = np.asarray(tree)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    return ("value", repr(tree))


def _problem(name):
    rng = np.random.default_rng(0)
    shapes = problem_shapes(name)
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(2)]
    return params, grads


def _extra(name, params, grads):
    make = OPTIM_DB[name].step_kwargs
    return make(params, grads) if make else {}


@pytest.mark.parametrize("name", NAMES)
def test_bad_overrides_raise_before_anything_is_written(name):
    opt = _create(name)
    params, grads = _problem(name)
    state = opt.init(params)
    params, state = opt.step(params, grads[0], state, copy=False, **_extra(name, params, grads[0]))
    before = _snapshot({"p": params, "s": state})
    ids = {k: id(v) for k, v in params.items()}
    problems = []
    for field, cat, bad in _field_cases(name):
        reason = _accepted(name, field, cat)
        if reason:
            continue  # accepted values are checked at construction (and by the step tests)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                opt.step(params, grads[1], state, copy=False, hyperparams={field: bad},
                         **_extra(name, params, grads[1]))
        except (ValueError, TypeError) as e:
            if not _names_it(str(e), field, bad):
                problems.append(f"{field}={bad!r}: {e}")
        else:
            problems.append(f"override {field}={bad!r} ({cat}) was accepted")
            break  # the step ran: params and state moved, later comparisons would be meaningless
        after = _snapshot({"p": params, "s": state})
        if after != before or {k: id(v) for k, v in params.items()} != ids:
            problems.append(f"override {field}={bad!r} wrote params or state before raising")
            break
    assert not problems, problems


@pytest.mark.parametrize("name", NAMES)
def test_anchor_defaults_still_construct(name):
    """The registry's defaults, and the anchor's own defaults passed explicitly, construct (and step)."""
    info = ao.get_optimizer_info(name)
    opt = _create(name)
    explicit = {f.name: getattr(opt.hyperparams, f.name) for f in dataclasses.fields(info.hyperparams)}
    if "adamw_lr" in explicit:
        explicit.pop("adamw_lr")  # converted into fallback_lr_scale at construction
    assert _create(name, **explicit).hyperparams == opt.hyperparams
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        info.hyperparams()  # the anchor constructor's defaults, without the registry's variant defaults


@pytest.mark.parametrize("key", sorted(k for k in ACCEPTED if k[2] == "+inf"), ids="-".join)
def test_inf_thresholds_mean_no_limit(key):
    """Where +inf is accepted, a step with it equals a step with a huge finite value (no clipping, no averaging)."""
    rec, field, _ = key
    name = next(n for n in NAMES if RECORDS[n].__name__ == rec)
    params, grads = _problem(name)
    out = []
    for value in (INF, 1e300):
        opt = _create(name, **{field: value})
        p, s = dict(params), opt.init(params)
        for g in grads:
            p, s = opt.step(p, g, s, **_extra(name, p, g))
        out.append(p)
    for k in params:
        assert np.all(np.isfinite(out[0][k]))
        np.testing.assert_array_equal(out[0][k], out[1][k])


def test_lookahead_fields_have_a_domain():
    for kw in ({"lookahead_alpha": NAN}, {"lookahead_alpha": INF}, {"lookahead_alpha": -1.0},
               {"lookahead_k": NAN}, {"lookahead_k": -1}):
        with pytest.raises((ValueError, TypeError), match="lookahead|slow update rate|'k'|'alpha'"):
            ao.create_optimizer("lookahead_sgd", **kw)


@pytest.mark.parametrize("name, field, value, match", [
    ("muon", "adamw_lr", -0.01, r"Invalid adamw_lr value: -0.01 \(adamw_lr=-0.01 must be >= 0 or None\)"),
    ("muon", "fallback_lr_scale", -0.5, r"Invalid fallback_lr_scale value: -0.5"),
    ("kron", "precond_lr", -0.1, r"Invalid precond_lr value: -0.1 \(precond_lr=-0.1 must be >= 0\)"),
    ("kron", "precond_init_scale", 0.0, r"Invalid precond_init_scale value: 0.0 \(precond_init_scale=0.0 must be > 0"),
    ("kron", "precond_init_scale", NAN, r"Invalid precond_init_scale value: nan"),
    ("rprop", "step_sizes", (-1e-6, 50.0), r"Invalid step_sizes\[0\] value: -1e-06"),
    ("rprop", "etas", (NAN, 1.2), r"Invalid eta values: nan, 1.2"),  # torch's message (torch raises for NaN)
    ("momentum", "dampening", 1.5, r"Invalid dampening value: 1.5 \(dampening=1.5 must be in \[0, 1\]\)"),
    ("sgdw", "max_lr_snapshot", -1.0, r"Invalid max_lr_snapshot value: -1.0"),
    ("madgrad", "momentum", 1.0, r"Momentum 1.0 must be in the range \[0,1\] \(momentum=1.0 must be in \[0, 1\)"),
    ("adam", "lr", INF, r"Invalid lr value: inf \(lr=inf must be finite\)"),
    ("adam", "lr", NAN, r"Invalid learning rate: nan"),  # torch's message comes first
    ("asgd", "t0", -INF, r"t0=-inf must be finite or \+inf"),
    ("torchmuon", "ns_coefficients", (3.4, NAN, 2.0), r"ns_coefficients\[1\]=nan must not be NaN"),
    ("muon", "ns_coefficients", [(3.4, -4.7, 2.0), (3.4, -4.7, INF)], r"ns_coefficients\[1\]\[2\]=inf"),
])
def test_messages(name, field, value, match):
    with pytest.raises(ValueError, match=match):
        _create(name, **{field: value})


def test_muon_adamw_lr_overflowing_the_scale_raises():
    with pytest.raises(ValueError, match="fallback_lr_scale=adamw_lr/lr"):
        _create("muon", lr=1e-300, adamw_lr=1e300)


def test_accepted_infinity_survives_overrides():
    opt = _create("adafactor", clip_threshold=INF)
    rec = dataclasses.replace(opt.hyperparams, lr=0.1)
    assert rec.clip_threshold == INF and math.isinf(rec.clip_threshold)
