"""NIH ChestX-ray14 as users download it, on the real label files and images in ../shared/data/nih-chestxray14:
Kaggle's sample_labels.csv (11 columns, no trailing comma) and NIH's 2020 revision (integer ages, CRLF)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kit.competitions.chestxray14 import patient_folds
from kit.competitions.chestxray14.table import FINDINGS, NO_FINDING, parse_findings, read_dataset, read_entries
from kit.competitions.imageclass.layouts import load_image
from kit.errors import KitError

NIH = Path(__file__).parents[4] / "shared" / "data" / "nih-chestxray14"
pytestmark = pytest.mark.skipif(not NIH.exists(), reason="../shared/data/nih-chestxray14 is absent")


def findings_named(entries) -> set[str]:
    return {name for text in entries["Finding Labels"] for name in text.split("|")}


def test_both_label_formats_read_to_the_same_15_findings():
    sample, revision = read_entries(NIH), read_entries(NIH / "data")
    assert sample.attrs["format"] == "Kaggle's sample_labels" and len(sample) == 5606
    assert revision.attrs["format"] == "NIH's 2020 revision" and len(revision) == 40000
    assert findings_named(sample) == findings_named(revision) == {*FINDINGS, NO_FINDING}
    assert sample["Patient ID"].nunique() == 4230
    labels = np.stack([parse_findings(t, "sample") for t in sample["Finding Labels"]])
    assert labels.sum(axis=0)[FINDINGS.index("Infiltration")] == 967 and labels.sum(axis=0)[-1] == 13  # Hernia
    assert revision.loc["00000001_000.png", "Patient Age"] == "57", "integer ages, CRLF stripped"


def test_folds_of_the_real_sample_keep_each_patient_in_one_fold():
    sample = read_entries(NIH)
    labels = np.stack([parse_findings(t, "sample") for t in sample["Finding Labels"]])
    patients = sample["Patient ID"].to_numpy()
    folds = patient_folds(patients, labels, 5, 42)
    per_patient = {p: set(folds[patients == p]) for p in np.unique(patients)}
    assert all(len(f) == 1 for f in per_patient.values())
    assert np.bincount(folds).min() > 0.15 * len(folds), "five folds of about a fifth each"
    for finding in range(len(FINDINGS)):
        assert np.all(np.bincount(folds[labels[:, finding] == 1], minlength=5) > 0), FINDINGS[finding]


def test_the_three_real_pngs_load_at_1024_and_absent_images_are_counted(tmp_path):
    train, test = read_dataset(NIH / "data")
    assert train.images == ["00000001_000.png", "00000002_000.png", "00000013_003.png"] and test.images == []
    assert train.labels[0, FINDINGS.index("Cardiomegaly")] == 1 and train.labels[1].sum() == 0
    for path in train.files:
        with Image.open(path) as image:
            assert image.size == (1024, 1024)
        assert load_image(path, 1024, 1).shape == (1024, 1024, 1)
    shutil.copytree(NIH / "data", tmp_path / "data")
    (tmp_path / "data" / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n00000001_002.png\n")
    (tmp_path / "data" / "test_list.txt").write_text("00000002_000.png\n")
    with pytest.raises(KitError, match=r"2 of 3 listed images have no file .* \(e.g. 00000001_001.png, line 2\)"):
        read_dataset(tmp_path / "data")


def test_folds_over_too_few_present_images_say_how_many_were_listed(tmp_path):
    from kit.competitions.chestxray14 import ChestXray14

    with pytest.raises(KitError, match=r"5 folds need 5 patients; the 3 training images present \(40000 listed in "
                                       r"Data_Entry_2017_v2020_first40000rows.csv\) come from 3"):  # fmt: skip
        ChestXray14().folds(NIH / "data", 5, 42)
