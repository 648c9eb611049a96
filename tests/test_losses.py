"""Losses have one home (kit.losses): every experiment's loss.name is found there for its training's kind of target,
and a name of another kind is one line listing the right ones."""

import pytest

from kit.competitions import competition_of
from kit.competitions.imageclass.reconstruction import reconstruction_class
from kit.config import experiment_names, load_experiment
from kit.errors import KitError
from kit.losses import LOSSES, build_loss


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiments_loss_is_in_the_registry(name):
    cfg = load_experiment(name)
    training = competition_of(cfg).training_class
    if cfg["model"].get("name") == "autoencoder":  # the image family's reconstruction training
        training = reconstruction_class(training)
    assert cfg["loss"]["name"] in LOSSES[training.loss_kind], (training.loss_kind, sorted(LOSSES[training.loss_kind]))


def test_a_loss_of_another_kind_is_refused_naming_the_valid_ones():
    assert set(LOSSES["image_classification"]) == {"ce", "focal"}
    with pytest.raises(KitError, match=r"unknown loss 'ce_dice'; valid: ce, focal"):
        build_loss("image_classification", {"name": "ce_dice"})
    assert {"weighted_ce", "focal"} <= set(LOSSES["rsna"])  # registered beside RSNA's tables, in the same registry
