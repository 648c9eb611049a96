"""Layered experiment YAMLs: bases merged in order, the file last; a user's YAML on a kit experiment; bad bases in one
line; and no kit experiment restating what its bases already give."""

import pytest
import yaml

from kit.config import EXPERIMENTS, _base_path, experiment_names, load_experiment, merged, nested, read_layered
from kit.errors import KitError
from kit.schema import Trainer


def test_mappings_merge_and_everything_else_is_replaced():
    base = {"trainer": {"lr": 0.1, "epochs": 3}, "model": {"channels": [1, 2, 3]}}
    update = {"trainer": {"lr": 0.2}, "model": {"channels": [4]}}
    assert merged(base, update) == {"trainer": {"lr": 0.2, "epochs": 3}, "model": {"channels": [4]}}
    assert base["trainer"]["lr"] == 0.1, "the base is not changed"


def test_a_users_yaml_on_a_kit_experiment_states_only_its_deltas(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: [imagefolder_resnet18]\ntrainer:\n  epochs: 3\ndata:\n  dir: shades\n")
    mine, kit = load_experiment(str(tmp_path / "mine.yaml")), load_experiment("imagefolder_resnet18")
    assert mine["trainer"]["epochs"] == 3 and mine["data"]["dir"] == "shades"
    assert {k: v for k, v in mine["trainer"].items() if k != "epochs"} == {
        k: v for k, v in kit["trainer"].items() if k != "epochs"
    }
    assert mine["dataset"] == kit["dataset"] and mine["name"] == "mine" and "base" not in mine


def test_a_dotted_key_is_its_section_as_on_the_command_line(tmp_path):
    (tmp_path / "dotted.yaml").write_text("base: [imagefolder_resnet18]\ntrainer.epochs: 3\ndata.size: 32\n"
                                          "trainer:\n  lr: 0.01\n")  # fmt: skip
    (tmp_path / "sections.yaml").write_text("base: [imagefolder_resnet18]\ntrainer:\n  epochs: 3\n  lr: 0.01\n"
                                            "data:\n  size: 32\n")  # fmt: skip
    dotted, sections = load_experiment(str(tmp_path / "dotted.yaml")), load_experiment(str(tmp_path / "sections.yaml"))
    assert dotted["trainer"] == sections["trainer"] and dotted["data"] == sections["data"]
    assert dotted["trainer"]["epochs"] == 3 and dotted["data"]["folds"] == 5, "the bases' other keys stay"
    (tmp_path / "empty.yaml").write_text("base: [imagefolder_resnet18]\ntrainer:\ntrainer.epochs: 3\n")
    assert load_experiment(str(tmp_path / "empty.yaml"))["trainer"]["epochs"] == 3, "an empty section takes keys"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("trainer.epochs: 3\ntrainer:\n  epochs: 4\n", "trainer.epochs is set twice in this file"),
        ("competition.name: x\ncompetition: mars\n", "competition.name: competition is not a section"),
    ],
)
def test_a_dotted_key_that_clashes_is_one_error(tmp_path, text, fragment):
    (tmp_path / "clash.yaml").write_text(text)
    with pytest.raises(KitError, match=fragment):
        load_experiment(str(tmp_path / "clash.yaml"))


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("base: [nonesuch]\n", "base 'nonesuch' is neither in kit/experiments/_base/ nor an experiment"),
        ("base: [other.yaml]\n", "other.yaml not found"),
        ("base: [loop.yaml]\n", "its bases include itself"),
    ],
)
def test_a_bad_base_is_one_error(tmp_path, text, fragment):
    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(KitError, match=fragment):
        load_experiment(str(tmp_path / "loop.yaml"))


@pytest.mark.parametrize("name", experiment_names())
def test_no_kit_experiment_restates_its_bases(name):
    own = nested(yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text()), EXPERIMENTS / f"{name}.yaml")
    given: dict = {"trainer": {k: v for k, v in Trainer.defaults().items() if k not in Trainer.optional}}
    for base in own.get("base", []):
        given = merged(given, read_layered(_base_path(base, EXPERIMENTS / f"{name}.yaml")))
    repeated = [f"{section}.{key}" for section, keys in own.items() if isinstance(keys, dict)
                for key, value in keys.items() if given.get(section, {}).get(key, object()) == value]  # fmt: skip
    assert not repeated, f"{name} repeats what its bases give: {repeated}"


def test_a_dotted_key_that_turns_the_competition_into_a_section_is_one_error(tmp_path):
    from kit.competitions import competition_of

    (tmp_path / "mine.yaml").write_text("base: [imagefolder_resnet18]\ncompetition.x: 3\n")
    with pytest.raises(KitError, match=r"mine: competition=\{'x': 3\}; expected a competition's name"):
        competition_of(load_experiment(str(tmp_path / "mine.yaml")))
