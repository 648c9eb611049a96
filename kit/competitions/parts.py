"""The competition's side of fold training, split into small parts that the generic runner, merge, predict and
stack steps use: data, objective and formats are required; stacking and reporting are optional."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from kit.errors import KitError
from kit.losses import build_loss


class SampleData(ABC):
    """Which samples there are and how they become tensors."""

    cfg: dict
    in_channels: int
    num_outputs: int

    @abstractmethod
    def ids(self, split: str) -> list:
        """Sample ids of 'train' (labelled) or 'test'."""

    @abstractmethod
    def dataset(self, ids: list, split: str, augment_seed: int | None = None) -> torch.utils.data.Dataset:
        """Items {'image', 'target', 'id'}; the train split's targets are known, the test split's are not."""


class Objective(ABC):
    """What a fold minimises and what it is ranked by."""

    metric_name: ClassVar[str]  # the key of evaluate()'s official figure
    metric_mode: ClassVar[str]  # "min" or "max"
    loss_kind: ClassVar[str]  # which of kit.losses' tables its loss.name is looked up in

    def loss(self) -> nn.Module:
        """The loss named by cfg['loss']['name'] among kit.losses' of this kind, built with the section's other keys."""
        return self.loss_from(dict(self.cfg["loss"]))

    def loss_from(self, spec: dict) -> nn.Module:
        return build_loss(self.loss_kind, spec)

    @abstractmethod
    def probabilities(self, logits: torch.Tensor) -> np.ndarray: ...

    @abstractmethod
    def evaluate(self, ids: list, probs: np.ndarray) -> dict[str, float]:
        """Named parts of the metric, the official one under metric_name."""

    @abstractmethod
    def prior(self, ids: list) -> np.ndarray:
        """One sample's prediction of the prior-frequency baseline fitted on `ids`."""

    def test_labelled(self) -> bool:
        """Whether the test split's labels are known (an official labelled test split), so predict scores it."""
        return False


class PredictionFormat(ABC):
    """How predictions are stored (OOF per fold, test predictions) and submitted."""

    oof_file: ClassVar[str]  # e.g. oof.csv; test predictions go to the same name with test_pred for oof

    @classmethod
    def test_file(cls) -> str:
        return cls.oof_file.replace("oof", "test_pred")

    @abstractmethod
    def save_predictions(self, path: Path, ids: list, probs: np.ndarray) -> Path: ...

    @abstractmethod
    def load_predictions(self, path: Path) -> tuple[list, np.ndarray]: ...

    @abstractmethod
    def write_submission(self, path: Path, ids: list, probs: np.ndarray) -> Path: ...


class FoldTraining(SampleData, Objective, PredictionFormat):
    """Built per experiment config: cls(cfg, data_dir)."""

    @abstractmethod
    def __init__(self, cfg: dict, data_dir: Path): ...

    def samples_absent(self, missing: list, total: int) -> None:
        """The folds list `missing` samples that this data lacks: an error, unless the competition lets a user train
        on the samples present (RSNA: data.studies=present)."""
        raise KitError(f"{len(missing):,} of the {total:,} samples of the folds have no data here (e.g. {missing[0]})")


class FoldReport(ABC):
    """Optional: pictures a person would rather look at, drawn when a fold's validation improves."""

    @abstractmethod
    def report_fold(self, out: Path, ids: list, probs: np.ndarray) -> None: ...


class Oracle(ABC):
    """Optional: a phantom that knows each label's true probability, so a fold can say how close to the best possible
    score its model came (oracle.csv for RSNA, oracle.npz for Mars; real data has none)."""

    @abstractmethod
    def oracle(self, ids: list) -> np.ndarray | None:
        """The true probabilities of `ids` in the predictions' layout, or None where the data has no oracle."""


def gap_closed(model: float, prior: float, oracle: float) -> dict[str, float]:
    """regret = (model - oracle) / (prior - oracle): 0 at the oracle, 1 at the prior, for either metric direction."""
    regret = (model - oracle) / (prior - oracle) if prior != oracle else float("nan")
    return {"regret": regret, "gap_closed": 1.0 - regret}


class Explaining(ABC):
    """Optional: pictures of where a fold's model looks, for `kit explain` (under runs/<exp>/fold<k>/explain/)."""

    @abstractmethod
    def explain(self, model: nn.Module, out: Path, ids: list, probs: np.ndarray) -> list[Path]:
        """Draw from validation samples `ids` and the fold's OOF `probs` of them; return the files written."""


class Stacking(ABC):
    """Optional: each sample's predictions as `rows_per_sample` rows of meta-features (RSNA: one per condition×level;
    Mars: one per pixel), with a target per row (-1 where unknown) and optional row weights."""

    rows_per_sample: int
    meta_classes: int
    meta_params: ClassVar[dict] = {}
    meta_inner_cv: ClassVar[bool] = False  # choose the meta-model's number of trees by inner CV on its training rows

    @abstractmethod
    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame: ...

    @abstractmethod
    def meta_targets(self, ids: list) -> np.ndarray: ...

    def meta_weights(self, targets: np.ndarray) -> np.ndarray | None:
        return None

    @abstractmethod
    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        """Predictions (samples, ...) as rows (samples · rows_per_sample, meta_classes), the rows of meta_features."""

    @abstractmethod
    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        """Row probabilities (n_samples · rows_per_sample, meta_classes) back to the predictions' shape."""


class Staged(ABC):
    """Optional: a fold whose earlier stages train first, each from its own config under fold<k>/<stage>/, and
    which has a last step after its own training (e.g. calibration on its OOF)."""

    @abstractmethod
    def start_fold(self, fold: int) -> list[dict]:
        """The earlier stages' configs, in training order, for this fold."""

    @abstractmethod
    def after_fold(self, out: Path) -> dict:
        """Run after the fold's best epoch is saved; returns summary entries (the metric's, where it changed)."""


def stacking(training: FoldTraining, competition: str) -> Stacking:
    if not isinstance(training, Stacking):
        raise KitError(f"competition {competition} does not support stacking (its training has no Stacking part)")
    return training
