import copy

import pytest
import timm
import torch
from timm.layers import SEModule
from torch import nn

import kernels.se
from kit.models.fused_se import FusedSE, fuse_timm_se
from kit.models.registry import create_model


@pytest.mark.parametrize("path", ["kernel", "reference"])
def test_an_se_resnet_on_the_fused_op_computes_what_timm_computes(path, monkeypatch):
    if path == "reference":
        monkeypatch.setenv("KIT_DISABLE_TRITON", "1")
    launches = []
    fused_op = kernels.se.fused_squeeze_excite
    monkeypatch.setattr(kernels.se, "fused_squeeze_excite", lambda *args: launches.append(1) or fused_op(*args))
    torch.manual_seed(0)
    timm_model = timm.create_model("seresnet18", pretrained=False, num_classes=5).eval()
    fused = copy.deepcopy(timm_model)
    assert fuse_timm_se(fused) == 8, "one SE block per BasicBlock"
    assert isinstance(fused.layer4[1].se, FusedSE)
    assert list(fused.state_dict()) == list(timm_model.state_dict()), "timm checkpoints load unchanged"

    x = torch.randn(2, 3, 64, 64)
    expected, actual = timm_model(x), fused(x)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    assert len(launches) == (8 if path == "kernel" else 0), "the interpreter runs the Triton kernels on CPU tensors"
    expected.square().sum().backward()
    actual.square().sum().backward()
    for (name, mine), theirs in zip(fused.named_parameters(), timm_model.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-4, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "module",
    [SEModule(64, add_maxpool=True), SEModule(64, act_layer=nn.SiLU), SEModule(64, bias=False),
     SEModule(64, norm_layer=nn.BatchNorm2d), SEModule(64, gate_layer="hard_sigmoid")],
    ids=["max-pool", "silu", "no-bias", "norm", "hard-sigmoid"],
)  # fmt: skip
def test_an_se_block_that_computes_another_function_stays_timms(module):
    holder = nn.Sequential(module)
    assert fuse_timm_se(holder) == 0 and holder[0] is module


def test_the_image_classifier_fuses_its_backbones_se_blocks():
    model = create_model("timm_classifier", 3, 4, encoder="seresnet18")
    assert sum(isinstance(m, FusedSE) for m in model.modules()) == 8
    assert not any(type(m) is SEModule for m in model.modules())
