"""The whole real-data path as the README gives it: a user's own data.dir given once, at training, then every command
after training without it. Each result must equal the one obtained with data.dir passed explicitly, and none may
touch the synthetic data. Real chest X-rays from ../shared/data/pneumoniamnist (a small subset)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.cli import main

REAL = Path(__file__).parents[2] / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
pytestmark = pytest.mark.skipif(not REAL.exists(), reason="../shared/data/pneumoniamnist is absent")

TINY = ["trainer.epochs=1", "data.size=32", "data.folds=2", "trainer.batch_size=16"]


def subset(out: Path) -> Path:
    """40 train, 20 val and 24 test X-rays of each class (the real arrays, a slice of them)."""
    with np.load(REAL) as real:
        arrays = {}
        for split, n in (("train", 20), ("val", 10), ("test", 12)):
            labels = real[f"{split}_labels"][:, 0]
            picked = np.concatenate([np.flatnonzero(labels == c)[:n] for c in (0, 1)])
            arrays[f"{split}_images"], arrays[f"{split}_labels"] = (
                real[f"{split}_images"][picked],
                real[f"{split}_labels"][picked],
            )
    out.mkdir(parents=True)
    np.savez(out / "pneumoniamnist.npz", **arrays)
    return out


def kit(capsys, *args) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def last_number(text: str) -> float:
    return float(text.strip().splitlines()[-1].split()[-1])


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The user's project folder (the default KIT_HOME), their X-rays beside it as ../xrays."""
    subset(tmp_path / "xrays")
    home = tmp_path / "project"
    home.mkdir()
    monkeypatch.delenv("KIT_HOME", raising=False)
    monkeypatch.chdir(home)
    return home


@pytest.mark.slow
def test_a_run_trained_on_real_data_stays_on_it(project, capsys):
    given = "data.dir=../xrays"
    kit(capsys, "train-all", "--exp", "pneumonia_resnet18", given, *TINY)
    kit(capsys, "train-all", "--exp", "pneumonia_resnet18", given, *TINY, "name=drop5", "model.dropout=0.5")
    runs = project / "runs"
    record = json.loads((runs / "pneumonia_resnet18" / "fold0" / "run.json").read_text())
    assert record["data"]["path"] == str((project.parent / "xrays").resolve()) and record["data"]["files"] == 1

    # oof: the same CV without data.dir as with it, on the real labels
    alone = kit(capsys, "oof", "--exp", "pneumonia_resnet18")
    explicit = kit(capsys, "oof", "--exp", "pneumonia_resnet18", given)
    assert last_number(alone) == last_number(explicit)
    assert f"on its training data, {(project.parent / 'xrays').resolve()}" in alone
    folds = [json.loads((runs / "pneumonia_resnet18" / f"fold{k}" / "summary.json").read_text()) for k in (0, 1)]
    assert len(pd.read_csv(runs / "pneumonia_resnet18" / "oof.csv")) == sum(f["n_valid"] for f in folds) == 60

    # predict: the real test split (24 X-rays), scored against its labels
    kit(capsys, "predict", "--exp", "pneumonia_resnet18")
    scores = json.loads((runs / "pneumonia_resnet18" / "test_scores.json").read_text())
    kit(capsys, "predict", "--exp", "pneumonia_resnet18", given)
    again = json.loads((runs / "pneumonia_resnet18" / "test_scores.json").read_text())
    assert scores["auc"] == again["auc"] and scores["data"]["dir"] == str((project.parent / "xrays").resolve())
    submission = pd.read_csv(project / "submissions" / "pneumoniamnist" / "pneumonia_resnet18.csv")
    assert len(submission) == 24

    # explain: Grad-CAM on the fold's own real validation images
    kit(capsys, "explain", "--exp", "pneumonia_resnet18", "--fold", "0")
    pictures = sorted(p.name for p in (runs / "pneumonia_resnet18" / "fold0" / "explain").iterdir())
    assert pictures

    # export with int8 calibration: the same validation metrics either way
    kit(capsys, "export", "--exp", "pneumonia_resnet18", "--fold", "0", "--quantize", "int8")
    int8 = json.loads((runs / "pneumonia_resnet18" / "fold0" / "onnx_int8.json").read_text())
    kit(capsys, "export", "--exp", "pneumonia_resnet18", "--fold", "0", "--quantize", "int8", given)
    int8_again = json.loads((runs / "pneumonia_resnet18" / "fold0" / "onnx_int8.json").read_text())
    assert int8["fp32"]["metrics"] == int8_again["fp32"]["metrics"] and int8["validation_samples"] == 30

    # stack: two runs trained on the user's data
    kit(capsys, "predict", "--exp", "pneumonia_resnet18", "name=drop5")
    stacked = kit(capsys, "stack", "pneumoniamnist", "pneumonia_resnet18", "drop5")
    assert "stack" in stacked.splitlines()[-1]
    assert json.loads((runs / "stack-pneumonia_resnet18-drop5" / "scores.json").read_text())["data"]["dir"] == str(
        (project.parent / "xrays").resolve()
    )

    # runs: the real CV and the data each run trained on
    table = kit(capsys, "runs")
    line = next(row for row in table.splitlines() if " pneumonia_resnet18 " in row)
    assert str((project.parent / "xrays").resolve()) in line
    assert f"{last_number(alone):.4f}" in line

    assert not (project / "data").exists(), "no command generated or read the synthetic data"


def test_a_tune_study_resumes_on_its_recorded_data(project, capsys):
    given = "data.dir=../xrays"
    kit(capsys, "tune", "--exp", "pneumonia_resnet18", "--trials", "1", "--folds", "0", given, *TINY)
    kit(capsys, "tune", "--exp", "pneumonia_resnet18", "--trials", "2", "--folds", "0", *TINY)
    tune = project / "runs" / "pneumonia_resnet18" / "tune"
    trials = pd.read_csv(tune / "trials.csv")
    assert len(trials) == 2
    for trial in (0, 1):
        record = json.loads((tune / f"trial{trial}" / "fold0" / "run.json").read_text())
        assert record["data"]["path"] == str((project.parent / "xrays").resolve())
    best = (tune / "pneumonia_resnet18_tuned.yaml").read_text()
    assert str((project.parent / "xrays").resolve()) in best
    assert not (project / "data").exists()
    capsys.readouterr()
    assert main(["tune", "--exp", "pneumonia_resnet18", "--trials", "3", "--folds", "0", *TINY[:-1]]) == 2
    assert "trainer.batch_size 16 -> 64" in capsys.readouterr().err
