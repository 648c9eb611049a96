"""The base experiments of a stack: their merged OOF and fold-averaged test predictions, checked to share folds
and to cover every fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kit.competitions.parts import stacking
from kit.errors import KitError
from kit.train.outputs import test_predictions_path
from kit.train.run import Run


@dataclass
class BaseModel:
    name: str
    oof: np.ndarray  # aligned to the stack's training ids; NaN where the model never validated a sample
    test: np.ndarray | None  # aligned to the test ids; None for a stack scored by CV alone


def align(ids: list[int], probs: np.ndarray, order: list[int]) -> np.ndarray:
    """probs of samples `ids` reordered to `order`; samples absent from ids are NaN, never 0."""
    out = np.full((len(order), *probs.shape[1:]), np.nan, dtype=np.float32)
    position = {i: p for p, i in enumerate(ids)}
    rows = [k for k, i in enumerate(order) if i in position]
    out[rows] = probs[[position[order[k]] for k in rows]]
    return out


def load_bases(competition: str, names: list[str], force: bool = False, with_test: bool = True):
    """(training object, folds, train ids, test ids, base models, runs); each base is a trained run on the data it
    was trained on; refuses runs on other data, mismatched folds or partial OOF. Without test, the bases' test
    predictions are neither needed nor read (test ids: [])."""
    if len(names) < 2:
        raise KitError(f"a stack needs two or more experiments, got {names}")
    runs = [Run.open(name, force=force) for name in names]
    wrong = [r.name for r in runs if r.config["competition"] != competition]
    if wrong:
        raise KitError(f"experiment(s) {', '.join(wrong)} are not of competition {competition!r}")
    data = {r.name: r.trained_data["sha256"] for r in runs if r.trained_data}
    if len(set(data.values())) > 1:
        first, *_ = data
        other = next(n for n in data if data[n] != data[first])
        raise KitError(
            f"runs {first} and {other} were trained on different data ({runs[names.index(first)].trained_path()} "
            f"and {runs[names.index(other)].trained_path()}): their OOF cannot be stacked"
        )
    prepared = [run.prepare() for run in runs]
    _, training, folds = prepared[0]
    stacking(training, competition)
    differing = [run.name for run, (_, _, f) in zip(runs, prepared, strict=True) if not same_folds(f, folds)]
    if differing:
        raise KitError(
            f"experiments {', '.join(differing)} use other folds than {runs[0].name} (data.dir, data.folds and "
            "data.fold_seed must match): their OOF cannot be stacked honestly"
        )
    train_ids, test_ids = folds.index.tolist(), training.ids("test") if with_test else []
    bases = []
    for run in runs:
        trained = {f.index for f in run.folds if (f / training.oof_file).exists()}
        missing = sorted(set(folds.unique().tolist()) - trained)
        if missing or not (run.root / training.oof_file).exists():
            raise KitError(
                f"experiment {run.name}: OOF does not cover every fold (missing folds {missing or 'merge'}); "
                f"run `task train-all exp={run.name}`"
            )
        test_path = test_predictions_path(run, training)
        if with_test and not test_path.exists():
            raise KitError(
                f"experiment {run.name}: no {test_path} (run `task predict exp={run.name}`, or stack with --cv-only)"
            )
        oof = align(*training.load_predictions(run.root / training.oof_file), train_ids)
        if np.isnan(oof.reshape(len(oof), -1)).all(axis=1).any():
            raise KitError(
                f"experiment {run.name}: {run.root / training.oof_file} lacks some samples of the folds "
                f"(run `task oof exp={run.name}` after training every fold)"
            )
        test = align(*training.load_predictions(test_path), test_ids) if with_test else None
        bases.append(BaseModel(run.name, oof, test))
    return training, folds, train_ids, test_ids, bases, runs


def same_folds(a: pd.Series, b: pd.Series) -> bool:
    return a.sort_index().index.equals(b.sort_index().index) and (a.sort_index() == b.sort_index()).all()
