"""TensorBoard event files per fold (runs/<exp>/fold<k>/tensorboard/): every numeric column of history.csv per
epoch, and the fold's pictures (progress curves, Mars masks) as images. `task tensorboard` serves them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from torch.utils.tensorboard import SummaryWriter

PICTURES = ("progress.png", "masks.png")


class FoldTracker:
    """One TensorBoard run per fold: a fresh training replaces the earlier run's event files at its first epoch
    (as it replaces the fold's other files); a resumed one continues them, dropping what came after its checkpoint."""

    def __init__(self, fold_dir: Path, enabled: bool = True, resumed_after: int | None = None):
        self.fold_dir = Path(fold_dir)
        self.enabled, self.resumed_after = enabled, resumed_after
        self.writer: SummaryWriter | None = None

    def _open(self) -> None:
        folder = self.fold_dir / "tensorboard"
        if self.resumed_after is None:
            shutil.rmtree(folder, ignore_errors=True)
            self.writer = SummaryWriter(str(folder))
        else:
            self.writer = SummaryWriter(str(folder), purge_step=self.resumed_after + 1)

    def epoch(self, row: dict) -> None:
        if not self.enabled:
            return
        if self.writer is None:
            self._open()
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
