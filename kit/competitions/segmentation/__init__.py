"""The segmentation family: image and label-mask files (AI4Mars, any images/ + masks/ folders). A dataset is declared
by an experiment YAML's `dataset:` section (layout, classes, ignore value, scene grouping), which makes it a
competition named by the YAML's `competition:` key. (The course's Mars npz keeps its own competition, kit.mars.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kit.competitions import register_competition, register_family
from kit.competitions.base import Competition
from kit.errors import KitError
from kit.schema import SegmentationDataset

from . import layouts, synth
from .training import SegmentationTraining


class Segmentation(Competition):
    spec: dict
    id_column = "id"
    synth_sizes = {"train": 60, "test": 12}

    def generate(self, out: Path, train: int, test: int, seed: int, force: bool) -> Path:
        return synth.generate(out, self.spec, train, test, seed, force)

    def strata(self, data_dir: Path) -> pd.Series:
        """Whether a labelled image holds dataset.rare_class (big rock: 0.5% of AI4Mars' pixels), so every fold
        gets its share; 0 for all without one."""
        training = self.training_class({"data": {"size": 8}, "model": {}}, data_dir)
        keys = training.layout.train.keys
        rare = self.spec["rare_class"]
        if rare is None:
            return pd.Series(0, index=keys)
        index = self.spec["classes"].index(rare)
        return pd.Series([int((training.full_mask(i) == index).any()) for i in range(len(keys))], index=keys)

    def groups(self, data_dir: Path, ids: list) -> list:
        """dataset.groups: scene (NAVCAM frames of one scene stay in one fold, see layouts.scenes) or null."""
        return layouts.scenes(list(ids)) if self.spec["groups"] == "scene" else list(ids)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        """The folds file names samples by key; the runner by position."""
        folds = super().folds(data_dir, n_splits, seed)
        by_position = pd.Series(folds.to_numpy(), index=range(len(folds)), name="fold")
        by_position.attrs = folds.attrs
        return by_position

    def score(self, solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
        raise KitError(f"{self.name}: a segmentation submission is label PNGs; score them with "
                       f"`task predict exp=<experiment> -- data.dir=<a folder with masks>`")  # fmt: skip

    def validate(self, submission: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        problems = [f"no {c!r} column" for c in ("id", "file") if c not in submission.columns]
        if not problems and submission["id"].duplicated().any():
            problems.append(f"repeated id {submission['id'][submission['id'].duplicated()].iloc[0]!r}")
        return problems

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        return layouts.read_layout(data_dir, self.spec).test.keys[:limit]


@register_family("segmentation")
def declare(name: str, spec: dict) -> type[Segmentation]:
    declared = spec
    try:
        spec = SegmentationDataset.resolved(spec)
        layouts.check_layout(spec)
    except KitError as exc:
        raise KitError(f"dataset {name}: {exc}") from exc
    classes = spec["classes"]
    if not isinstance(classes, list) or len(classes) < 2:
        raise KitError(f"dataset {name}: dataset.classes must list the class names, by mask value (got {classes!r})")
    if spec["rare_class"] is not None and spec["rare_class"] not in classes:
        raise KitError(f"dataset {name}: dataset.rare_class={spec['rare_class']!r} is not one of {classes}")
    title = "".join(part.title() for part in name.split("_"))
    training = type(f"{title}Training", (SegmentationTraining,), {"spec": spec, "__module__": __name__})
    attributes = {"name": name, "slug": spec["slug"] or name, "spec": spec, "declared": declared,
                  "training_class": training, "__module__": __name__}  # fmt: skip
    return register_competition(type(title, (Segmentation,), attributes))
