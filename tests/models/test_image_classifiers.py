import pytest
import timm
import torch
from safetensors.torch import save_file

from kernels.se import SqueezeExcite
from kit.errors import KitError
from kit.models.registry import create_model


def test_local_weights_load_with_a_strict_key_check(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    save_file(source.state_dict(), tmp_path / "r18.safetensors")
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    for name in ("r18.safetensors", "r18.pth"):
        model = create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained=str(tmp_path / name))
        assert torch.equal(model.conv1.weight, source.conv1.weight), "the backbone's weights are the file's"
        assert model.fc.out_features == 4, "the classifier is the task's, not the file's"

    other = timm.create_model("resnet34", pretrained=False)
    save_file(other.state_dict(), tmp_path / "r34.safetensors")
    with pytest.raises(KitError, match=r"does not fit resnet18: it holds \d+ tensor\(s\) resnet18 has not, first lay"):
        create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained=str(tmp_path / "r34.safetensors"))
    with pytest.raises(KitError, match="nothere.pth: file not found"):
        create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained=str(tmp_path / "nothere.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(KitError, match="junk.pth is not a readable weights file"):
        create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained=str(tmp_path / "junk.pth"))


def test_hub_weights_offline_are_one_line(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this file")

    from kit.models import hub

    monkeypatch.setattr(timm, "create_model", offline)
    monkeypatch.setattr(hub, "unreachable", lambda: None)  # the hub answered; the download itself failed
    with pytest.raises(KitError, match="model.pretrained=hub: no 'resnet18' weights: OSError; offline, give a file"):
        create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained="hub")
    monkeypatch.setattr(hub, "unreachable", lambda: "gaierror: Name or service not known")
    with pytest.raises(KitError, match=r"the hub is unreachable \(gaierror: .*\) and the local cache lacks them"):
        create_model("timm_classifier", 3, 4, encoder="resnet18", pretrained="hub")


def test_the_seeds_head_uses_the_fused_se_block_and_trains():
    model = create_model(
        "timm_classifier", 3, 8, encoder="mobilenetv3_small_050", head={"hidden": [32], "se_reduction": 4}
    )
    assert isinstance(model.head.se, SqueezeExcite)
    assert any(isinstance(m, torch.nn.SiLU) for m in model.head.modules())
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert model.head.se.fc1.weight.grad.abs().sum() > 0


def test_simple_cnn_from_scratch_shapes():
    model = create_model("simple_cnn", 3, 200, widths=[8, 16])
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 200)
