"""The phantom's labels are drawn from known probabilities (oracle.csv), and a fold's oracle figure is the metric of
those probabilities on its validation rows."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from kit.competitions.rsna import metric, readers
from kit.competitions.rsna.layout import SEVERITY_COLUMNS, SEVERITY_LABELS, TARGETS


def calibration_gaps(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[float]:
    """Per class and probability decile: |observed frequency - mean probability| in binomial standard errors."""
    gaps = []
    for k in range(probs.shape[1]):
        edges = np.quantile(probs[:, k], np.linspace(0, 1, bins + 1))
        which = np.clip(np.searchsorted(edges, probs[:, k], side="right") - 1, 0, bins - 1)
        for b in range(bins):
            rows = which == b
            if rows.sum() < 50:
                continue
            p = probs[rows, k].mean()
            se = np.sqrt(max(p * (1 - p), 1e-4) / rows.sum())
            gaps.append(abs((labels[rows] == k).mean() - p) / se)
    return gaps


def test_labels_are_drawn_from_the_true_probabilities_and_keep_the_real_frequencies():
    rng = np.random.default_rng(11)
    truths = [readers.draw_study(rng) for _ in range(3000)]
    probs = np.concatenate([t.probabilities.reshape(-1, 3) for t in truths])
    labels = np.concatenate([t.severities.reshape(-1) for t in truths])
    gaps = calibration_gaps(probs, labels)
    assert len(gaps) >= 20 and max(gaps) < 4.0, np.round(gaps, 2)
    # not a deterministic function of the latent: most cells' labels are sure, a real share is not
    assert 0.05 < (probs.max(axis=1) < 0.9).mean() < 0.5
    frequencies = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(frequencies, [0.78, 0.156, 0.064], atol=0.01)


def test_the_oracle_scores_in_the_real_competitions_range():
    rng = np.random.default_rng(5)
    truths = [readers.draw_study(rng) for _ in range(1500)]
    ids = list(range(1, len(truths) + 1))
    flat = np.stack([t.severities.reshape(-1) for t in truths]).reshape(-1)
    solution = pd.DataFrame(np.eye(3)[flat], columns=list(SEVERITY_COLUMNS))
    solution.insert(0, "row_id", [f"{s}_{t}" for s in ids for t in TARGETS])
    solution["sample_weight"] = np.array([1.0, 2.0, 4.0])[flat]  # the competition's weights, written out here
    submission = pd.DataFrame(np.concatenate([t.probabilities.reshape(-1, 3) for t in truths]),
                              columns=list(SEVERITY_COLUMNS))  # fmt: skip
    submission.insert(0, "row_id", solution["row_id"])
    assert 0.20 <= metric.score(solution, submission) <= 0.45


def test_oracle_csv_holds_one_row_per_labelled_cell_whose_probabilities_the_labels_follow(rsna_dir):
    train = pd.read_csv(rsna_dir / "train.csv")
    oracle = pd.read_csv(rsna_dir / "oracle.csv")
    assert list(oracle.columns) == ["row_id", *SEVERITY_COLUMNS]
    labelled = train.melt("study_id", var_name="target", value_name="label").dropna()
    assert len(labelled) < 25 * len(train)  # the synthetic data leaves some cells unlabelled, as the real one does
    labelled["row_id"] = labelled["study_id"].astype(str) + "_" + labelled["target"]
    assert sorted(oracle["row_id"]) == sorted(labelled["row_id"])
    np.testing.assert_allclose(oracle[list(SEVERITY_COLUMNS)].sum(axis=1), 1.0)
    joined = oracle.merge(labelled, on="row_id")
    codes = joined["label"].map(SEVERITY_LABELS.index).to_numpy()
    # few rows here (8 studies): the mean probability of each severity is its frequency within sampling error
    for k, column in enumerate(SEVERITY_COLUMNS):
        p = joined[column].to_numpy()
        assert abs((codes == k).mean() - p.mean()) < 4 * np.sqrt((p * (1 - p)).sum()) / len(p) + 1e-9, column


@pytest.mark.slow
def test_a_fold_prints_and_records_the_oracle_on_its_own_rows(tmp_path, rsna_dir):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rsna-synth").symlink_to(rsna_dir)
    overrides = ["data.slices=2", "data.size=32", "data.folds=3", "trainer.epochs=1", "trainer.batch_size=4",
                 "trainer.warmup_epochs=0"]  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "kit.cli", "train-fold", "--exp", "rsna_resnet", "--fold", "0",
                             *overrides], cwd=tmp_path, capture_output=True, text=True, env=None)  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = pd.read_json(tmp_path / "runs/rsna_resnet/fold0/summary.json", typ="series")

    folds = pd.read_csv(next((tmp_path / "folds").glob("*.csv")))
    validation = set(folds.loc[folds["fold"] == 0, "id"])
    train = pd.read_csv(rsna_dir / "train.csv")
    cells = train[train["study_id"].isin(validation)].melt("study_id", var_name="target", value_name="label").dropna()
    cells["row_id"] = cells["study_id"].astype(str) + "_" + cells["target"]
    oracle = pd.read_csv(rsna_dir / "oracle.csv").set_index("row_id").loc[cells["row_id"]].reset_index()
    codes = cells["label"].map(SEVERITY_LABELS.index).to_numpy()
    solution = pd.DataFrame(np.eye(3)[codes], columns=list(SEVERITY_COLUMNS))
    solution.insert(0, "row_id", cells["row_id"].to_numpy())
    solution["sample_weight"] = np.array([1.0, 2.0, 4.0])[codes]
    expected = metric.score(solution, oracle)
    assert summary["oracle_score"] == pytest.approx(expected, rel=1e-9)
    regret = (summary["score"] - expected) / (summary["prior_baseline_score"] - expected)
    assert summary["regret"] == pytest.approx(regret)
    lines = result.stdout.strip().splitlines()
    assert f"oracle {expected:.4f}" in lines[-2]
    assert f"prior baseline {summary['prior_baseline_score']:.4f}" in lines[-2]
    assert lines[-1] == f"score {summary['score']:.4f}" and " in all" in lines[-3]
