import numpy as np
import pandas as pd
import pytest

from kit.competitions import get_competition
from kit.data.folds import load_or_make_folds, split_folds
from kit.errors import KitError


def test_split_is_grouped_stratified_and_seeded():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 3)  # three rows per patient
    strata = np.repeat(rng.choice(3, size=60, p=[0.6, 0.3, 0.1]), 3)
    folds = split_folds(np.arange(180), strata, groups, n_splits=5, seed=1)
    assert set(folds) == set(range(5))
    assert pd.Series(folds).groupby(groups).nunique().max() == 1  # a group never spans folds
    for stratum in np.unique(strata):
        counts = np.bincount(folds[strata == stratum], minlength=5)
        assert counts.max() - counts.min() <= 3 * 2  # each stratum spread over the folds (3 rows per group)
    np.testing.assert_array_equal(folds, split_folds(np.arange(180), strata, groups, n_splits=5, seed=1))
    assert not np.array_equal(folds, split_folds(np.arange(180), strata, groups, n_splits=5, seed=2))


def test_folds_file_is_made_once_and_reused(tmp_path):
    ids = list(range(100, 130))
    strata = [i % 2 for i in ids]
    path = tmp_path / "folds.csv"
    first = load_or_make_folds(path, ids, strata, ids, n_splits=3, seed=0)
    (made,) = tmp_path.glob("folds-*.csv")  # keyed by the data: its ids and strata
    written = made.read_bytes()
    again = load_or_make_folds(path, ids[::-1], strata[::-1], ids, n_splits=3, seed=0)  # the same data, reordered
    assert made.read_bytes() == written and first.attrs["path"] == str(made)
    pd.testing.assert_series_equal(first.loc[ids], again.loc[ids])
    load_or_make_folds(path, ids, [0] * 30, ids, n_splits=3, seed=0)  # other labels: other data, its own split
    assert len(list(tmp_path.glob("folds-*.csv"))) == 2
    with pytest.raises(KitError, match="made with n_splits=3, seed=0"):
        load_or_make_folds(path, ids, strata, ids, n_splits=5, seed=0)
    assert load_or_make_folds(path, [*ids, 999], [*strata, 0], [*ids, 999], n_splits=3, seed=0).attrs["path"] != str(
        made
    )  # a dataset with one more sample is another dataset: it never reuses this split


def test_a_folds_file_that_holds_other_data_is_refused(tmp_path):
    from kit.data.folds import keyed_path

    ids, strata = list(range(30)), [i % 2 for i in range(30)]
    path = tmp_path / "data.csv"
    load_or_make_folds(path, ids, strata, ids, n_splits=3, seed=0)
    made = keyed_path(path, ids, strata)
    meta = made.with_suffix(".json")
    meta.write_text(meta.read_text().replace('"n": 30', '"n": 40'))  # as if written for a larger dataset
    with pytest.raises(KitError, match="holds 40 samples, the data has 30"):
        load_or_make_folds(path, ids, strata, ids, n_splits=3, seed=0)


def test_rsna_folds_cover_every_study(rsna_dir, kit_home):
    comp = get_competition("rsna")
    folds = comp.folds(rsna_dir, n_splits=4, seed=3)
    labels = pd.read_csv(rsna_dir / "train.csv")
    assert sorted(folds.index) == sorted(labels.study_id)
    assert set(folds) == set(range(4))
    assert comp.folds_path(rsna_dir).is_relative_to(kit_home)
