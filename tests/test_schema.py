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
