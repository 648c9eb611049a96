"""Checkpoints written atomically: an interrupted save never corrupts the last good one."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.io import atomic_path


def save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)
