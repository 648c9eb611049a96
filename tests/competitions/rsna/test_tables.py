import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.cli import main
from kit.competitions.rsna.layout import SEVERITY_LABELS, TARGETS
from kit.competitions.rsna.tables import load_studies
from kit.errors import DataError


@pytest.fixture
def comp(rsna_dir, tmp_path):
    """A private copy of the CSVs (images shared by symlink) that a test may break."""
    copy = tmp_path / "comp"
    copy.mkdir()
    for csv in rsna_dir.glob("*.csv"):
        shutil.copy(csv, copy / csv.name)
    for images in ("train_images", "test_images"):
        (copy / images).symlink_to(rsna_dir / images)
    return copy


def test_labels_round_trip(rsna_dir):
    studies = load_studies(rsna_dir, "train")
    raw = pd.read_csv(rsna_dir / "train.csv").set_index("study_id")
    assert [s.study_id for s in studies] == raw.index.tolist()
    for study in studies:
        expected = [
            SEVERITY_LABELS.index(v) if isinstance(v, str) else -1 for v in raw.loc[study.study_id, list(TARGETS)]
        ]
        assert study.labels.tolist() == expected
        assert set(study.series) == {"sag_t1", "sag_t2", "axial_t2"}
    assert any((s.labels == -1).any() for s in studies), "the synthetic data should miss a few labels"
    assert any(len(s.series["axial_t2"]) == 2 for s in studies), "some studies should have two axial series"


def test_test_split_can_lack_a_view(rsna_dir):
    studies = load_studies(rsna_dir, "test")
    assert len(studies) == 3
    assert all(s.labels is None for s in studies)
    assert any(len(s.series) < 3 for s in studies)


def test_missing_csv_column(comp):
    frame = pd.read_csv(comp / "train.csv").drop(columns=TARGETS[3])
    frame.to_csv(comp / "train.csv", index=False)
    with pytest.raises(DataError, match=rf"train.csv: missing column\(s\) {TARGETS[3]}"):
        load_studies(comp)


def test_renamed_csv_column(comp):
    frame = pd.read_csv(comp / "train_series_descriptions.csv").rename(columns={"series_description": "description"})
    frame.to_csv(comp / "train_series_descriptions.csv", index=False)
    with pytest.raises(DataError, match="series_description; unexpected column.*description"):
        load_studies(comp)


def test_label_outside_the_three(comp):
    frame = pd.read_csv(comp / "train.csv")
    frame.loc[2, TARGETS[5]] = "Mild"
    frame.to_csv(comp / "train.csv", index=False)
    with pytest.raises(DataError, match=rf"row 4 \(study_id {frame.study_id[2]}\), column {TARGETS[5]}: label 'Mild'"):
        load_studies(comp)


def test_unknown_series_description(comp, capsys):
    frame = pd.read_csv(comp / "train_series_descriptions.csv")
    frame.loc[1, "series_description"] = "Coronal T1"
    frame.to_csv(comp / "train_series_descriptions.csv", index=False)
    with pytest.raises(DataError, match="row 3 .*unknown series_description 'Coronal T1'"):
        load_studies(comp)
    assert main(["folds", "rsna", "--data", str(comp)]) == 0  # folds need only train.csv
    with pytest.raises(DataError):
        load_studies(comp)


def test_cli_reports_bad_csv_without_traceback(comp, capsys):
    frame = pd.read_csv(comp / "train.csv")
    frame.loc[0, TARGETS[0]] = "severe"
    frame.to_csv(comp / "train.csv", index=False)
    assert main(["folds", "rsna", "--data", str(comp)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.csv" in err and "Traceback" not in err


def test_labels_are_integers(rsna_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labels = np.stack([s.labels for s in load_studies(rsna_dir)])
    assert labels.dtype == np.int64 and set(np.unique(labels)) <= {-1, 0, 1, 2}


def test_studies_without_images_are_one_error_or_left_out_on_request(rsna_dir, tmp_path):
    from kit.competitions.rsna.tables import absent_studies

    copy = tmp_path / "some"
    copy.mkdir()
    for csv in rsna_dir.glob("*.csv"):
        shutil.copy(csv, copy / csv.name)
    (copy / "test_images").symlink_to(rsna_dir / "test_images")
    listed = sorted(p.name for p in (rsna_dir / "train_images").iterdir())
    (copy / "train_images").mkdir()
    for study in listed[::2]:
        (copy / "train_images" / study).symlink_to(rsna_dir / "train_images" / study)
    kept = load_studies(copy, "train")
    assert sorted(str(s.study_id) for s in kept) == listed[::2]
    absent = [int(s) for s in listed[1::2]]
    with pytest.raises(DataError, match=rf"some/train_images: {len(absent)} of the {len(listed)} studies in train.csv "
                                        rf"have no folder here \(e\.g\. {absent[0]}\); data\.studies=present trains "
                                        rf"on the {len(listed[::2])} with images"):  # fmt: skip
        absent_studies({"data": {"studies": "all"}}, copy, absent, len(listed))
    absent_studies({"data": {"studies": "present"}}, copy, absent, len(listed))


REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "rsna-2024-lumbar"


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/rsna-2024-lumbar is absent")
def test_training_on_the_real_folder_says_what_is_missing_in_one_line(tmp_path):
    """As a user runs it: relative data.dir, default KIT_HOME; 1,974 of 1,975 studies have no images here."""
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    (tmp_path / "data").symlink_to(REAL.resolve())
    for extra, message in (
        ((), r"^error: \S*data/train_images: 1,974 of the 1,975 studies in train.csv have no folder here \(e\.g\. "
             r"\d+\); data.studies=present trains on the 1 with images$"),
        (("data.studies=present",), r"^error: fold 0: 0 training and \d validation samples with data \(1 in all\)"),
    ):  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "kit.cli", "train-fold", "--exp", "rsna_two_stage", "--fold",
                                 "0", "data.dir=data", *extra], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=600)  # fmt: skip
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert re.match(message, result.stderr), result.stderr
        assert not (tmp_path / "runs").exists()
