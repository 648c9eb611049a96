"""The confusion matrix of a fold's validation predictions, as a picture (rows: true class, columns: predicted)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from kit.io import atomic_path  # noqa: E402


def _axes(classes: list[str]):
    size = min(4 + 0.35 * len(classes), 20)
    return plt.subplots(figsize=(size, size))


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)


def plot_confusion(path: Path, labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> Path:
    fig, ax = _axes(classes)
    ConfusionMatrixDisplay.from_predictions(
        labels, predicted, labels=list(range(len(classes))), display_labels=classes, ax=ax, colorbar=False,
        include_values=len(classes) <= 20, xticks_rotation="vertical",
    )  # fmt: skip
    ax.set_title(f"accuracy {np.mean(labels == predicted):.3f} over {len(labels)} images")
    return _save(fig, path)


def plot_matrix(path: Path, matrix: np.ndarray, classes: list[str]) -> Path:
    """A confusion matrix already counted (e.g. over pixels), rows normalised to the share of each true class."""
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = _axes(classes)
    ConfusionMatrixDisplay(shares, display_labels=classes).plot(ax=ax, colorbar=False, values_format=".2f",
                                                                xticks_rotation="vertical")  # fmt: skip
    ax.set_title(f"share of each true class's {int(matrix.sum()):,} scored pixels")
    return _save(fig, path)
