"""The competition's side of fold training, as the generic runner, merge and predict steps use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from kit.errors import UnknownNameError


class FoldTraining:
    """Subclasses supply data, loss, metric, prior baseline and the formats of predictions and submissions."""

    metric_name = "score"
    metric_mode = "min"  # or "max"
    oof_file = "oof.csv"
    losses: dict[str, type[nn.Module]] = {}
    cfg: dict
    in_channels: int
    num_outputs: int

    def ids(self, split: str) -> list[int]:
        raise NotImplementedError

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> torch.utils.data.Dataset:
        """Items {'image', 'target', 'id'}; the train split's targets are known, the test split's are not."""
        raise NotImplementedError

    def loss(self) -> nn.Module:
        """The loss named by cfg['loss']['name'] in self.losses, built with the section's other keys."""
        return self.loss_from(dict(self.cfg["loss"]))

    def loss_from(self, spec: dict) -> nn.Module:
        spec = dict(spec)
        name = spec.pop("name")
        if name not in self.losses:
            raise UnknownNameError(f"unknown loss {name!r}; valid: {', '.join(sorted(self.losses))}")
        return self.losses[name](**spec)

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        """Named parts of the metric, the official one under metric_name."""
        raise NotImplementedError

    def prior(self, ids: list[int]) -> np.ndarray:
        """One sample's prediction of the prior-frequency baseline fitted on `ids`."""
        raise NotImplementedError

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        raise NotImplementedError

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        raise NotImplementedError

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        raise NotImplementedError

    def report_fold(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        """Anything a person would rather look at, drawn when a fold's validation improves."""

    # Stacking: each sample's predictions become `rows_per_sample` rows of meta-features (RSNA: one per
    # condition×level; Mars: one per pixel), with a target per row (-1 where unknown) and optional row weights.
    rows_per_sample: int
    meta_classes: int
    meta_params: dict = {}
    meta_inner_cv: bool = False  # choose the meta-model's number of trees by inner CV on its training rows

    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame:
        raise NotImplementedError

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        raise NotImplementedError

    def meta_weights(self, targets: np.ndarray) -> np.ndarray | None:
        return None

    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        """Predictions (samples, ...) as rows (samples · rows_per_sample, meta_classes), the rows of meta_features."""
        raise NotImplementedError

    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        """Row probabilities (n_samples · rows_per_sample, meta_classes) back to the predictions' shape."""
        raise NotImplementedError
