"""The competition metric, with the semantics of Kaggle's `rsna-lumbar-metric`.

The weighted log loss is computed here rather than by `sklearn.metrics.log_loss` because sklearn's handling of
rows that do not sum to 1 and its clipping epsilon changed between releases; Kaggle scored with the release of its
2024 image (scikit-learn 1.2.2), whose `eps="auto"` clips probabilities to [eps, 1 - eps] with eps the machine epsilon
of the predictions' dtype (float64: 2.22e-16; 1.1 used 1e-15) and then renormalises each row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import xlogy

from kit.errors import KitError

from .layout import METRIC_GROUPS, SEVERITY_COLUMNS

EPS = float(np.finfo(np.float64).eps)  # scikit-learn 1.2.2's eps="auto" for float64 predictions


class MetricInputError(KitError):
    pass


def _normalised_log_loss(y_true: np.ndarray, p: np.ndarray, sample_weight: np.ndarray) -> float:
    p = p / p.sum(axis=1, keepdims=True)
    losses = -xlogy(np.asarray(y_true, dtype=np.float64), p).sum(axis=1)
    return float(np.average(losses, weights=sample_weight))


def log_loss(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    """Weighted multi-class log loss of one-hot `y_true` (n, k) against `y_pred` (n, k), clipped then renormalised."""
    return _normalised_log_loss(y_true, np.clip(np.asarray(y_pred, dtype=np.float64), EPS, 1 - EPS), sample_weight)


def binary_log_loss(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    """Binary log loss: p clipped, then the columns (1 - p, p); well defined (where sklearn raises) when `y_true`
    holds one class only."""
    p = np.clip(np.asarray(y_pred, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y_true, dtype=np.float64)
    return _normalised_log_loss(np.stack([1 - y, y], axis=1), np.stack([1 - p, p], axis=1), sample_weight)


def metric_group(row_id: str) -> str:
    for group in METRIC_GROUPS:
        if group in row_id:
            return group
    raise MetricInputError(f"row_id {row_id!r} names none of the conditions {', '.join(METRIC_GROUPS)}")


def _check_values(frame: pd.DataFrame, what: str) -> None:
    missing = [c for c in SEVERITY_COLUMNS if c not in frame.columns]
    if missing:
        raise MetricInputError(
            f"{what} lacks the column(s) {', '.join(missing)}; expected {', '.join(SEVERITY_COLUMNS)}"
        )
    values = frame[list(SEVERITY_COLUMNS)]
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in values.dtypes):
        raise MetricInputError(f"{what}: all values in {', '.join(SEVERITY_COLUMNS)} must be numeric")
    array = values.to_numpy(dtype=np.float64)
    if not np.isfinite(array).all():
        bad = frame.index[~np.isfinite(array).all(axis=1)][:5].tolist()
        raise MetricInputError(f"{what}: all values must be finite; first bad rows: {bad}")
    if (array < 0).any():
        bad = frame.index[(array < 0).any(axis=1)][:5].tolist()
        raise MetricInputError(f"{what}: all values must be at least zero; first bad rows: {bad}")


def _check_solution(sol: pd.DataFrame) -> None:
    """A solution's labels are one-hot and its weights finite, non-negative and not all zero."""
    labels = sol[list(SEVERITY_COLUMNS)].to_numpy(np.float64)
    not_one_hot = ~(np.isin(labels, (0.0, 1.0)).all(axis=1) & (labels.sum(axis=1) == 1))
    if not_one_hot.any():
        raise MetricInputError(
            f"solution: labels must be one-hot over {', '.join(SEVERITY_COLUMNS)}; first bad row_ids: "
            f"{sol.index[not_one_hot][:5].tolist()}"
        )
    weight = pd.to_numeric(sol["sample_weight"], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(weight) | (weight < 0)
    if bad.any():
        raise MetricInputError(
            f"solution: sample_weight must be a finite number >= 0; first bad row_ids: {sol.index[bad][:5].tolist()}"
        )
    if not (weight > 0).any():
        raise MetricInputError("solution: every sample_weight is 0, so no row is scored")


def _align(solution: pd.DataFrame, submission: pd.DataFrame, row_id_column_name: str) -> pd.DataFrame:
    for frame, what in ((solution, "solution"), (submission, "submission")):
        if row_id_column_name not in frame.columns:
            raise MetricInputError(f"{what} has no {row_id_column_name!r} column")
    duplicated = submission[row_id_column_name][submission[row_id_column_name].duplicated()]
    if len(duplicated):
        raise MetricInputError(f"submission repeats row ids, e.g. {duplicated.iloc[:5].tolist()}")
    sub = submission.set_index(row_id_column_name)
    wanted = pd.Index(solution[row_id_column_name])
    missing = wanted.difference(sub.index)
    if len(missing):
        raise MetricInputError(f"submission lacks {len(missing)} row id(s), e.g. {missing[:5].tolist()}")
    return sub.loc[wanted]


def score_parts(
    solution: pd.DataFrame, submission: pd.DataFrame, row_id_column_name: str = "row_id", any_severe_scalar: float = 1.0
) -> dict[str, float]:
    """The four losses (spinal, foraminal, subarticular, any_severe_spinal) and their weighted mean under 'score'."""
    sub = _align(solution, submission, row_id_column_name)
    sol = solution.set_index(row_id_column_name)
    _check_values(sub, "submission")
    _check_values(sol, "solution")
    if "sample_weight" not in sol.columns:
        raise MetricInputError("solution has no 'sample_weight' column")
    _check_solution(sol)

    row_ids = sol.index.astype(str)
    groups = np.array([metric_group(r) for r in row_ids])
    study_ids = np.array([r.split("_")[0] for r in row_ids])
    y_true = sol[list(SEVERITY_COLUMNS)].to_numpy(np.float64)
    y_pred = sub[list(SEVERITY_COLUMNS)].to_numpy(np.float64)
    weight = sol["sample_weight"].to_numpy(np.float64)

    parts: dict[str, float] = {}
    weights: list[float] = []
    for group in METRIC_GROUPS:
        rows = groups == group
        if rows.any() and weight[rows].sum() > 0:
            parts[group] = log_loss(y_true[rows], y_pred[rows], weight[rows])
            weights.append(1.0)

    spinal = groups == "spinal"
    if spinal.any():
        per_study = pd.DataFrame(
            {"study": study_ids[spinal], "label": y_true[spinal, 2], "pred": y_pred[spinal, 2], "w": weight[spinal]}
        ).groupby("study")
        parts["any_severe_spinal"] = binary_log_loss(
            per_study["label"].max().to_numpy(), per_study["pred"].max().to_numpy(), per_study["w"].max().to_numpy()
        )
        weights.append(any_severe_scalar)
    if not parts:
        raise MetricInputError("solution has no rows")
    parts["score"] = float(np.average(list(parts.values()), weights=weights))
    return parts


def score(
    solution: pd.DataFrame, submission: pd.DataFrame, row_id_column_name: str = "row_id", any_severe_scalar: float = 1.0
) -> float:
    """Kaggle's score: the mean of the three condition-group losses and `any_severe_scalar` × the any-severe loss."""
    return score_parts(solution, submission, row_id_column_name, any_severe_scalar)["score"]
