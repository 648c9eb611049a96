"""What every competition module provides to the generic runner, stacker and CLI."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit import paths


class Competition:
    name: str
    slug: str

    def synth_dir(self) -> Path:
        return paths.data_root() / f"{self.name}-synth"

    def default_data_dir(self) -> Path:
        """The built-in synthetic competition, generated on first use."""
        path = self.synth_dir()
        if not path.exists():
            self.synth(path)
        return path

    def data_dir(self, data_dir: str | Path | None) -> Path:
        return Path(data_dir) if data_dir else self.default_data_dir()

    def folds_path(self, data_dir: Path) -> Path:
        return paths.folds_root() / f"{Path(data_dir).resolve().name}.csv"

    def synth(self, out: Path, **kwargs) -> Path:
        raise NotImplementedError

    def score(self, solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
        """Named parts of the metric, with the official score under 'score'."""
        raise NotImplementedError

    def validate(self, submission: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        raise NotImplementedError

    def downloaded_dir(self) -> Path:
        """Where `kit download` puts the real data."""
        return paths.data_root() / self.slug

    def known_sample(self) -> pd.DataFrame | None:
        """A sample submission of the real test set when it was downloaded: what `validate` and `submit` check a
        file against when no --sample is given."""
        return None

    def warnings(self, submission: pd.DataFrame) -> list[str]:
        """What is odd about a submission but scores the same on Kaggle (e.g. rows out of id order)."""
        return []

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        """The submission's row ids for every test sample found under data_dir (the first `limit` samples)."""
        raise NotImplementedError

    def training(self, cfg: dict, data_dir: Path):
        """The competition's side of fold training: datasets, loss, metric, prior baseline, OOF and submission."""
        raise NotImplementedError

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        raise NotImplementedError
