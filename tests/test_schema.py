"""The trainer's defaults live in one typed schema (kit/schema.py): every experiment resolves to them under its own
values, a typo or a wrong type is one line naming the key before any work, and an optional key is overridable only
where an experiment names it."""

import pytest

from kit.config import apply_overrides, check_config, experiment_names, load_experiment
from kit.errors import KitError
from kit.schema import Trainer


@pytest.mark.parametrize("name", experiment_names())
def test_every_experiment_resolves_every_core_trainer_key(name):
    cfg = load_experiment(name)
    core = set(Trainer.defaults()) - Trainer.optional
    assert core <= set(cfg["trainer"]), core - set(cfg["trainer"])
    assert set(cfg["trainer"]) <= set(Trainer.defaults())
    check_config(cfg)


def test_a_typo_in_a_users_yaml_is_one_line(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: [rsna_unet]\ntrainer:\n  epoch: 3\n")
    with pytest.raises(KitError, match=r"config: trainer.epoch: unknown key; known: accumulate, augment"):
        load_experiment(str(tmp_path / "mine.yaml"))
    (tmp_path / "mine.yaml").write_text("base: [rsna_unet]\ntrainer:\n  lr: fast\n")
    with pytest.raises(KitError, match=r"config: trainer.lr='fast'; expected a number > 0"):
        load_experiment(str(tmp_path / "mine.yaml"))


def test_the_schema_default_applies_and_optional_keys_only_where_named():
    cfg = load_experiment("rsna_unet")
    assert cfg["trainer"]["grad_clip"] == Trainer().grad_clip == 3.0
    assert "mixup" not in cfg["trainer"]
    with pytest.raises(KitError, match="unknown key 'trainer.mixup'"):
        apply_overrides(cfg, ["trainer.mixup=0.5"])
    classifier = load_experiment("pneumonia_resnet18")
    assert apply_overrides(classifier, ["trainer.mixup=0.5"])["trainer"]["mixup"] == 0.5
    with pytest.raises(KitError, match=r"trainer.mixup=1.5; expected a probability in \[0, 1\]"):
        check_config(apply_overrides(classifier, ["trainer.mixup=1.5"]))
    with pytest.raises(KitError, match="trainer.epochs=True; expected a whole number >= 1"):
        check_config(apply_overrides(cfg, ["trainer.epochs=true"]))
    assert check_config(apply_overrides(classifier, ["trainer.tta=dihedral"]))["trainer"]["tta"] == "dihedral"
    with pytest.raises(KitError, match="trainer.tta='rotate'; expected true \\(flip\\), false, or one of none"):
        check_config(apply_overrides(classifier, ["trainer.tta=rotate"]))


def test_a_dataset_section_is_checked_and_its_defaults_live_in_the_schema(tmp_path):
    """The `dataset:` of a YAML-declared competition: a typo, a wrong value and a missing key each handled once,
    in kit/schema.py, for both families."""
    from kit.competitions import competition_of
    from kit.schema import ImageDataset, SegmentationDataset

    base = "base: [imagefolder_resnet18]\ncompetition: {name}\ndataset:\n  family: image_classification\n"
    for name, extra, message in (
        ("typo_ds", "  layout: folders\n  chanels: 1\n", r"dataset typo_ds: config: dataset.chanels: unknown key"),
        (
            "bad_ds",
            "  layout: folders\n  channels: 2\n",
            r"bad_ds: config: dataset.channels=2; expected 1 or 3",
        ),
    ):
        (tmp_path / f"{name}.yaml").write_text(base.format(name=name) + extra)
        with pytest.raises(KitError, match=message):
            competition_of(load_experiment(str(tmp_path / f"{name}.yaml")))
    (tmp_path / "plain.yaml").write_text(base.format(name="plain_ds") + "  layout: folders\n")
    comp = competition_of(load_experiment(str(tmp_path / "plain.yaml")))
    assert comp.spec["channels"] == ImageDataset().channels == 3 and comp.spec["file"] == "training_set.npz"
    assert comp.slug == "plain_ds"  # slug: null is the competition's name
    ai4mars = competition_of(load_experiment("ai4mars_lite0"))
    assert ai4mars.spec["test_agreement"] == SegmentationDataset().test_agreement  # not in its YAML: the default
    assert ai4mars.spec["channels"] == 1  # in its YAML: the YAML's value
