"""The competition registry: discovered, never listed by hand; an incomplete competition fails when it registers."""

from pathlib import Path

import pandas as pd
import pytest

from kit.competitions import competition_names, get_competition, register_competition
from kit.competitions.base import Competition
from kit.competitions.parts import FoldTraining, Stacking
from kit.errors import KitError

ALL = competition_names()


def test_every_competition_package_registers_itself():
    packages = {p.name for p in Path(__file__).parents[2].joinpath("kit", "competitions").iterdir() if p.is_dir()}
    packages.discard("__pycache__")
    registered = {type(get_competition(name)).__module__.split(".")[2] for name in ALL}
    assert registered == packages


def test_a_competition_missing_a_required_member_fails_at_registration():
    class HalfTraining(FoldTraining):  # no formats, no objective
        metric_name, metric_mode, losses, oof_file = "acc", "max", {}, "oof.csv"

        def __init__(self, cfg, data_dir): ...

        def ids(self, split): ...

        def dataset(self, ids, split, augment_seed=None): ...

    with pytest.raises(TypeError, match=r"lacks .*score.*training_class.evaluate"):

        @register_competition
        class Half(Competition):
            name, slug, id_column, synth_sizes = "half", "half", "id", {"train": 1, "test": 1}
            training_class = HalfTraining

            def generate(self, out, train, test, seed, force): ...

    assert "half" not in competition_names()


@pytest.mark.parametrize("name", ALL)
def test_folds_come_from_the_strata_hook_and_cover_every_training_sample(name, tmp_path, kit_home):
    comp = get_competition(name)
    data = comp.synth(tmp_path / "data", train=12, test=2, seed=1)
    strata = comp.strata(data)
    folds = comp.folds(data, n_splits=2, seed=0)
    assert len(folds) == len(strata) and set(folds) == {0, 1}
    for stratum in set(strata):  # stratified: each fold holds some of every common stratum
        in_stratum = folds.to_numpy()[(strata == stratum).to_numpy()]
        assert len(in_stratum) < 4 or set(in_stratum) == {0, 1}
    assert isinstance(comp.test_row_ids(data, limit=1), list)


def test_stacking_is_optional_and_refused_with_one_line_where_absent():
    from kit.competitions.parts import stacking

    class Plain:
        pass

    with pytest.raises(KitError, match="does not support stacking"):
        stacking(Plain(), "plain")
    assert all(issubclass(get_competition(n).training_class, Stacking) for n in ("rsna", "mars"))


def test_an_unknown_competition_lists_the_registered_ones():
    with pytest.raises(KitError, match="valid: " + ", ".join(ALL)):
        get_competition("nosuch")


def test_score_names_the_official_metric(tmp_path):
    comp = get_competition("mars")
    frame = pd.DataFrame({comp.id_column: [0], **{str(k): [0] for k in range(64 * 128)}})
    assert comp.metric_name in comp.score(frame, frame)
