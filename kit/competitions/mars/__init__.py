"""Mars terrain segmentation (AN2DL 2024-25 homework 2): 64×128 grayscale images, 5 classes, mean IoU."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.competitions.base import Competition
from kit.data.folds import load_or_make_folds
from kit.errors import KitError

from . import data, layout, metric, submission, synth
from .layout import BIG_ROCK


class MarsTerrain(Competition):
    name = "mars"
    slug = layout.SLUG

    def synth(self, out: Path, seed: int = 0, force: bool = False, **_) -> Path:
        return synth.generate(out, seed=seed, force=force)

    def score(self, solution: pd.DataFrame, sub: pd.DataFrame) -> dict[str, float]:
        for frame, what in ((solution, "solution"), (sub, "submission")):
            problems = submission.validate_submission(frame, expected_rows=len(solution))
            if problems:
                raise KitError(f"{what}: " + "; ".join(problems))
        return metric.mean_iou(submission.frame_labels(solution), submission.frame_labels(sub))

    def validate(self, sub: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        return submission.validate_submission(sub, None if sample is None else len(sample))

    def known_sample(self) -> pd.DataFrame | None:
        if not (self.downloaded_dir() / layout.FILE).exists():
            return None
        return pd.DataFrame({"id": range(len(data.load(self.downloaded_dir()).test))})

    def warnings(self, sub: pd.DataFrame) -> list[str]:
        return submission.order_warnings(sub)

    def training(self, cfg: dict, data_dir: Path):
        from .training import MarsTraining

        return MarsTraining(cfg, data_dir)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        """Image -> fold over the kept training images, stratified by whether an image holds big rock."""
        loaded = data.load(data_dir)
        strata = (loaded.masks == BIG_ROCK).any(axis=(1, 2)).astype(int)
        ids = loaded.ids.tolist()
        return load_or_make_folds(self.folds_path(data_dir), ids, strata, ids, n_splits, seed)


COMPETITION = MarsTerrain()

__all__ = ["COMPETITION"]
