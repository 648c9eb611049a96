"""Mean IoU with the semantics of Keras MeanIoU(num_classes=5, ignore_class=0)."""

from __future__ import annotations

import numpy as np

from .layout import CLASSES, NUM_CLASSES


def confusion(true: np.ndarray, pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(true, predicted) pixel counts over every pixel of every image."""
    true, pred = np.asarray(true, dtype=np.int64).ravel(), np.asarray(pred, dtype=np.int64).ravel()
    return np.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def iou_parts(matrix: np.ndarray, ignore_class: int | None = 0) -> dict[str, float]:
    """Keras: drop the pixels whose true class is ignore_class, IoU per class with a non-zero denominator, mean.
    A class that is predicted (on kept pixels) but never true still counts, with IoU 0 — the ignore class too."""
    matrix = matrix.astype(np.float64).copy()
    if ignore_class is not None:
        matrix[ignore_class, :] = 0
    tp = np.diag(matrix)
    denominator = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
    present = denominator > 0
    iou = np.divide(tp, denominator, out=np.zeros_like(tp), where=present)
    parts = {f"iou_{name}": float(iou[c]) if present[c] else float("nan") for c, name in enumerate(CLASSES)}
    return {"score": float(iou[present].mean()) if present.any() else float("nan"), **parts}


def mean_iou(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return iou_parts(confusion(true, pred))


def predict_labels(probs: np.ndarray, skip_background: bool = True) -> np.ndarray:
    """Argmax over classes 1–4 by default: a background prediction can only cost IoU under this metric."""
    if skip_background:
        return probs[:, 1:].argmax(axis=1) + 1
    return probs.argmax(axis=1)
