"""`kit tune` as a user runs it: trials under runs/<exp>/tune/, pruning, a killed search that resumes, a best YAML
that trains, and one-line errors for a bad search section."""

import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from kit.config import load_experiment
from tests.test_cli_errors import assert_one_line_error, run_kit

TINY = ["trainer.epochs=2", "trainer.batch_size=32", "data.size=28", "data.folds=3"]


def broken(tmp_path, search) -> str:
    cfg = load_experiment("pneumonia_resnet18")
    cfg["search"] = search
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize(
    "search, fragment",
    [
        (None, "has no search: section"),
        ({"trainer.lr": {"low": "small", "high": 0.1}}, "search.trainer.lr: low='small'"),
        ({"trainer.lr": {"low": 0.1, "high": 0.01}}, "low < high"),
        ({"trainer.nonsense": {"low": 0.1, "high": 1.0}}, "unknown key 'trainer.nonsense'"),
        ({"loss.label_smoothing": {"choices": []}}, "choices must be a non-empty list"),
        ({"trainer.lr": {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
    ],
)
def test_a_bad_search_section_is_one_error_line(kit_here, tmp_path, search, fragment):
    assert_one_line_error(kit_here(["tune", "--exp", broken(tmp_path, search), "--trials", "2"], tmp_path), fragment)


@pytest.mark.slow
def test_a_killed_search_resumes_and_its_best_yaml_trains(tmp_path):
    command = [sys.executable, "-m", "kit.cli", "tune", "--exp", "pneumonia_resnet18", "--trials", "3", *TINY]
    tune_dir = tmp_path / "runs" / "pneumonia_resnet18" / "tune"
    search = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (tune_dir / "trial1" / "fold0" / "history.csv").exists() and time.time() < deadline:
        time.sleep(0.5)
    search.kill()  # in trial 1's training, after its first epoch
    search.wait()
    time.sleep(5)  # past the heartbeat's grace period

    resumed = run_kit(["tune", "--exp", "pneumonia_resnet18", "--trials", "3", *TINY], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    table = pd.read_csv(tune_dir / "trials.csv")
    assert table.loc[1, "state"] == "fail"
    retried = table[(table["trial"] > 1) & (table["trainer.lr"] == table.loc[1, "trainer.lr"])]
    assert len(retried) == 1, table  # the interrupted trial ran again with its parameters
    assert table["state"].isin(["complete", "pruned"]).sum() == 3
    assert (tune_dir / "history.png").exists() and (tune_dir / "study.db").exists()

    best = next(tune_dir.glob("*_tuned.yaml"))
    assert "search" not in yaml.safe_load(best.read_text())
    trained = run_kit(["train-fold", "--exp", str(best.relative_to(tmp_path)), "trainer.epochs=1"], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert (tmp_path / "runs" / "pneumonia_resnet18_tuned" / "fold0" / "summary.json").exists()
