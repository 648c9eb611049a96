"""The base experiments of a stack: their merged OOF and fold-averaged test predictions, checked to share folds
and to cover every fold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from kit import paths
from kit.competitions.parts import stacking
from kit.config import load_experiment
from kit.errors import KitError
from kit.train import distributed
from kit.train.outputs import test_predictions_path
from kit.train.runner import prepare


@dataclass
class BaseModel:
    name: str
    oof: np.ndarray  # aligned to the stack's training ids; NaN where the model never validated a sample
    test: np.ndarray  # aligned to the test ids


def align(ids: list[int], probs: np.ndarray, order: list[int]) -> np.ndarray:
    """probs of samples `ids` reordered to `order`; samples absent from ids are NaN, never 0."""
    out = np.full((len(order), *probs.shape[1:]), np.nan, dtype=np.float32)
    position = {i: p for p, i in enumerate(ids)}
    rows = [k for k, i in enumerate(order) if i in position]
    out[rows] = probs[[position[order[k]] for k in rows]]
    return out


def load_bases(competition: str, names: list[str]):
    """(training object, folds, train ids, test ids, base models); refuses mismatched folds or partial OOF."""
    if len(names) < 2:
        raise KitError(f"a stack needs two or more experiments, got {names}")
    cfgs = [load_experiment(name) for name in names]
    wrong = [c["name"] for c in cfgs if c["competition"] != competition]
    if wrong:
        raise KitError(f"experiment(s) {', '.join(wrong)} are not of competition {competition!r}")
    prepared = [prepare(cfg, distributed.Context()) for cfg in cfgs]
    _, training, folds = prepared[0]
    stacking(training, competition)
    differing = [cfg["name"] for cfg, (_, _, f) in zip(cfgs, prepared, strict=True) if not same_folds(f, folds)]
    if differing:
        raise KitError(
            f"experiments {', '.join(differing)} use other folds than {cfgs[0]['name']} (data.dir, data.folds and "
            "data.fold_seed must match): their OOF cannot be stacked honestly"
        )
    train_ids, test_ids = folds.index.tolist(), training.ids("test")
    bases = []
    for cfg in cfgs:
        root = paths.runs_root() / cfg["name"]
        trained = {int(p.name[4:]) for p in root.glob("fold*") if (p / training.oof_file).exists()}
        missing = sorted(set(folds.unique().tolist()) - trained)
        if missing or not (root / training.oof_file).exists():
            raise KitError(
                f"experiment {cfg['name']}: OOF does not cover every fold (missing folds {missing or 'merge'}); "
                f"run `task train-all exp={cfg['name']}`"
            )
        test_path = test_predictions_path(cfg, training)
        if not test_path.exists():
            raise KitError(f"experiment {cfg['name']}: no {test_path} (run `task predict exp={cfg['name']}`)")
        oof = align(*training.load_predictions(root / training.oof_file), train_ids)
        if np.isnan(oof.reshape(len(oof), -1)).all(axis=1).any():
            raise KitError(f"experiment {cfg['name']}: {root / training.oof_file} lacks some samples of the folds")
        test = align(*training.load_predictions(test_path), test_ids)
        bases.append(BaseModel(cfg["name"], oof, test))
    return training, folds, train_ids, test_ids, bases


def same_folds(a: pd.Series, b: pd.Series) -> bool:
    return a.sort_index().index.equals(b.sort_index().index) and (a.sort_index() == b.sort_index()).all()
