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
        x, logs = features(training, probs_by_model, self.names)
        rows = sum(predict(b, x, pool(logs)) for pool, b in zip(self.pools, self.boosters, strict=True))
        return training.from_meta(rows / len(self.boosters), len(x) // training.rows_per_sample)

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
    test: np.ndarray
    importance: pd.Series  # mean gain per feature over the folds' meta-models
    pooled_oof: np.ndarray  # the folds' pools alone on their held-out folds, in the predictions' shape
    model: StackModel


def chunks(n: int, rows_per_sample: int, chunk_rows: int = 2_000_000):
    step = max(1, chunk_rows // rows_per_sample)
    return [slice(i, i + step) for i in range(0, n, step)]


def features(training, probs_by_model: list[np.ndarray], names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Meta-features of every sample (computed in chunks of samples to bound memory) and each model's
    log-probabilities per row, (models, rows, classes)."""
    parts, logs = [], []
    for part in chunks(len(probs_by_model[0]), training.rows_per_sample):
        probs = [p[part] for p in probs_by_model]
        parts.append(training.meta_features(probs, names))
        logs.append(log_probs([training.to_meta(p) for p in probs]))
    return pd.concat(parts, ignore_index=True), np.concatenate(logs, axis=1)


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


def rounds_by_inner_cv(training, x, init, y, rows, seed: int) -> int:
    """The number of boosting rounds (up to meta_params' n_estimators) with the lowest weighted log loss on held-out
    samples of the training rows themselves (inner folds grouped by sample), so the stacked OOF stays honest."""
    params = {**BASE_PARAMS, **training.meta_params}
    rounds = params.pop("n_estimators")
    params.update(objective="multiclass", num_class=training.meta_classes, metric="multi_logloss", seed=seed,
                  num_threads=threads())  # fmt: skip

    def dataset(part: np.ndarray) -> lgb.Dataset:
        return lgb.Dataset(x.iloc[part], y[part], weight=training.meta_weights(y[part]), init_score=init[part])

    curves = []
    for inner_fit, inner_valid in GroupKFold(n_splits=INNER_FOLDS).split(rows, groups=rows // training.rows_per_sample):
        evaluated = {}
        valid = dataset(rows[inner_valid])
        lgb.train(params, dataset(rows[inner_fit]), rounds, valid_sets=[valid], valid_names=["valid"],
                  callbacks=[lgb.record_evaluation(evaluated)])  # fmt: skip
        curves.append(evaluated["valid"]["multi_logloss"])
    return int(np.argmin(np.mean(curves, axis=0))) + 1


def fit(training, x, init, y, rows, seed: int) -> lgb.LGBMClassifier:
    rounds = rounds_by_inner_cv(training, x, init, y, rows, seed) if training.meta_inner_cv else None
    model = classifier(training, seed, **({"n_estimators": rounds} if rounds else {}))
    model.fit(x.iloc[rows], y[rows], sample_weight=training.meta_weights(y[rows]), init_score=init[rows])
    return model


def predict(model: lgb.LGBMClassifier | lgb.Booster, x: pd.DataFrame, init: np.ndarray) -> np.ndarray:
    raw = model.predict(x, raw_score=True) + init
    raw -= raw.max(axis=1, keepdims=True)
    return (np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)).astype(np.float32)


def stack(training, folds: pd.Series, bases, seed: int = 0, max_rows: int = 300_000, leak: bool = False):
    """Fold by fold: fit on the other folds' OOF rows, predict the held-out fold. leak=True fits on every fold
    instead (for the test that shows the honest procedure exposes a leak)."""
    names = [b.name for b in bases]
    x, logs = features(training, [b.oof for b in bases], names)
    ids = folds.index.tolist()
    y = training.meta_targets(ids)
    row_fold = np.repeat(folds.to_numpy(), training.rows_per_sample)
    oof_rows = np.full((len(x), training.meta_classes), np.nan, dtype=np.float32)
    pooled_rows = np.full_like(oof_rows, np.nan)
    pools, boosters = [], []
    importance = pd.Series(0.0, index=x.columns)
    fold_values = sorted(folds.unique())
    for k in fold_values:
        rows = training_rows(y, np.arange(len(x)) if leak else np.flatnonzero(row_fold != k), seed + int(k), max_rows)
        pools.append(fit_pool(logs[:, rows], y[rows], training.meta_weights(y[rows])))
        init = pools[-1](logs)
        boosters.append(fit(training, x, init, y, rows, seed + int(k)).booster_)
        held_out = row_fold == k
        oof_rows[held_out] = predict(boosters[-1], x[held_out], init[held_out])
        pooled_rows[held_out] = np.exp(init[held_out])
        importance += pd.Series(boosters[-1].feature_importance("gain"), index=x.columns) / len(fold_values)
    model = StackModel(names, pools, boosters)
    return StackResult(
        training.from_meta(oof_rows, len(ids)),
        model.predict(training, [b.test for b in bases]),
        importance.sort_values(ascending=False),
        training.from_meta(pooled_rows, len(ids)),
        model,
    )
