"""Image files decoded and resized once per data and size: `cache/decoded/<key>.npy`, a (n, S, S, C) uint8 array that
every later run of the same files at the same size memory-maps instead of decoding them again. The key covers each
file's path, size and modification time and the decoding settings, so a changed image or size makes a new entry.
By hand because MONAI's PersistentDataset keeps one pickle per sample (20,000 small files to open per epoch), where
one array read at once is what a classifier's in-memory dataset wants."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from kit import paths
from kit.io import atomic_path, exclusive

PROGRESS_FROM = 2000  # files: fewer decode in a second or two without a bar


def cache_key(files: Sequence[Path], settings: dict) -> str:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path in files:
        stat = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def decoded(files: Sequence[Path], shape: tuple[int, ...], decode: Callable[[Path], np.ndarray], settings: dict,
            label: str = "images") -> np.ndarray:  # fmt: skip
    """Every file through `decode` (each giving an array of `shape`), stacked: from the cache when these files were
    decoded so before, else decoded now into it (one process decodes, another started at once waits for it)."""
    path = paths.cache_root() / "decoded" / f"{cache_key(files, {**settings, 'shape': list(shape)})}.npy"
    if not path.exists():
        with exclusive(path, f"decoding these {label}"):
            if not path.exists():
                _write(path, files, shape, decode, label)
    return np.load(path, mmap_mode="r")


def _write(path: Path, files: Sequence[Path], shape: tuple[int, ...], decode: Callable, label: str) -> None:
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), *shape))
        bar = tqdm(files, desc=f"decoding {label} (once; cached in {path.parent})", leave=False,
                   disable=len(files) < PROGRESS_FROM)  # fmt: skip
        for index, file in enumerate(bar):
            out[index] = decode(file)
        out.flush()
        del out
