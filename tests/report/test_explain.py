"""`kit explain`: the Grad-CAM layer found without naming layers, maps that follow the evidence, pictures written for
a trained fold as a user runs it, one-line errors."""

import numpy as np
import pytest
import torch
from torch import nn

from kit.models.image_classifiers import simple_cnn, timm_classifier
from kit.report.gradcam import grad_cams, last_feature_map_layer
from tests.test_cli_errors import assert_one_line_error


def test_the_last_feature_map_layer_of_each_kind_of_classifier():
    x = torch.randn(1, 3, 128, 128)
    resnet = timm_classifier(3, 4, "resnet18").eval()
    assert last_feature_map_layer(resnet, x) is resnet.layer4  # 4×4
    assert last_feature_map_layer(resnet, x[..., :64, :64]) is resnet.layer3  # layer4 would be 2×2
    seed_head = timm_classifier(3, 4, "resnet18", head={"hidden": [8]}).eval()
    assert last_feature_map_layer(seed_head, x) is seed_head.head.se
    cnn = simple_cnn(3, 4).eval()
    assert isinstance(last_feature_map_layer(cnn, x), nn.MaxPool2d)  # the last block's pooled map (8×8 here)


class QuadrantModel(nn.Module):
    """Class 0's logit is the top-left quadrant's feature, class 1's the bottom-right's; one feature channel per
    quadrant, so Grad-CAM's channel weights can tell them apart."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 2, 1, bias=False)
        self.features.weight.data[:] = 1.0

    def forward(self, x):
        maps = self.features(x)
        return torch.stack([maps[:, 0, :8, :8].mean(dim=(1, 2)), maps[:, 1, 8:, 8:].mean(dim=(1, 2))], dim=1)


def test_grad_cam_follows_the_evidence():
    model = QuadrantModel().eval()
    image = torch.zeros(1, 1, 16, 16)
    image[..., :8, :8] = 1.0
    image[..., 8:, 8:] = 0.5
    cams = grad_cams(model, image.repeat(2, 1, 1, 1), [0, 1])
    assert cams.shape == (2, 16, 16)
    # class 0's evidence is in channel 0 only, whose activation covers both lit quadrants, brighter top-left
    assert cams[0][:8, :8].mean() > cams[0][8:, 8:].mean() > cams[0][:8, 8:].mean()
    assert np.allclose(cams[0][:8, 8:], 0) and np.allclose(cams[1][8:, :8], 0)


@pytest.mark.slow
def test_explain_writes_grad_cams_for_a_trained_fold(kit_here, tmp_path):
    tiny = ["trainer.epochs=1", "trainer.batch_size=16", "data.size=32", "data.folds=3"]
    assert_one_line_error(kit_here(["explain", "--exp", "tinyimagenet_cnn", *tiny], tmp_path), "no finished fold")
    trained = kit_here(["train-fold", "--exp", "tinyimagenet_cnn", *tiny], tmp_path)
    assert trained.returncode == 0, trained.stderr
    explained = kit_here(["explain", "--exp", "tinyimagenet_cnn", *tiny], tmp_path)
    assert explained.returncode == 0, explained.stderr
    pictures = sorted((tmp_path / "runs" / "tinyimagenet_cnn" / "fold0" / "explain").glob("gradcam_*.png"))
    assert len(pictures) >= 5 and all(p.stat().st_size > 5000 for p in pictures)


@pytest.mark.slow
def test_explain_draws_rsna_attention_maps(kit_here, tmp_path, rsna_dir):
    tiny = [f"data.dir={rsna_dir}", "data.slices=2", "data.size=32", "data.folds=3", "trainer.epochs=1",
            "trainer.batch_size=4"]  # fmt: skip
    assert kit_here(["train-fold", "--exp", "rsna_unet", *tiny], tmp_path).returncode == 0
    explained = kit_here(["explain", "--exp", "rsna_unet", *tiny], tmp_path)
    assert explained.returncode == 0, explained.stderr
    pictures = list((tmp_path / "runs" / "rsna_unet" / "fold0" / "explain").glob("attention_study*.png"))
    assert 1 <= len(pictures) <= 3
    assert_one_line_error(kit_here(["explain", "--exp", "rsna_resnet"], tmp_path), "no finished fold")


@pytest.mark.slow
def test_explain_draws_mars_class_maps(tmp_path, mars_dir, kit_here):
    tiny = [
        f"data.dir={mars_dir}",
        "data.folds=3",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "model.decoder_se_reduction=null",
    ]
    assert kit_here(["train-fold", "--exp", "mars_smp_unet", *tiny], tmp_path).returncode == 0
    explained = kit_here(["explain", "--exp", "mars_smp_unet", *tiny], tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert len(list((tmp_path / "runs" / "mars_smp_unet" / "fold0" / "explain").glob("gradcam_image*.png"))) == 3
