"""A PNG grid of image, true mask and predicted mask for a few validation images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from kit.io import atomic_path  # noqa: E402

PALETTE = ListedColormap(["#000000", "#c2803e", "#7f7f7f", "#f2d16b", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"])
IGNORED = "#ffffff"  # a predicted pixel the metric does not score (its true class is the ignored one)


def panels(image, true, pred, image_id, ignore_class: int | None = None) -> list[tuple[np.ndarray, str]]:
    """The image, the true mask and the prediction; with `ignore_class`, the prediction is masked where the true
    class is the ignored one (drawn white: the metric does not score it), and the title's percentage is the pixel
    accuracy on the scored pixels."""
    scored = true != ignore_class if ignore_class is not None else np.ones(true.shape, dtype=bool)
    accuracy = float(np.mean(true[scored] == pred[scored])) if scored.any() else float("nan")
    title = f"predicted: {accuracy:.0%} of scored pixels right" + (
        ", white unscored" if ignore_class is not None else ""
    )
    return [(image, f"image {image_id}"), (true, "true"), (np.ma.masked_where(~scored, pred), title)]


def plot_masks(path: Path, images, true, pred, ids, class_names: tuple[str, ...],
               ignore_class: int | None = None) -> None:  # fmt: skip
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 1.6 * rows + 0.6), squeeze=False)
    for r, (image, t, p, i) in enumerate(zip(images, true, pred, ids, strict=True)):
        for column, (ax, (panel, title)) in enumerate(zip(axes[r], panels(image, t, p, i, ignore_class), strict=True)):
            if column == 0:
                ax.imshow(panel, cmap="gray")
            else:
                ax.imshow(panel, cmap=PALETTE.with_extremes(bad=IGNORED), vmin=0, vmax=PALETTE.N - 1,
                          interpolation="nearest")  # fmt: skip
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE(c)) for c in range(len(class_names))]
    names = list(class_names)
    if ignore_class is not None:
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor=IGNORED, edgecolor="#000000"))
        names.append(f"unscored (true {class_names[ignore_class]})")
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
