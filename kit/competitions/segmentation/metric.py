"""Mean IoU over the labelled classes as AI4Mars scores it: pixels whose true value is the ignore value (unlabelled,
the rover, the far range) are dropped; IoU per class over every pixel of every image; the mean over the classes that
occur in the truth or the prediction."""

from __future__ import annotations

import numpy as np


def confusion(true: np.ndarray, pred: np.ndarray, classes: int, ignore: int) -> np.ndarray:
    """(true, predicted) pixel counts over the pixels whose true value is a class."""
    true, pred = np.asarray(true, dtype=np.int64).ravel(), np.asarray(pred, dtype=np.int64).ravel()
    kept = (true != ignore) & (true < classes)
    return np.bincount(true[kept] * classes + pred[kept], minlength=classes**2).reshape(classes, classes)


def iou_parts(matrix: np.ndarray, names: list[str]) -> dict[str, float]:
    matrix = matrix.astype(np.float64)
    tp = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    present = denominator > 0
    iou = np.divide(tp, denominator, out=np.zeros_like(tp), where=present)
    parts = {f"iou_{name}": float(iou[c]) if present[c] else float("nan") for c, name in enumerate(names)}
    accuracy = float(tp.sum() / matrix.sum()) if matrix.sum() else float("nan")
    return {"miou": float(iou[present].mean()) if present.any() else float("nan"), **parts, "pixel_accuracy": accuracy}
