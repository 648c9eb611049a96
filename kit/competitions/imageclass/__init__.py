"""The single-label image-classification family. A dataset is declared by an experiment YAML's `dataset:` section
(layout, classes, metric), which makes it a competition named by the YAML's `competition:` key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kit.competitions import register_competition, register_family
from kit.competitions.base import Competition
from kit.data.folds import load_or_make_folds
from kit.errors import KitError
from kit.io import write_text_atomic
from kit.schema import ImageDataset

from . import duplicates, layouts, metrics, synth
from .reconstruction import reconstruction_class
from .training import ImageTraining


class ImageClassification(Competition):
    """Base of every declared dataset; `spec` is its dataset section."""

    spec: dict
    id_column = "id"
    synth_sizes = {"train": 240, "test": 60}

    def generate(self, out: Path, train: int, test: int, seed: int, force: bool) -> Path:
        return synth.generate(out, self.spec, train, test, seed, force)

    def strata(self, data_dir: Path) -> pd.Series:
        """The class of every labelled sample kept by dataset.clean, keyed by its id (path or array index)."""
        split = duplicates.read_clean(data_dir, self.spec)[0].train
        return pd.Series(split.labels, index=split.keys)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        """Stratified by class, a near-duplicate group in one fold; the folds file names samples by path (or array
        index), the runner by position. A cleaned dataset's report lies beside the folds file."""
        samples, report = duplicates.read_clean(data_dir, self.spec)
        split = samples.train

        def groups() -> list[str]:  # asked for only when the split is made
            found = split.groups
            if found is None:  # no dataset.clean: near copies still share a fold, or CV would score memory
                found, line = duplicates.copy_groups(split)
                print(line, flush=True)
            return [f"group{g}" for g in found]

        path = self.folds_path(data_dir)
        folds = load_or_make_folds(path, split.keys, split.labels, groups, n_splits, seed)
        if report is not None:
            write_text_atomic(path.with_suffix(".cleaning.json"), json.dumps(report, indent=1))
        by_position = pd.Series(folds.to_numpy(), index=range(len(split.keys)), name="fold")
        by_position.attrs = folds.attrs  # the folds file's path
        return by_position

    def score(self, solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
        """Aligned by id. With a probability column per class the AUC is scored too; from labels alone it is not."""
        for frame, what in ((solution, "solution"), (submission, "submission")):
            problems = self.validate(frame)
            if problems:
                raise KitError(f"{what}: " + "; ".join(problems))
        solution, submission = solution.set_index("id"), submission.set_index("id")
        missing = solution.index.difference(submission.index)
        if len(missing):
            raise KitError(f"submission: no row for {len(missing)} id(s) of the solution, e.g. {missing[0]!r}")
        submission = submission.loc[solution.index]
        classes = list(self.spec["classes"] or sorted(set(solution["label"])))
        truth = solution["label"].map({c: k for k, c in enumerate(classes)}).to_numpy()
        if all(c in submission.columns for c in classes):
            probs = submission[classes].to_numpy(np.float64)
        else:
            probs = np.eye(len(classes))[submission["label"].map({c: k for k, c in enumerate(classes)}).to_numpy()]
            if self.metric_name == "auc":
                raise KitError("submission: the AUC needs a probability column per class, not labels alone")
        return metrics.classification_scores(truth, probs)

    def validate(self, submission: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        problems = []
        for column in ("id", "label"):
            if column not in submission.columns:
                problems.append(f"no {column!r} column (columns: {', '.join(map(str, submission.columns))})")
        if problems:
            return problems
        if submission.empty:
            return ["no rows"]
        if submission["id"].duplicated().any():
            problems.append(f"repeated id {submission['id'][submission['id'].duplicated()].iloc[0]!r}")
        classes = self.spec["classes"]
        if classes:
            bad = submission.index[~submission["label"].astype(str).isin(classes)]
            if len(bad):
                row = bad[0]
                problems.append(f"row {row}: label {submission['label'][row]!r} is not one of the classes {classes}")
        if sample is not None:
            expected, got = set(sample["id"].astype(str)), set(submission["id"].astype(str))
            if expected != got:
                problems.append(
                    f"ids differ from the sample's: {len(expected - got)} missing, {len(got - expected)} extra"
                )
        return problems

    def training(self, cfg: dict, data_dir: Path):
        """The dataset's classifier training, or its reconstruction training for model.name=autoencoder."""
        if cfg["model"].get("name") == "autoencoder":
            return reconstruction_class(self.training_class)(cfg, data_dir)
        return self.training_class(cfg, data_dir)

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        return layouts.read_layout(data_dir, self.spec).test.keys[:limit]


@register_family("image_classification")
def declare(name: str, spec: dict) -> type[ImageClassification]:
    """A registered competition class for one dataset section."""
    declared = spec
    try:
        spec = ImageDataset.resolved(spec)
        names = layouts.layout_names(spec)
    except KitError as exc:
        raise KitError(f"dataset {name}: {exc}") from exc
    metric = metrics.check_metric(spec["metric"])
    duplicates.check_clean(spec["clean"])
    if "npz" in names and not spec["classes"]:
        raise KitError(f"dataset {name}: an npz layout needs its class names (dataset.classes, by label index)")
    title = "".join(part.title() for part in name.split("_"))
    training = type(f"{title}Training", (ImageTraining,), {"spec": spec, "metric_name": metric, "__module__": __name__})
    attributes = {
        "name": name,
        "slug": spec["slug"] or name,
        "spec": spec,
        "declared": declared,
        "training_class": training,
        "__module__": __name__,
    }
    return register_competition(type(title, (ImageClassification,), attributes))
