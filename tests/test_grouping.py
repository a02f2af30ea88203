"""arrayoptim.grouping (pure Python) reproduces timm's create_optimizer_v2 grouping rules."""
from __future__ import annotations

import numpy as np
import pytest

from arrayoptim import grouping


def test_weight_decay_split_pure_python():
    params = {"conv.weight": np.zeros((2, 2, 3, 3)), "conv.bias": np.zeros(2), "pos": 2, "fc.weight": 2,
              "fc.bias": np.zeros(3)}
    groups, wd = grouping.create_groups(params, weight_decay=0.1, no_weight_decay=["pos"])
    assert wd == 0.0
    assert groups == [{"params": ["conv.bias", "pos", "fc.bias"], "weight_decay": 0.0},
                      {"params": ["conv.weight", "fc.weight"], "weight_decay": 0.1}]
    groups, _ = grouping.create_groups(params, weight_decay=0.0)
    assert groups == [{"params": list(params), "weight_decay": 0.0}]
    groups, _ = grouping.create_groups(params, weight_decay=0.1, filter_bias_and_bn=False)
    assert groups == [{"params": list(params), "weight_decay": 0.1}]


def test_layer_decay_with_matcher_and_lr_scale_folding():
    params = {"stem.w": 2, "blocks.0.w": 2, "blocks.1.w": 2, "blocks.1.b": 1, "norm.w": 1, "head.w": 2}
    matcher = {"stem": r"^stem", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}
    lmap = grouping.group_with_matcher(params, matcher)
    assert lmap == {"stem.w": 0, "blocks.0.w": 1, "blocks.1.w": 2, "blocks.1.b": 2, "norm.w": 2, "head.w": 3}
    groups, _ = grouping.create_groups(params, weight_decay=0.05, layer_decay=0.5, layer_id_fn=matcher,
                                       apply_lr_scale=True, lr=1.0)
    by = {tuple(g["params"]): g for g in groups}
    assert by[("stem.w",)]["lr"] == 0.125 and by[("head.w",)]["lr"] == 1.0
    assert by[("blocks.1.b", "norm.w")]["weight_decay"] == 0.0
    import arrayoptim as ao

    opt = ao.create_optimizer("adamw", groups=groups, weight_decay=0.0)
    assert opt.hyperparams_for("stem.w").lr == 0.125
    with pytest.raises(ValueError, match="lr"):
        grouping.create_groups(params, layer_decay=0.5, apply_lr_scale=True)
    with pytest.raises(TypeError, match="params"):
        grouping.create_groups({"x": "nope"})


@pytest.mark.oracle
@pytest.mark.parametrize("layer_decay", [None, 0.75])
@pytest.mark.parametrize("filter_bias_and_bn", [True, False])
def test_torch_factory_groups_equal_timms(layer_decay, filter_bias_and_bn):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from timm.optim._param_groups import param_groups_layer_decay, param_groups_weight_decay

    import arrayoptim.torch as aot

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", depth=3, img_size=32, patch_size=8, num_classes=5)
    nwd = model.no_weight_decay()
    if layer_decay is None:
        theirs = param_groups_weight_decay(model, 0.05, filter_bias_and_bn, nwd)
        ours = aot.param_groups_weight_decay(model, 0.05, filter_bias_and_bn, nwd)
    else:
        theirs = param_groups_layer_decay(model, 0.05, nwd, weight_decay_exclude_1d=filter_bias_and_bn,
                                          layer_decay=layer_decay)
        ours = aot.param_groups_layer_decay(model, 0.05, nwd, weight_decay_exclude_1d=filter_bias_and_bn,
                                            layer_decay=layer_decay)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert {k: v for k, v in a.items() if k != "params"} == {k: v for k, v in b.items() if k != "params"}
        assert [id(p) for p in a["params"]] == [id(p) for p in b["params"]]
