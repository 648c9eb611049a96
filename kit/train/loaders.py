"""Data loaders for a fold: on CUDA, worker processes from the CPU count, pinned memory, persistent workers; on the
CPU, the main process (workers there only compete with the model for the same cores)."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader

from kit.schema import trainer as settings


def worker_count(setting: int | None, device: torch.device) -> int:
    """trainer.num_workers (checked by check_config): a count, or null for the default (CUDA: the CPU count less one,
    at most 8; CPU: 0)."""
    if setting is None:
        return min(8, max(0, (os.cpu_count() or 1) - 1)) if device.type == "cuda" else 0
    return setting


def make_loader(dataset, batch_size: int, trainer: dict, device: torch.device, **kwargs) -> DataLoader:
    workers = worker_count(settings(trainer).num_workers, device)
    cuda = device.type == "cuda"
    return DataLoader(
        dataset,
        batch_size,
        num_workers=workers,
        pin_memory=cuda,
        persistent_workers=cuda and workers > 0,
        **kwargs,
    )
