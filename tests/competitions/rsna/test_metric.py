import math
import warnings

import numpy as np
import pandas as pd
import pytest
import sklearn.metrics

from kit.cli import main
from kit.competitions.rsna.layout import TARGETS
from kit.competitions.rsna.metric import MetricInputError, score, score_parts
from kit.competitions.rsna.submission import solution_frame, submission_frame

COLS = ["normal_mild", "moderate", "severe"]


def frames(rows):
    """rows: (row_id, true class, prediction triple) -> (solution, submission)."""
    solution = pd.DataFrame(
        [{"row_id": r, **dict(zip(COLS, np.eye(3)[y], strict=True)), "sample_weight": [1, 2, 4][y]} for r, y, _ in rows]
    )
    submission = pd.DataFrame([{"row_id": r, **dict(zip(COLS, p, strict=True))} for r, _, p in rows])
    return solution, submission


def official(solution, submission, any_severe_scalar=1.0):
    """Kaggle's rsna-lumbar-metric restated with sklearn's log_loss, as the oracle (rows aligned by row_id first)."""
    solution = solution.sort_values("row_id").reset_index(drop=True)
    submission = submission.set_index("row_id").loc[solution["row_id"]].reset_index()
    solution["study_id"] = solution["row_id"].str.split("_").str[0]
    groups = ("spinal", "foraminal", "subarticular")
    solution["condition"] = [next(c for c in groups if c in r) for r in solution["row_id"]]
    submission["study_id"], submission["condition"] = solution["study_id"], solution["condition"]
    losses, weights = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for condition in ("spinal", "foraminal", "subarticular"):
            idx = solution["condition"] == condition
            pred = submission.loc[idx, COLS].values
            pred = pred / pred.sum(axis=1, keepdims=True)  # Kaggle's sklearn 1.2.2 renormalised; today's only warns
            weight = solution.loc[idx, "sample_weight"].values
            losses.append(sklearn.metrics.log_loss(solution.loc[idx, COLS].values, pred, sample_weight=weight))
            weights.append(1)
        spinal_sol = solution[solution["condition"] == "spinal"].groupby("study_id")
        spinal_sub = submission[submission["condition"] == "spinal"].groupby("study_id")
        any_severe = spinal_sol["severe"].max(), spinal_sub["severe"].max()
        weight = spinal_sol["sample_weight"].max()
        losses.append(sklearn.metrics.log_loss(*any_severe, sample_weight=weight, labels=[0, 1]))
        weights.append(any_severe_scalar)
    return float(np.average(losses, weights=weights))


def test_worked_example():
    solution, submission = frames(
        [
            ("1_spinal_canal_stenosis_l1_l2", 2, (0.1, 0.1, 0.8)),
            ("2_spinal_canal_stenosis_l1_l2", 0, (0.6, 0.2, 0.2)),
            ("1_left_neural_foraminal_narrowing_l1_l2", 1, (0.25, 0.5, 0.25)),
            ("2_left_subarticular_stenosis_l1_l2", 0, (0.4, 0.2, 0.2)),  # not normalised: counts as (.5, .25, .25)
        ]
    )
    spinal = (4 * -math.log(0.8) + -math.log(0.6)) / 5
    any_severe = (4 * -math.log(0.8) + 1 * -math.log(1 - 0.2)) / 5
    parts = score_parts(solution, submission)
    assert parts["spinal"] == pytest.approx(spinal, abs=1e-12)
    assert parts["foraminal"] == pytest.approx(math.log(2), abs=1e-12)
    assert parts["subarticular"] == pytest.approx(math.log(2), abs=1e-12)
    assert parts["any_severe_spinal"] == pytest.approx(any_severe, abs=1e-12)
    assert parts["score"] == pytest.approx((spinal + 2 * math.log(2) + any_severe) / 4, abs=1e-12)
    assert score(solution, submission.iloc[::-1]) == pytest.approx(parts["score"], abs=1e-15)  # rows in any order


EPS64 = 2.220446049250313e-16  # np.finfo(np.float64).eps: sklearn 1.2.2's eps="auto" for float64 predictions


def test_values_above_one_are_clipped_before_normalising():
    # Kaggle's sklearn (1.2.2) clips to [eps, 1 - eps] and then renormalises: (2, 1, 1) counts as (1/3, 1/3, 1/3).
    # Any-severe takes the spinal severe value as given (clipped, never renormalised), so a study without a severe
    # case predicted severe = 1 pays -log(1 - (1 - eps)).
    solution, submission = frames(
        [
            ("5_spinal_canal_stenosis_l1_l2", 0, (2.0, 1.0, 1.0)),
            ("5_left_neural_foraminal_narrowing_l1_l2", 0, (1.0, 0.0, 0.0)),
            ("5_left_subarticular_stenosis_l1_l2", 0, (1.0, 0.0, 0.0)),
        ]
    )
    parts = score_parts(solution, submission)
    assert parts["spinal"] == pytest.approx(math.log(3), abs=1e-12)
    assert parts["foraminal"] == pytest.approx(0.0, abs=1e-12)
    assert parts["any_severe_spinal"] == pytest.approx(-math.log(1 - (1 - EPS64)), rel=1e-9)
    assert score(solution, submission, "row_id", any_severe_scalar=0.0) == pytest.approx(math.log(3) / 3, abs=1e-12)


def sklearn_122_log_loss(y_true, y_pred, sample_weight):
    """scikit-learn 1.2.2's log_loss restated by hand: clip to the dtype's eps, (1 - p, p) for 1-D predictions,
    renormalise the rows, weighted mean of -sum(y log p)."""
    p = np.asarray(y_pred, dtype=np.float64)
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    y = np.asarray(y_true, dtype=np.float64)
    if p.ndim == 1:
        p, y = np.stack([1 - p, p], axis=1), np.stack([1 - y, y], axis=1)
    p = p / p.sum(axis=1, keepdims=True)
    return float(np.average(-(y * np.log(p)).sum(axis=1), weights=sample_weight))


def test_hard_predictions_score_as_scikit_learn_122():
    rng = np.random.default_rng(5)
    labels = pd.DataFrame(rng.choice(3, size=(6, 25), p=[0.6, 0.25, 0.15]), columns=list(TARGETS))
    labels.index = [10 + i for i in range(6)]
    solution = solution_frame(labels)
    hard = np.eye(3)[rng.choice(3, size=(6, 25))]  # confident 0/1 predictions, some wrong
    submission = submission_frame(labels.index.tolist(), hard)
    groups = solution["row_id"].map(lambda r: next(g for g in ("spinal", "foraminal", "subarticular") if g in r))
    expected = []
    for group in ("spinal", "foraminal", "subarticular"):
        rows = (groups == group).to_numpy()
        expected.append(
            sklearn_122_log_loss(
                solution.loc[rows, COLS].to_numpy(), submission.loc[rows, COLS].to_numpy(),
                solution.loc[rows, "sample_weight"].to_numpy(),
            )
        )  # fmt: skip
    spinal = (groups == "spinal").to_numpy()
    study = solution.loc[spinal, "row_id"].str.split("_").str[0]
    sol_max = solution.loc[spinal].groupby(study)[["severe", "sample_weight"]].max()
    sub_max = submission.loc[spinal].groupby(study)["severe"].max()
    expected.append(sklearn_122_log_loss(sol_max["severe"], sub_max.loc[sol_max.index], sol_max["sample_weight"]))
    assert score(solution, submission) == pytest.approx(np.mean(expected), rel=1e-12)
    # 1.1's eps of 1e-15 charges a wrong hard prediction -log(1e-15) = 34.5 instead of -log(2.2e-16) = 36.0
    old = solution.copy(), np.clip(hard, 1e-15, 1 - 1e-15)
    assert abs(score(solution, submission) - score(old[0], submission_frame(labels.index.tolist(), old[1]))) > 0.1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda s: s.assign(sample_weight=s["sample_weight"].where(s.index != 3, np.nan)), "finite number >= 0"),
        (lambda s: s.assign(sample_weight=s["sample_weight"].where(s.index != 3, -1)), "finite number >= 0"),
        (lambda s: s.assign(sample_weight=0), "every sample_weight is 0"),
        (lambda s: s.assign(moderate=s["moderate"].where(s.index != 2, 0.5)), "one-hot"),
    ],
)
def test_bad_solution_files_are_refused(change, message):
    rng = np.random.default_rng(2)
    solution, submission = random_case(rng, 2)
    with pytest.raises(MetricInputError, match=message):
        score(change(solution), submission)


def random_case(rng, n_studies, normalised=True, no_severe=False):
    labels = pd.DataFrame(rng.choice(3, size=(n_studies, 25), p=[0.7, 0.2, 0.1]), columns=list(TARGETS))
    if no_severe:
        labels = labels.clip(upper=1)
    labels.index = rng.choice(10**9, size=n_studies, replace=False) + 10**6
    solution = solution_frame(labels)
    probs = rng.uniform(0.02, 1.0, size=(n_studies, 25, 3))
    submission = submission_frame(labels.index.tolist(), probs)
    if not normalised:  # rows summing to 0.3..1 (sklearn now refuses values above 1, which Kaggle's clipped)
        submission[COLS] = submission[COLS] * rng.uniform(0.3, 1.0, size=(len(submission), 1))
    return solution, submission.sample(frac=1.0, random_state=int(rng.integers(1000)))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("normalised", [True, False])
def test_agrees_with_official_metric(seed, normalised):
    rng = np.random.default_rng(seed)
    solution, submission = random_case(rng, n_studies=int(rng.integers(2, 40)), normalised=normalised)
    assert abs(score(solution, submission) - official(solution, submission)) < 1e-9


def test_fold_without_severe_case():
    solution, submission = random_case(np.random.default_rng(3), 12, no_severe=True)
    assert solution["severe"].sum() == 0
    assert abs(score(solution, submission) - official(solution, submission)) < 1e-9


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [("severe", np.nan, "finite"), ("moderate", -0.1, "at least zero"), ("severe", np.inf, "finite")],
)
def test_rejects_bad_values(column, value, message):
    solution, submission = random_case(np.random.default_rng(0), 3)
    submission.loc[submission.index[4], column] = value
    with pytest.raises(MetricInputError, match=message):
        score(solution, submission)


def test_rejects_missing_rows():
    solution, submission = random_case(np.random.default_rng(0), 3)
    with pytest.raises(MetricInputError, match="lacks 1 row id"):
        score(solution, submission.iloc[1:])


def test_cli_prints_score_last(tmp_path, capsys):
    solution, submission = random_case(np.random.default_rng(1), 5)
    solution.to_csv(tmp_path / "solution.csv", index=False)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    assert main(["score", "rsna", str(tmp_path / "solution.csv"), str(tmp_path / "submission.csv")]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("score ")
    assert float(last.split()[1]) == pytest.approx(official(solution, submission), abs=1e-6)
