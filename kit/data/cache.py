"""On-disk cache of preprocessed samples, so that DICOM is decoded once and later epochs read tensors."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from monai.data import PersistentDataset


def config_key(config: dict) -> str:
    """A short stable name for a preprocessing configuration: changing any setting starts a new cache."""
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def cached_dataset(items: Sequence[dict], transform: Callable, cache_root: Path, config: dict) -> PersistentDataset:
    """MONAI's PersistentDataset under cache_root/<config key>/; items are keyed by their content (paths, ids)."""
    cache_dir = Path(cache_root) / config_key(config)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "config.json").write_text(json.dumps(config, sort_keys=True, indent=1, default=str))
    return PersistentDataset(data=list(items), transform=transform, cache_dir=cache_dir, weights_only=False)
