"""TensorBoard event files per fold (runs/<exp>/fold<k>/tensorboard/): every numeric column of history.csv per
epoch, and the fold's pictures (progress curves, Mars masks) as images. `task tensorboard` serves them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

PICTURES = ("progress.png", "masks.png")


class FoldTracker:
    def __init__(self, fold_dir: Path, enabled: bool = True):
        self.fold_dir = Path(fold_dir)
        self.writer = SummaryWriter(str(self.fold_dir / "tensorboard")) if enabled else None

    def epoch(self, row: dict) -> None:
        if self.writer is None:
            return
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float) and np.isfinite(value):
                self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key,
                                       value, step)  # fmt: skip
        self.writer.flush()

    def pictures(self, step: int) -> None:
        if self.writer is None:
            return
        import matplotlib.image

        for name in PICTURES:
            path = self.fold_dir / name
            if path.exists():
                image = matplotlib.image.imread(path)[..., :3]
                self.writer.add_image(path.stem, image, step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
