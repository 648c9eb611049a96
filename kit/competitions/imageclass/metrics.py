"""Single-label metrics (scikit-learn): accuracy, balanced accuracy, macro-F1, and ROC AUC (binary: of the positive
class; otherwise macro one-vs-rest over the classes present)."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

from kit.errors import UnknownNameError

HIGHER_IS_BETTER = {"accuracy", "balanced_accuracy", "macro_f1", "auc"}


def auc(labels: np.ndarray, probs: np.ndarray) -> float:
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(metrics.roc_auc_score(labels, probs[:, 1]))
    scores = [metrics.roc_auc_score(labels == c, probs[:, c]) for c in present]
    return float(np.mean(scores))


def classification_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    predicted = np.asarray(probs).argmax(axis=1)
    return {
        "accuracy": float(metrics.accuracy_score(labels, predicted)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(metrics.f1_score(labels, predicted, average="macro", zero_division=0)),
        "auc": auc(np.asarray(labels), np.asarray(probs, dtype=np.float64)),
    }


def check_metric(name: str) -> str:
    if name not in HIGHER_IS_BETTER:
        raise UnknownNameError(f"dataset.metric={name!r}; valid: {', '.join(sorted(HIGHER_IS_BETTER))}")
    return name
