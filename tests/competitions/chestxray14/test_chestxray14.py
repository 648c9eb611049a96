"""ChestX-ray14: the release's exact layout, patient-grouped multi-label folds, AUROC against hand-worked and sklearn
figures, one-line errors on broken files, a fold trained and predicted as a user runs it, multi-label stacking."""

import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from kit.competitions import get_competition
from kit.competitions.chestxray14 import patient_folds
from kit.competitions.chestxray14.table import FINDINGS, HEADER, read_dataset
from kit.competitions.chestxray14.training import auroc_scores
from kit.errors import KitError
from kit.stack.run import run_stack
from tests.stack.test_stack import experiment, fake_base
from tests.test_cli_errors import assert_one_line_error


@pytest.fixture(scope="module")
def chest_dir(tmp_path_factory):
    return get_competition("chestxray14").synth(tmp_path_factory.mktemp("cxr") / "data", train=150, test=30, seed=1)


def test_synthetic_layout_is_the_release_s(chest_dir):
    assert (chest_dir / "Data_Entry_2017.csv").read_text().splitlines()[0] == HEADER
    entries = pd.read_csv(chest_dir / "Data_Entry_2017.csv")
    assert entries.shape[1] == 12 and entries.iloc[:, 11].isna().all()  # the trailing comma: 12 columns, last empty
    assert entries["Patient Age"].str.fullmatch(r"\d{3}Y").all()
    assert sorted(p.parent.parent.name for p in chest_dir.glob("images_*/images/*.png"))[0] == "images_001"
    assert any(Image.open(p).mode == "RGBA" for p in chest_dir.glob("images_*/images/*.png"))
    train, test = read_dataset(chest_dir)
    assert len(train.images) >= 150 and len(test.images) >= 30 and not set(train.patients) & set(test.patients)
    labels = np.concatenate([train.labels, test.labels])
    assert (labels.sum(axis=1) == 0).mean() > 0.45  # No Finding: about 55%
    counts = labels.sum(axis=0)
    assert counts[FINDINGS.index("Infiltration")] == counts.max()


def test_folds_keep_patients_whole_and_spread_rare_findings():
    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(400), rng.integers(1, 5, 400))
    labels = (rng.random((len(patients), 14)) < np.linspace(0.02, 0.3, 14)).astype(np.uint8)
    folds = patient_folds(patients, labels, 5, 42)
    per_patient = pd.Series(folds).groupby(patients).nunique()
    assert (per_patient == 1).all()
    positives = np.stack([labels[folds == k].sum(axis=0) for k in range(5)])
    assert positives.min() > 0 and (positives.max(axis=0) / positives.min(axis=0)).max() < 2.5


def test_auroc_on_a_hand_worked_case_and_against_sklearn():
    labels = np.zeros((4, 14), np.uint8)
    labels[:, 0] = [1, 0, 1, 0]
    labels[:, 1] = [1, 1, 0, 0]
    probs = np.full((4, 14), 0.5)
    probs[:, 0] = [0.9, 0.8, 0.3, 0.1]  # positive-negative pairs ranked right: (0.9>0.8, 0.9>0.1, 0.3<0.8, 0.3>0.1)
    probs[:, 1] = [0.6, 0.4, 0.5, 0.2]  # (0.6>0.5, 0.6>0.2, 0.4<0.5, 0.4>0.2)
    with pytest.warns(UserWarning, match="undefined .* Nodule"):
        scores = auroc_scores(labels, probs)
    assert scores["auroc_Atelectasis"] == 0.75 and scores["auroc_Cardiomegaly"] == 0.75
    assert np.isnan(scores["auroc_Hernia"]) and scores["mean_auroc"] == 0.75
    rng = np.random.default_rng(3)
    labels, probs = (rng.random((200, 14)) < 0.3).astype(np.uint8), rng.random((200, 14))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scores = auroc_scores(labels, probs)
    for k, finding in enumerate(FINDINGS):
        assert scores[f"auroc_{finding}"] == pytest.approx(roc_auc_score(labels[:, k], probs[:, k]), abs=1e-12)


def test_score_cli_prints_each_finding_and_the_mean_last(kit_here, chest_dir, tmp_path):
    entries = pd.read_csv(chest_dir / "Data_Entry_2017.csv").iloc[:, :2]
    entries.to_csv(tmp_path / "solution.csv", index=False)
    rng = np.random.default_rng(0)
    submission = pd.DataFrame({"Image Index": entries["Image Index"]})
    submission[list(FINDINGS)] = rng.random((len(entries), 14))
    submission.to_csv(tmp_path / "submission.csv", index=False)
    result = kit_here(["score", "chestxray14", "solution.csv", "submission.csv"], tmp_path)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("mean_auroc ") and 0.3 < float(last.split()[1]) < 0.7
    submission.loc[3, "Edema"] = 1.5
    submission.to_csv(tmp_path / "bad.csv", index=False)
    assert_one_line_error(kit_here(["score", "chestxray14", "solution.csv", "bad.csv"], tmp_path), "row 3", "'Edema'")


@pytest.mark.parametrize(
    "how, fragments",
    [
        ("list_row", ["train_val_list.txt line 1", "is not in Data_Entry_2017.csv"]),
        ("finding", ["unknown finding 'Flu'"]),
        ("image", ["train_val_list.txt: 1 of", "listed images have no file", "line 1)", "to train on the"]),
        ("age", ["row 2", "Patient Age 'fifty'"]),
        ("twice", ["train_val_list.txt line 3", "is listed twice (first on line 1)"]),
        ("both", ["is in both train_val_list.txt and test_list.txt"]),
    ],
)
def test_broken_files_are_one_error_line(kit_here, chest_dir, tmp_path, how, fragments):
    data = tmp_path / "broken"
    shutil.copytree(chest_dir, data)
    entries = data / "Data_Entry_2017.csv"
    lines = entries.read_text().splitlines()
    first = (data / "train_val_list.txt").read_text().splitlines()[0]
    row = next(k for k, line in enumerate(lines) if line.startswith(first))
    if how == "list_row":
        entries.write_text("\n".join(lines[:row] + lines[row + 1 :]) + "\n")
    elif how == "finding":
        entries.write_text("\n".join(lines[:row] + [lines[row].replace(",", ",Flu|", 1)] + lines[row + 1 :]) + "\n")
    elif how == "image":
        next(data.glob(f"images_*/images/{first}")).unlink()
    elif how in ("twice", "both"):
        target = data / ("train_val_list.txt" if how == "twice" else "test_list.txt")
        listed = target.read_text().splitlines()
        target.write_text("\n".join([*listed[:2], first, *listed[2:]]) + "\n")
    else:
        fields = lines[1].split(",")
        fields[4] = "fifty"
        entries.write_text("\n".join([lines[0], ",".join(fields), *lines[2:]]) + "\n")
    result = kit_here(["folds", "chestxray14", "--data", "broken"], tmp_path)
    assert_one_line_error(result, *fragments)


@pytest.mark.slow
def test_a_fold_trains_predicts_and_scores_the_official_test_list(chest_dir, tmp_path, kit_here):
    tiny = [f"data.dir={chest_dir}", "data.size=64", "data.folds=3", "trainer.epochs=2", "model.encoder=resnet18"]
    trained = kit_here(["train-fold", "--exp", "chestxray14_densenet121", *tiny], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].startswith("mean_auroc ")
    fold = tmp_path / "runs" / "chestxray14_densenet121" / "fold0"
    assert (fold / "roc.png").stat().st_size > 1000 and set(pd.read_json(fold / "thresholds.json").columns) <= set(
        FINDINGS
    )
    oof = pd.read_csv(fold / "oof.csv")
    assert list(oof.columns) == ["Image Index", *[f"y_{f}" for f in FINDINGS], *FINDINGS]
    train, test = read_dataset(chest_dir)
    (folds_file,) = (tmp_path / "folds").glob("data-*.csv")
    folds = pd.read_csv(folds_file)
    assert sorted(oof["Image Index"]) == sorted(folds.loc[folds["fold"] == 0, "id"])
    patients = dict(zip(train.images, train.patients, strict=True))
    assert (
        pd.Series([patients[i] for i in folds["id"]])
        .groupby(folds["fold"].to_numpy())
        .apply(set)
        .pipe(lambda s: all(not (s[a] & s[b]) for a in s.index for b in s.index if a < b))
    )
    explained = kit_here(["explain", "--exp", "chestxray14_densenet121", *tiny], tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert list((fold / "explain").glob("gradcam_*_*.png"))
    predicted = kit_here(["predict", "--exp", "chestxray14_densenet121", *tiny], tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert "labelled test split" in predicted.stdout and "mean_auroc" in predicted.stdout
    submission = pd.read_csv(tmp_path / "submissions" / "nih-chest-xrays" / "data" / "chestxray14_densenet121.csv")
    assert list(submission.columns) == ["Image Index", *FINDINGS] and list(submission["Image Index"]) == test.images


@pytest.mark.slow
def test_multi_label_stack_of_two_bases(chest_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    a = experiment(tmp_path, "cxr_a", "chestxray14_densenet121", chest_dir)
    b = experiment(tmp_path, "cxr_b", "chestxray14_densenet121", chest_dir)
    fake_base(a, seed=1, strength=1.2)
    fake_base(b, seed=2, strength=0.8)
    out, scores = run_stack("chestxray14", [a, b])
    assert scores["stack"] > max(scores["cxr_a"], scores["cxr_b"]) - 0.02 and scores["cxr_a"] > 0.6
    assert (out / "report.md").exists()
    with pytest.raises(KitError, match="two or more"):
        run_stack("chestxray14", [a])
