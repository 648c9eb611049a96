"""Checkpoints written atomically: an interrupted save never corrupts the last good one."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.errors import KitError
from kit.io import atomic_path


def save(path: Path, state: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as "unexpected pos" from its zip writer
        raise KitError(
            f"{path}: could not write the checkpoint ({exc}); is the disk full or the folder read-only?"
        ) from exc


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)
