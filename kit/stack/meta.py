"""A LightGBM meta-model over the base models' OOF, trained fold by fold on the same folds (so the stacked OOF is
honest), its test predictions averaged over the folds' meta-models. The folds' pools and boosters are saved with the
stack (StackModel) so that a code-competition notebook can apply them to the base models' predictions of the hidden
test set.

Boosting starts from a log-linear pool of the base models fitted on the same training rows (kit.stack.pool; its
log-probabilities are LightGBM's init_score): the trees only learn corrections to the pool from the meta-features,
which keeps a small meta-training set from undoing what the pool already gets right.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from kit.errors import KitError
from kit.io import write_text_atomic
from kit.stack.pool import Pool, fit_pool, log_probs

INNER_FOLDS = 4
BASE_PARAMS = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0, "verbose": -1}


@dataclass
class StackModel:
    """Each fold's pool and booster over the base models `names` (in this order: the meta-features' names)."""

    names: list[str]
    pools: list[Pool]
    boosters: list[lgb.Booster]

    def predict(self, training, probs_by_model: list[np.ndarray]) -> np.ndarray:
        """The folds' meta-models averaged, in the predictions' shape."""

        def averaged(_part: slice, x: pd.DataFrame, logs: np.ndarray) -> list[np.ndarray]:
            rows = sum(predict(b, x, pool(logs)) for pool, b in zip(self.pools, self.boosters, strict=True))
            return [rows / len(self.boosters)]

        return by_chunks(training, probs_by_model, self.names, averaged)[0]

    def save(self, folder: Path) -> None:
        for stale in folder.glob("meta_fold*.txt"):  # an earlier stack of this name may have had more folds
            stale.unlink()
        for k, booster in enumerate(self.boosters):
            booster.save_model(str(folder / f"meta_fold{k}.txt"))
        pools = [{"weights": p.weights.tolist(), "temperature": p.temperature} for p in self.pools]
        write_text_atomic(folder / "stack_model.json", json.dumps({"experiments": self.names, "pools": pools}))

    @classmethod
    def load(cls, folder: Path) -> StackModel:
        if not (folder / "stack_model.json").exists():
            raise KitError(f"{folder}: no stack_model.json (run `task stack` first)")
        saved = json.loads((folder / "stack_model.json").read_text())
        pools = [Pool(np.asarray(p["weights"]), p["temperature"]) for p in saved["pools"]]
        boosters = [lgb.Booster(model_file=str(folder / f"meta_fold{k}.txt")) for k in range(len(pools))]
        return cls(saved["experiments"], pools, boosters)


@dataclass
class StackResult:
    oof: np.ndarray  # (train samples, ...) in the predictions' shape
    test: np.ndarray | None  # None where the bases brought no test predictions (a stack scored by CV alone)
    importance: pd.Series  # mean gain per feature over the folds' meta-models
    pooled_oof: np.ndarray  # the folds' pools alone on their held-out folds, in the predictions' shape
    model: StackModel


def chunks(n: int, rows_per_sample: int, chunk_rows: int = 2_000_000):
    step = max(1, chunk_rows // rows_per_sample)
    return [slice(i, i + step) for i in range(0, n, step)]


def features(training, probs_by_model: list[np.ndarray], names: list[str], part: slice = slice(None)):
    """Meta-features of the samples `part` and each model's log-probabilities per row, (models, rows, classes)."""
    probs = [np.asarray(p[part], dtype=np.float32) for p in probs_by_model]
    return training.meta_features(probs, names), log_probs([training.to_meta(p) for p in probs])


def features_of_rows(training, probs_by_model: list[np.ndarray], names: list[str], rows: np.ndarray):
    """features() of the meta-rows `rows` (sorted) only, computed chunk by chunk of samples: a segmentation stack
    has one row per pixel, too many to hold every row's features at once."""
    per, parts, logs = training.rows_per_sample, [], []
    for part in chunks(len(probs_by_model[0]), per):
        first, end = np.searchsorted(rows, [part.start * per, part.stop * per])
        if first == end:
            continue
        x, log = features(training, probs_by_model, names, part)
        inside = rows[first:end] - part.start * per
        parts.append(x.iloc[inside])
        logs.append(log[:, inside])
    return pd.concat(parts, ignore_index=True), np.concatenate(logs, axis=1)


def by_chunks(training, probs_by_model: list[np.ndarray], names: list[str], rows_out) -> list[np.ndarray]:
    """Arrays in the predictions' shape, filled chunk by chunk of samples: rows_out(part, x, logs) gives the chunk's
    row probabilities, one array per output."""
    n, outputs = len(probs_by_model[0]), None
    for part in chunks(n, training.rows_per_sample):
        x, logs = features(training, probs_by_model, names, part)
        got = [training.from_meta(rows, len(x) // training.rows_per_sample) for rows in rows_out(part, x, logs)]
        if outputs is None:
            outputs = [np.empty((n, *g.shape[1:]), np.float32) for g in got]
        for out, g in zip(outputs, got, strict=True):
            out[part] = g
    return outputs


def training_rows(y: np.ndarray, rows: np.ndarray, seed: int, max_rows: int) -> np.ndarray:
    """`rows` with a known target, subsampled to at most max_rows."""
    rows = rows[y[rows] >= 0]
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    return rows


def classifier(training, seed: int, **params) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(
        objective="multiclass", num_class=training.meta_classes, random_state=seed, n_jobs=threads(),
        **{**BASE_PARAMS, **training.meta_params, **params},
    )  # fmt: skip


def threads() -> int:
    """LightGBM's threads: OMP_NUM_THREADS where set (a shared or busy machine), else 2."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or 2


def rounds_by_inner_cv(training, x, init, y, groups, seed: int) -> int:
    """The number of boosting rounds (up to meta_params' n_estimators) with the lowest weighted log loss on held-out
    samples of the training rows themselves (inner folds grouped by sample: `groups`), so the stacked OOF stays
    honest."""
    params = {**BASE_PARAMS, **training.meta_params}
    rounds = params.pop("n_estimators")
    params.update(objective="multiclass", num_class=training.meta_classes, metric="multi_logloss", seed=seed,
                  num_threads=threads())  # fmt: skip

    def dataset(part: np.ndarray) -> lgb.Dataset:
        return lgb.Dataset(x.iloc[part], y[part], weight=training.meta_weights(y[part]), init_score=init[part])

    curves = []
    for inner_fit, inner_valid in GroupKFold(n_splits=INNER_FOLDS).split(x, groups=groups):
        evaluated = {}
        valid = dataset(inner_valid)
        lgb.train(params, dataset(inner_fit), rounds, valid_sets=[valid], valid_names=["valid"],
                  callbacks=[lgb.record_evaluation(evaluated)])  # fmt: skip
        curves.append(evaluated["valid"]["multi_logloss"])
    return int(np.argmin(np.mean(curves, axis=0))) + 1


def fit(training, x, init, y, groups, seed: int) -> lgb.LGBMClassifier:
    rounds = rounds_by_inner_cv(training, x, init, y, groups, seed) if training.meta_inner_cv else None
    model = classifier(training, seed, **({"n_estimators": rounds} if rounds else {}))
    model.fit(x, y, sample_weight=training.meta_weights(y), init_score=init)
    return model


def predict(model: lgb.LGBMClassifier | lgb.Booster, x: pd.DataFrame, init: np.ndarray) -> np.ndarray:
    raw = model.predict(x, raw_score=True) + init
    raw -= raw.max(axis=1, keepdims=True)
    return (np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)).astype(np.float32)


def stack(training, folds: pd.Series, bases, seed: int = 0, max_rows: int = 300_000, leak: bool = False):
    """Fold by fold: fit on the other folds' OOF rows, predict the held-out fold. leak=True fits on every fold
    instead (for the test that shows the honest procedure exposes a leak)."""
    names, oofs = [b.name for b in bases], [b.oof for b in bases]
    per = training.rows_per_sample
    y = training.meta_targets(folds.index.tolist())
    row_fold = np.repeat(folds.to_numpy().astype(np.int16), per)
    fold_values = sorted(folds.unique())
    fitted = {k: training_rows(y, np.arange(len(y)) if leak else np.flatnonzero(row_fold != k), seed + int(k),
                               max_rows) for k in fold_values}  # fmt: skip
    union = np.unique(np.concatenate(list(fitted.values())))
    x_fit, logs_fit = features_of_rows(training, oofs, names, union)
    pools, boosters = {}, {}
    importance = pd.Series(0.0, index=x_fit.columns)
    for k in fold_values:
        at = np.searchsorted(union, fitted[k])
        targets = y[fitted[k]]
        pools[k] = fit_pool(logs_fit[:, at], targets, training.meta_weights(targets))
        booster = fit(training, x_fit.iloc[at], pools[k](logs_fit[:, at]), targets, fitted[k] // per, seed + int(k))
        boosters[k] = booster.booster_
        importance += pd.Series(boosters[k].feature_importance("gain"), index=x_fit.columns) / len(fold_values)

    def held_out(part: slice, x: pd.DataFrame, logs: np.ndarray) -> list[np.ndarray]:
        fold_of = row_fold[part.start * per : part.start * per + len(x)]
        stacked, pooled = np.empty((2, len(x), training.meta_classes), np.float32)
        for k in fold_values:
            rows = fold_of == k
            if rows.any():
                init = pools[k](logs[:, rows])
                stacked[rows], pooled[rows] = predict(boosters[k], x[rows], init), np.exp(init)
        return [stacked, pooled]

    oof, pooled_oof = by_chunks(training, oofs, names, held_out)
    model = StackModel(names, [pools[k] for k in fold_values], [boosters[k] for k in fold_values])
    test = model.predict(training, [b.test for b in bases]) if all(b.test is not None for b in bases) else None
    return StackResult(oof, test, importance.sort_values(ascending=False), pooled_oof, model)
