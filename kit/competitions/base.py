"""What every competition provides to the generic runner, stacker and CLI: its data on disk, its official metric and
submission format, its folds, and the FoldTraining class that experiments build from a config."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import pandas as pd

from kit import paths
from kit.competitions.parts import FoldTraining
from kit.data.folds import load_or_make_folds
from kit.errors import KitError
from kit.io import atomic_folder, exclusive

SYNTHETIC_MARKER = "SYNTHETIC.txt"  # in every folder `synth` writes: runs trained on it are phantom-trained


class Competition(ABC):
    name: ClassVar[str]  # the kit's name: `kit score NAME`, `competition: NAME` in an experiment
    slug: ClassVar[str]  # Kaggle's: data/<slug>/, submissions/<slug>/
    id_column: ClassVar[str]  # the submission's row id
    training_class: ClassVar[type[FoldTraining]]
    synth_sizes: ClassVar[dict[str, int]]  # default train and test sample counts of the synthetic data
    hidden_test_samples: ClassVar[int | None] = None  # a code competition's hidden test set, for the time budget
    runtime_limit_hours: ClassVar[float | None] = None  # a code competition's notebook limit

    # Data on disk

    image_sizes: tuple[str, ...] = ("default",)

    def synth_dir(self) -> Path:
        return paths.data_root() / f"{self.name}-synth"

    def default_data_dir(self) -> Path:
        """The built-in synthetic competition, generated on first use."""
        path = self.synth_dir()
        if not path.exists():
            with exclusive(path, "generating it"):
                if not path.exists():
                    self.synth(path)
        return path

    def data_dir(self, data_dir: str | Path | None) -> Path:
        return Path(data_dir) if data_dir else self.default_data_dir()

    def downloaded_dir(self) -> Path:
        """Where `kit download` puts the real data."""
        return paths.data_root() / self.slug

    def synth(self, out: Path, train: int | None = None, test: int | None = None, seed: int = 0,
              force: bool = False, size: str = "default") -> Path:  # fmt: skip
        """A synthetic competition in the exact layout, with `train` labelled and `test` unlabelled samples
        (None: synth_sizes); an existing folder is replaced only with `force`. `size` picks among image_sizes
        (e.g. RSNA's `real`: real-sized series for scale checks)."""
        if size not in self.image_sizes:
            raise KitError(f"--size {size}: {self.name} has {', '.join(self.image_sizes)}")
        out = Path(out)
        if out.exists() and not force:
            raise KitError(f"{out} already exists; pass --force to replace it")
        options = {"size": size} if size != "default" else {}
        train, test = train or self.synth_sizes["train"], test or self.synth_sizes["test"]
        with atomic_folder(out) as staging:  # a generation cut short (Ctrl-C, a full disk) leaves `out` as it was
            self.generate(staging, train, test, seed, True, **options)
            note = f"the kit's synthetic {self.name} competition (a phantom), seed {seed}: weights trained on it "
            (staging / SYNTHETIC_MARKER).write_text(note + "never saw real images\n")
        return out

    @abstractmethod
    def generate(self, out: Path, train: int, test: int, seed: int, force: bool) -> Path:
        """Write the synthetic competition (see synth)."""

    # Folds: one split per dataset, stratified by strata(), grouped by groups()

    def folds_path(self, data_dir: Path) -> Path:
        return paths.folds_root() / f"{Path(data_dir).resolve().name}.csv"

    @abstractmethod
    def strata(self, data_dir: Path) -> pd.Series:
        """Training sample id -> the stratum the folds balance (a class, a count of rare labels...)."""

    def groups(self, data_dir: Path, ids: list) -> list:
        """Per id, the group that must stay in one fold (a patient, a duplicate group); default: the sample."""
        return list(ids)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        strata = self.strata(data_dir)
        ids = strata.index.tolist()
        groups = self.groups(data_dir, ids)
        return load_or_make_folds(self.folds_path(data_dir), ids, strata.to_numpy(), groups, n_splits, seed)

    # Submissions

    @abstractmethod
    def score(self, solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
        """Named parts of the official metric, the metric itself under training_class.metric_name."""

    @abstractmethod
    def validate(self, submission: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        """Every problem that would make Kaggle refuse or misread the file (against `sample`'s row ids if given)."""

    @abstractmethod
    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        """The submission's row ids for every test sample found under data_dir (the first `limit` samples)."""

    def known_sample(self) -> pd.DataFrame | None:
        """A sample submission of the real test set when it was downloaded: what `validate` and `submit` check a
        file against when no --sample is given."""
        return None

    def warnings(self, submission: pd.DataFrame) -> list[str]:
        """What is odd about a submission but scores the same on Kaggle (e.g. rows out of id order)."""
        return []

    # Training

    @property
    def metric_name(self) -> str:
        return self.training_class.metric_name

    def training(self, cfg: dict, data_dir: Path) -> FoldTraining:
        return self.training_class(cfg, data_dir)
