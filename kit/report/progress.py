"""progress.png: the training curves of a fold, redrawn after every epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kit.io import atomic_path  # noqa: E402


def plot_progress(history: pd.DataFrame, path: Path, metric: str, baseline: float | None = None) -> None:
    fig, (ax_loss, ax_metric, ax_lr) = plt.subplots(1, 3, figsize=(15, 4))
    ax_loss.plot(history["epoch"], history["train_loss"], label="train")
    ax_loss.plot(history["epoch"], history["val_loss"], label="validation")
    ax_loss.set(title="loss", xlabel="epoch")
    ax_loss.legend()
    ax_metric.plot(history["epoch"], history[metric], marker="o", label=metric)
    if baseline is not None:
        ax_metric.axhline(baseline, color="grey", linestyle="--", label="prior baseline")
    ax_metric.set(title=f"validation {metric}", xlabel="epoch")
    ax_metric.legend()
    ax_lr.plot(history["epoch"], history["lr"])
    ax_lr.set(title="learning rate", xlabel="epoch")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
