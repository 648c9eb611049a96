"""On-disk cache of preprocessed samples, so that DICOM is decoded once and later epochs read tensors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from monai.data import PersistentDataset
from monai.data.utils import pickle_hashing


def config_key(config: dict) -> str:
    """A short stable name for a preprocessing configuration: changing any setting starts a new cache."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_dataset(items: Sequence[dict], transform: Callable, cache_root: Path, config: dict) -> PersistentDataset:
    """MONAI's PersistentDataset under cache_root/<config key>/; items are keyed by their content (paths, ids)."""
    cache_dir = Path(cache_root) / config_key(config)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "config.json").write_text(json.dumps(config, sort_keys=True, indent=1, default=str))
    return PersistentDataset(
        data=list(items), transform=transform, cache_dir=cache_dir, weights_only=False, hash_func=content_hash
    )


def content_hash(item: dict) -> bytes:
    """The item and the size and modification time of every file its paths name: a study whose DICOMs were
    rewritten in place gets a new cache entry instead of its old tensors."""
    stamps = [(str(p), st.st_size, st.st_mtime_ns) for p, st in _file_stats(item)]
    return hashlib.md5(pickle_hashing(item) + json.dumps(stamps).encode()).hexdigest().encode()


def _file_stats(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _file_stats(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _file_stats(v)
    elif isinstance(value, str | Path) and len(str(value)) < 4096:
        path = Path(value)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.is_file():
                    yield child, child.stat()
        elif path.is_file():
            yield path, path.stat()
