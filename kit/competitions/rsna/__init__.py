"""RSNA 2024 Lumbar Spine Degenerative Classification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.competitions import register_competition
from kit.competitions.base import Competition
from kit.errors import KitError

from . import layout, metric, submission, synth, tables
from .localiser import LocaliserTraining
from .training import RsnaTraining
from .two_stage import STAGE, TwoStageTraining


@register_competition
class RsnaLumbar(Competition):
    name = "rsna"
    slug = layout.SLUG
    id_column = "row_id"
    training_class = RsnaTraining
    synth_sizes = {"train": 80, "test": 3}
    hidden_test_samples = 700  # about, unverified (competitions.md)
    runtime_limit_hours = 9.0
    image_sizes = tuple(synth.GEOMETRIES)

    def training(self, cfg: dict, data_dir: Path):
        """The single-stage model, or a two-stage experiment (one with a localiser section) and its stage 1."""
        if cfg.get("stage") == STAGE:
            return LocaliserTraining(cfg, data_dir)
        if STAGE in cfg:
            return TwoStageTraining(cfg, data_dir)
        return RsnaTraining(cfg, data_dir)

    def generate(self, out: Path, train: int, test: int, seed: int, force: bool, size: str = "default") -> Path:
        return synth.generate(out, studies=train, test_studies=test, seed=seed, force=force, size=size)

    def score(self, solution: pd.DataFrame, sub: pd.DataFrame) -> dict[str, float]:
        return metric.score_parts(solution, sub, self.id_column, any_severe_scalar=1.0)

    def validate(self, sub: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        if sample is not None and self.id_column not in sample.columns:
            raise KitError(f"sample: no {self.id_column!r} column (columns: {', '.join(map(str, sample.columns))})")
        expected = sample[self.id_column].astype(str) if sample is not None else None
        return submission.validate_submission(sub, expected)

    def known_sample(self) -> pd.DataFrame | None:
        path = self.downloaded_dir() / "sample_submission.csv"
        return pd.read_csv(path) if path.exists() else None

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        studies = [s.study_id for s in tables.load_studies(data_dir, "test")]
        return submission.row_ids(studies[:limit])

    def strata(self, data_dir: Path) -> pd.Series:
        """How many severe labels a study has (0, 1, 2+)."""
        labels = tables.read_labels(data_dir)
        return pd.Series(np.minimum((labels.to_numpy() == 2).sum(axis=1), 2), index=labels.index)
