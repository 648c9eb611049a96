"""The autoencoder on a classifier's backbone, and its fold training against the mean-image baseline."""

import numpy as np
import pytest
import torch

from kit.competitions import get_competition
from kit.config import apply_overrides, load_experiment
from kit.models.autoencoder import autoencoder
from tests.test_cli_errors import assert_one_line_error


@pytest.mark.parametrize("size", [32, 64])
def test_reconstructs_the_input_shape_with_stride_8_activations(size):
    model = autoencoder(3, 3, "resnet18").eval()
    x = torch.randn(2, 3, size, size)
    assert model(x).shape == x.shape
    assert model.activations(x).shape == (2, size // 8, size // 8)


def test_the_prior_baseline_is_the_mean_image(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    cfg = apply_overrides(load_experiment("tinyimagenet_autoencoder"), ["data.size=16"])
    comp = get_competition("tinyimagenet")
    training = comp.training(cfg, comp.synth(tmp_path / "data", train=40, test=10, seed=0))
    ids = training.ids("train")
    targets = training.targets(ids)
    baseline = training.evaluate(ids, np.broadcast_to(training.prior(ids), targets.shape))["mse"]
    assert baseline == pytest.approx(targets.var(axis=0).mean(), rel=1e-5)  # the mean image's error is the variance
    assert training.evaluate(ids, targets)["mse"] == 0.0
    item = training.dataset(ids[:1], "train")[0]
    assert torch.equal(item["image"], item["target"]) and training.num_outputs == 3


@pytest.mark.slow
def test_a_fold_draws_reconstructions_and_refuses_to_merge(kit_here, tmp_path):
    tiny = ["trainer.epochs=1", "trainer.batch_size=16", "data.size=32", "data.folds=3"]
    trained = kit_here(["train-fold", "--exp", "tinyimagenet_autoencoder", *tiny], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].startswith("mse ")
    fold = tmp_path / "runs" / "tinyimagenet_autoencoder" / "fold0"
    assert (fold / "reconstructions.png").stat().st_size > 5000
    assert (fold / "oof.csv").read_text().splitlines()[0] == "id,mse"
    assert_one_line_error(kit_here(["oof", "--exp", "tinyimagenet_autoencoder", *tiny], tmp_path), "autoencoder")
