"""A LightGBM meta-model over the base models' OOF, trained fold by fold on the same folds (so the stacked OOF is
honest), its test predictions averaged over the folds' meta-models.

Boosting starts from the base models' mean blend (its log-probabilities are LightGBM's init_score): the trees only
learn corrections to the blend from the meta-features, which keeps a small meta-training set from undoing what the
blend already gets right.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

BASE_PARAMS = {"subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 5.0, "verbose": -1}


@dataclass
class StackResult:
    oof: np.ndarray  # (train samples, ...) in the predictions' shape
    test: np.ndarray
    importance: pd.Series  # mean gain per feature over the folds' meta-models


def chunks(n: int, rows_per_sample: int, chunk_rows: int = 2_000_000):
    step = max(1, chunk_rows // rows_per_sample)
    return [slice(i, i + step) for i in range(0, n, step)]


def features(training, probs_by_model: list[np.ndarray], names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Meta-features of every sample (computed in chunks of samples to bound memory) and the mean blend's
    log-probabilities per row."""
    parts, blend = [], []
    for part in chunks(len(probs_by_model[0]), training.rows_per_sample):
        probs = [p[part] for p in probs_by_model]
        parts.append(training.meta_features(probs, names))
        blend.append(np.log(np.clip(training.to_meta(np.mean(probs, axis=0)), 1e-6, 1.0)))
    return pd.concat(parts, ignore_index=True), np.concatenate(blend).astype(np.float64)


def fit(training, x, init, y, rows, seed: int, max_rows: int) -> lgb.LGBMClassifier:
    """A meta-model on `rows` with a known target, subsampled to at most max_rows."""
    rows = rows[y[rows] >= 0]
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    model = lgb.LGBMClassifier(
        objective="multiclass", num_class=training.meta_classes, random_state=seed, n_jobs=2,
        **{**BASE_PARAMS, **training.meta_params},
    )  # fmt: skip
    model.fit(x.iloc[rows], y[rows], sample_weight=training.meta_weights(y[rows]), init_score=init[rows])
    return model


def predict(model: lgb.LGBMClassifier, x: pd.DataFrame, init: np.ndarray) -> np.ndarray:
    raw = model.predict(x, raw_score=True) + init
    raw -= raw.max(axis=1, keepdims=True)
    return (np.exp(raw) / np.exp(raw).sum(axis=1, keepdims=True)).astype(np.float32)


def stack(training, folds: pd.Series, bases, seed: int = 0, max_rows: int = 300_000, leak: bool = False):
    """Fold by fold: fit on the other folds' OOF rows, predict the held-out fold. leak=True fits on every fold
    instead (for the test that shows the honest procedure exposes a leak)."""
    names = [b.name for b in bases]
    x, init = features(training, [b.oof for b in bases], names)
    x_test, init_test = features(training, [b.test for b in bases], names)
    ids = folds.index.tolist()
    y = training.meta_targets(ids)
    row_fold = np.repeat(folds.to_numpy(), training.rows_per_sample)
    oof_rows = np.full((len(x), training.meta_classes), np.nan, dtype=np.float32)
    test_rows = np.zeros((len(x_test), training.meta_classes), dtype=np.float32)
    importance = pd.Series(0.0, index=x.columns)
    fold_values = sorted(folds.unique())
    for k in fold_values:
        train_rows = np.arange(len(x)) if leak else np.flatnonzero(row_fold != k)
        model = fit(training, x, init, y, train_rows, seed + int(k), max_rows)
        held_out = row_fold == k
        oof_rows[held_out] = predict(model, x[held_out], init[held_out])
        test_rows += predict(model, x_test, init_test) / len(fold_values)
        importance += pd.Series(model.booster_.feature_importance("gain"), index=x.columns) / len(fold_values)
    return StackResult(
        training.from_meta(oof_rows, len(ids)),
        training.from_meta(test_rows, len(x_test) // training.rows_per_sample),
        importance.sort_values(ascending=False),
    )
