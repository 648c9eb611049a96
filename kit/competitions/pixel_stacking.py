"""Stacking per pixel, for the segmentation competitions: one meta-row per pixel of the predictions' grid, with each
base model's class probabilities, their 3×3 and 9×9 neighbourhood means, and the pixel's row (rovers and cameras
see sky, horizon and ground at fixed heights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.ndimage import uniform_filter

from kit.competitions.parts import Stacking

NEIGHBOURHOODS = (1, 3, 9)


class PixelStacking(Stacking):
    """A Stacking part for predictions shaped (samples, classes, height, width); the competition gives
    `pixel_classes` and `pixel_grid` (height, width) and its own meta_targets (-1 where unlabelled)."""

    meta_params = {"learning_rate": 0.1, "n_estimators": 120, "num_leaves": 31, "min_child_samples": 50}
    pixel_classes: list[str]
    pixel_grid: tuple[int, int]

    @property
    def rows_per_sample(self) -> int:
        return self.pixel_grid[0] * self.pixel_grid[1]

    @property
    def meta_classes(self) -> int:
        return len(self.pixel_classes)

    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame:
        height, width = self.pixel_grid
        n = len(probs_by_model[0])
        columns = {"row": np.tile(np.repeat(np.arange(height, dtype=np.float32), width), n)}
        for name, probs in zip(model_names, probs_by_model, strict=True):
            probs = np.asarray(probs, dtype=np.float32)
            for size in NEIGHBOURHOODS:
                pooled = probs if size == 1 else uniform_filter(probs, size=(1, 1, size, size), mode="nearest")
                for c, cls in enumerate(self.pixel_classes):
                    columns[f"{name}__{cls}" + ("" if size == 1 else f"_mean{size}")] = pooled[:, c].reshape(-1)
        return pd.DataFrame(columns)

    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(probs).transpose(0, 2, 3, 1).reshape(-1, self.meta_classes)

    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        height, width = self.pixel_grid
        return row_probs.reshape(n_samples, height, width, self.meta_classes).transpose(0, 3, 1, 2)
