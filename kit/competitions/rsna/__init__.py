"""RSNA 2024 Lumbar Spine Degenerative Classification."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit.competitions.base import Competition
from kit.data.folds import load_or_make_folds
from kit.errors import KitError

from . import layout, metric, submission, synth, tables


class RsnaLumbar(Competition):
    name = "rsna"
    slug = layout.SLUG

    def synth(self, out: Path, studies: int = 80, test_studies: int = 3, seed: int = 0, force: bool = False) -> Path:
        return synth.generate(out, studies=studies, test_studies=test_studies, seed=seed, force=force)

    def score(self, solution: pd.DataFrame, sub: pd.DataFrame) -> dict[str, float]:
        return metric.score_parts(solution, sub, "row_id", any_severe_scalar=1.0)

    def validate(self, sub: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        if sample is not None and "row_id" not in sample.columns:
            raise KitError(f"sample: no 'row_id' column (columns: {', '.join(map(str, sample.columns))})")
        expected = sample["row_id"].astype(str) if sample is not None else None
        return submission.validate_submission(sub, expected)

    def known_sample(self) -> pd.DataFrame | None:
        path = self.downloaded_dir() / "sample_submission.csv"
        return pd.read_csv(path) if path.exists() else None

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        studies = [s.study_id for s in tables.load_studies(data_dir, "test")]
        return submission.row_ids(studies[:limit])

    def training(self, cfg: dict, data_dir: Path):
        from .training import RsnaTraining

        return RsnaTraining(cfg, data_dir)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        """Study -> fold, stratified by how many severe labels a study has (0, 1, 2+), grouped by study."""
        labels = tables.read_labels(data_dir)
        strata = np.minimum((labels.to_numpy() == 2).sum(axis=1), 2)
        ids = labels.index.tolist()
        return load_or_make_folds(self.folds_path(data_dir), ids, strata, ids, n_splits, seed)


COMPETITION = RsnaLumbar()
