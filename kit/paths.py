"""Where the kit keeps data, folds, caches and runs: under $KIT_HOME (default: the current directory)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Absolute, so links and child processes (the rehearsal's notebook) see the same folders from anywhere."""
    return Path(os.environ.get("KIT_HOME", ".")).absolute()


def data_root() -> Path:
    return home() / "data"


def folds_root() -> Path:
    return home() / "folds"


def cache_root() -> Path:
    return home() / "cache"


def runs_root() -> Path:
    return home() / "runs"


def submissions_root() -> Path:
    return home() / "submissions"


def fold_name(k: int) -> str:
    """The one spelling of a fold's folder under its run (and of the Kaggle names made from it)."""
    return f"fold{k}"


def fold_dir(run: str, k: int) -> Path:
    return runs_root() / run / fold_name(k)
