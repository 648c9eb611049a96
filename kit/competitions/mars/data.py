"""Reading mars_for_students.npz, checked, and removing the 'alien' training images that share one mask."""

from __future__ import annotations

import functools
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.errors import DataError

from .layout import FILE, HEIGHT, NUM_CLASSES, WIDTH


@dataclass
class MarsData:
    images: np.ndarray  # (N, 64, 128) float32, 0–255
    masks: np.ndarray  # (N, 64, 128) int64 labels 0–4
    ids: np.ndarray  # index of each kept image in training_set
    test: np.ndarray  # (M, 64, 128) float32
    removed: np.ndarray  # training_set indices of the outliers


def npz_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """training_set (N, 2, 64, 128) and test_set (M, 64, 128), with every deviation named."""
    if not path.exists():
        raise DataError(f"{path}: file not found (make one with `kit synth mars`)")
    try:
        with np.load(path) as npz:
            missing = {"training_set", "test_set"} - set(npz.files)
            if missing:
                raise DataError(f"{path}: missing array(s) {sorted(missing)}; found {sorted(npz.files)}")
            train, test = npz["training_set"], npz["test_set"]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz, truncated or not an npz ({exc})") from exc
    if train.ndim != 4 or train.shape[1:] != (2, HEIGHT, WIDTH):
        raise DataError(f"{path}: training_set has shape {train.shape}, expected (N, 2, {HEIGHT}, {WIDTH})")
    if test.ndim != 3 or test.shape[1:] != (HEIGHT, WIDTH):
        raise DataError(f"{path}: test_set has shape {test.shape}, expected (M, {HEIGHT}, {WIDTH})")
    for name, images in (("training_set", train[:, 0]), ("test_set", test)):
        broken = ~np.isfinite(images).all(axis=(1, 2))
        if broken.any():
            first = np.flatnonzero(broken)[:5].tolist()
            raise DataError(f"{path}: {name} has NaN or infinite pixels in {int(broken.sum())} image(s), first {first}")
    masks = train[:, 1]
    bad = (masks != np.round(masks)) | (masks < 0) | (masks >= NUM_CLASSES)
    if bad.any():
        index = int(np.argwhere(bad.any(axis=(1, 2)))[0, 0])
        raise DataError(f"{path}: training_set[{index}, 1] has labels outside 0–{NUM_CLASSES - 1}")
    return train, test


def shared_mask_outliers(masks: np.ndarray, min_copies: int = 5) -> np.ndarray:
    """Indices of the images whose mask is identical to the one mask most images share (if at least
    `min_copies` share it): the pasted 'alien' pictures all carry that mask. Natural masks never repeat."""
    keys = np.ascontiguousarray(masks.astype(np.uint8)).reshape(len(masks), -1)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    if len(counts) == 0 or counts.max() < min_copies:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(inverse == counts.argmax())


def load(data_dir: Path) -> MarsData:
    """The checked, outlier-free data; decoded once per file version (folds and training both ask for it)."""
    path = npz_path(data_dir).resolve()
    if not path.exists():
        read_npz(path)  # raises the clear error
    return _load(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _load(path: Path, _version: int) -> MarsData:
    train, test = read_npz(path)
    masks = train[:, 1].astype(np.int64)
    removed = shared_mask_outliers(masks)
    keep = np.setdiff1d(np.arange(len(train)), removed)
    return MarsData(train[keep, 0].astype(np.float32), masks[keep], keep, test.astype(np.float32), removed)
