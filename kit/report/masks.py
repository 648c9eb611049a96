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


def plot_masks(path: Path, images, true, pred, ids, class_names: tuple[str, ...]) -> None:
    rows = len(images)
    fig, axes = plt.subplots(rows, 3, figsize=(9, 1.6 * rows + 0.6), squeeze=False)
    for r, (image, t, p, i) in enumerate(zip(images, true, pred, ids, strict=True)):
        accuracy = float(np.mean(t[t > 0] == p[t > 0])) if (t > 0).any() else float("nan")
        panels = [(image, f"image {i}"), (t, "true"), (p, f"predicted ({accuracy:.0%})")]
        for ax, (panel, title) in zip(axes[r], panels, strict=True):
            if panel is image:
                ax.imshow(panel, cmap="gray")
            else:
                ax.imshow(panel, cmap=PALETTE, vmin=0, vmax=PALETTE.N - 1, interpolation="nearest")
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=PALETTE(c)) for c in range(len(class_names))]
    fig.legend(handles, class_names, loc="lower center", ncol=len(class_names), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
