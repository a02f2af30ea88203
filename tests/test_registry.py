"""The registry against timm's: names, descriptions, registry defaults, capability flags; list_optimizers semantics."""
from __future__ import annotations

import subprocess
import sys

import pytest

import arrayoptim as ao

#: torch.optim classes timm does not register, under arrayoptim's names (API.md)
TORCH_EXTRAS = {"asgd", "lbfgs", "rprop", "sparseadam", "torchadafactor", "torchmuon"}


def test_list_optimizers_semantics():
    names = ao.list_optimizers()
    assert names == sorted(names) and "adamw" in names
    assert ao.list_optimizers("sgd*") == sorted(n for n in names if n.startswith("sgd"))
    assert set(ao.list_optimizers(["adam", "sgd"])) == {"adam", "sgd"}
    assert "adamw" not in ao.list_optimizers("adam*", exclude_filters=["*w"])
    with_desc = ao.list_optimizers("adam", with_description=True)
    assert with_desc == [("adam", ao.get_optimizer_info("adam").description)]
    assert not any(n.startswith("lookahead_") for n in names)


def test_import_needs_neither_torch_nor_cupy():
    code = ("import sys, arrayoptim as ao, numpy as np; o = ao.create_optimizer('adamw'); p = {'w': np.ones(2)}; "
            "o.step(p, p, o.init(p)); ao.list_optimizers(); "
            "bad = [m for m in ('torch', 'cupy', 'jax', 'timm') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.oracle
def test_names_descriptions_defaults_and_flags_match_timm():
    timm_optim = pytest.importorskip("timm.optim")
    ours = set(ao.list_optimizers())
    assert not (ours - set(timm_optim.list_optimizers()) - TORCH_EXTRAS), "names that are neither timm's nor torch's"
    for name in sorted(ours - TORCH_EXTRAS):
        theirs, mine = timm_optim.get_optimizer_info(name), ao.get_optimizer_info(name)
        assert mine.description == theirs.description, name
        for flag in ("has_eps", "has_momentum", "has_betas", "num_betas", "second_order"):
            assert getattr(mine, flag) == getattr(theirs, flag), (name, flag)
        defaults = mine.effective_defaults()
        for k, v in (theirs.defaults or {}).items():
            assert defaults[k] == (tuple(v) if isinstance(v, (list, tuple)) else v), (name, k)


@pytest.mark.oracle
def test_class_defaults_match_the_anchor_constructors():
    """Each record's field defaults are its anchor class's constructor defaults (timm or torch)."""
    import importlib
    import inspect

    pytest.importorskip("timm")
    checked = set()
    for name in ao.list_optimizers():
        rec = ao.get_optimizer_info(name).hyperparams
        if rec in checked or not rec.anchor:
            continue
        checked.add(rec)
        module, _, cls = rec.anchor.rpartition(".")
        anchor = getattr(importlib.import_module(module), cls)
        sig = inspect.signature(anchor.__init__)
        for field in rec.__dataclass_fields__.values():
            if field.name in sig.parameters:
                d = sig.parameters[field.name].default
                if d is inspect.Parameter.empty or type(d).__name__ == "_RequiredParameter":
                    continue  # a required argument (torch's ``required``, e.g. timm's SGDP lr): nothing to match
                d = tuple(d) if isinstance(d, (list, tuple)) else d
                if field.metadata.get("kind", "").lstrip("?") == "dtype":  # kept as the dtype's name
                    d = str(d).removeprefix("torch.")
                assert field.default == d, (rec.anchor, field.name, field.default, d)


def test_dtype_hyperparameters_take_any_librarys_dtype():
    """``momentum_dtype``/``ns_dtype`` are kept as a dtype's name: a name, a NumPy dtype or scalar type, a torch or
    JAX dtype all give the same record; anything else is a TypeError naming the argument."""
    import numpy as np

    given = ["bfloat16", np.dtype("float32"), np.float16]
    torch = pytest.importorskip("torch")
    given += [torch.bfloat16, torch.float16]
    want = ["bfloat16", "float32", "float16", "bfloat16", "float16"]
    for value, name in zip(given, want):
        assert ao.create_optimizer("adafactorbv", momentum_dtype=value).hyperparams.momentum_dtype == name
    assert ao.create_optimizer("muon", ns_dtype=torch.float64).hyperparams.ns_dtype == "float64"
    with pytest.raises(TypeError, match="'momentum_dtype' must be a dtype or a dtype name"):
        ao.create_optimizer("adafactorbv", momentum_dtype=0.5)
