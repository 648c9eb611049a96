"""Folds are data: one seeded, stratified, grouped split per dataset, written once and reused by every experiment."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from kit.errors import KitError
from kit.io import atomic_path, exclusive, write_text_atomic


def split_folds(ids: Sequence, strata: Sequence[int], groups: Sequence, n_splits: int, seed: int) -> np.ndarray:
    """Fold index per sample: stratified by `strata`, with every group in one fold."""
    if len(set(groups)) < n_splits:
        raise KitError(f"cannot make {n_splits} folds from {len(set(groups))} groups")
    strata = np.asarray(strata).copy()
    values, counts = np.unique(strata, return_counts=True)
    strata[np.isin(strata, values[counts < n_splits])] = values[np.argmax(counts)]  # too rare to spread: merged
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(ids), -1, dtype=np.int64)
    for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(ids)), strata, np.asarray(groups))):
        folds[valid] = fold
    return folds


def keyed_path(path: Path, ids: Sequence, strata: Sequence | None) -> Path:
    """folds/<data folder>-<key>.csv: the key hashes the sample ids and their strata, so two datasets in folders of
    the same name never share a split, and the same data moved elsewhere keeps its own."""
    order = sorted(range(len(ids)), key=lambda k: str(ids[k]))
    digest = hashlib.sha256()
    for k in order:
        digest.update(f"{ids[k]}\0{'' if strata is None else strata[k]}\n".encode())
    return Path(path).with_name(f"{Path(path).stem}-{digest.hexdigest()[:10]}.csv")


def load_or_make_folds(
    path: Path, ids: Sequence, strata: Sequence[int] | None, groups: Sequence | Callable[[], Sequence] | None,
    n_splits: int = 5, seed: int = 42, splitter: Callable = split_folds,
) -> pd.Series:  # fmt: skip
    """The folds file at `path` (made on first use by `splitter(ids, strata, groups, n_splits, seed)`) as a Series
    id -> fold; it must cover every id given. The file's name is keyed by the data (keyed_path). `groups` may be a
    function, called only when the split is made (finding duplicate groups costs time)."""
    ids = list(ids)
    strata = None if strata is None else list(np.asarray(strata))
    path = keyed_path(path, ids, strata)
    with exclusive(path, "making this split"):  # two folds started together share one split
        if path.exists():
            return _read_folds(path, ids, n_splits, seed)
        groups = groups() if callable(groups) else groups
        folds = pd.Series(splitter(ids, strata, groups, n_splits, seed), index=pd.Index(ids, name="id"), name="fold")
        with atomic_path(path) as tmp:
            folds.to_csv(tmp)
        write_text_atomic(path.with_suffix(".json"), json.dumps({"n_splits": n_splits, "seed": seed, "n": len(folds)}))
    folds.attrs["path"] = str(path)
    return folds


def _read_folds(path: Path, ids: list, n_splits: int, seed: int) -> pd.Series:
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if meta and (meta.get("n_splits"), meta.get("seed")) != (n_splits, seed):
        raise KitError(
            f"{path} was made with n_splits={meta.get('n_splits')}, seed={meta.get('seed')}; "
            f"asked for n_splits={n_splits}, seed={seed}. Every experiment must share one split: "
            "use the file's settings, or delete it to make a new split"
        )
    as_text = len(ids) > 0 and isinstance(list(ids)[0], str)  # paths, or array indices kept as text
    folds = pd.read_csv(path, index_col="id", dtype={"id": str} if as_text else None)["fold"]
    missing = pd.Index(ids).difference(folds.index)
    if len(missing):
        raise KitError(f"{path} has no fold for {len(missing)} id(s), e.g. {missing[:3].tolist()}; the data changed")
    if meta.get("n") is not None and meta["n"] != len(ids):
        raise KitError(f"{path} holds {meta['n']} samples, the data has {len(ids)}; delete it to make a new split")
    folds = folds.loc[ids]
    folds.attrs["path"] = str(path)
    return folds
