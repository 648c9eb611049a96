"""Mars terrain segmentation (AN2DL 2024-25 homework 2): 64×128 grayscale images, 5 classes, mean IoU."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.competitions import register_competition
from kit.competitions.base import Competition
from kit.errors import KitError

from . import data, layout, metric, submission, synth
from .layout import BIG_ROCK
from .training import MarsTraining


@register_competition
class MarsTerrain(Competition):
    name = "mars"
    slug = layout.SLUG
    id_column = "id"
    training_class = MarsTraining
    synth_sizes = {"train": 600, "test": 200}

    def generate(self, out: Path, train: int, test: int, seed: int, force: bool) -> Path:
        aliens = round(train * 24 / 600)  # planted outliers: 4% of the training images
        return synth.generate(out, train=train, test=test, aliens=aliens, seed=seed, force=force)

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
        return pd.DataFrame({self.id_column: range(len(data.load(self.downloaded_dir()).test))})

    def warnings(self, sub: pd.DataFrame) -> list[str]:
        return submission.order_warnings(sub)

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        return [str(i) for i in range(len(data.load(data_dir).test))][:limit]

    def strata(self, data_dir: Path) -> pd.Series:
        """Whether a kept training image holds big rock."""
        loaded = data.load(data_dir)
        return pd.Series((loaded.masks == BIG_ROCK).any(axis=(1, 2)).astype(int), index=loaded.ids.tolist())
