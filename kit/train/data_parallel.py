"""What DDP keeps equal to one process: the global batch (each of the world's processes takes batch_size / world),
hence the steps per epoch and the schedule; the learning rate is not rescaled. BatchNorm statistics are the one thing
that shrinks with the per-process batch, so they are synchronised across processes where torch can (SyncBatchNorm
runs on GPUs only): trainer.sync_bn = auto (on for per-process batches under SYNC_BELOW), true or false."""

from __future__ import annotations

import torch

from kit.errors import KitError

SYNC_BELOW = 32  # per-process samples under which BatchNorm statistics get noisy enough to matter
BATCH_NORMS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)


def per_process_batch(batch_size: int, world_size: int) -> int:
    """batch_size / world_size; a batch that does not divide is refused (the global batch would silently shrink)."""
    if batch_size % world_size:
        raise KitError(
            f"trainer.batch_size={batch_size} does not divide among {world_size} processes (the global batch would be "
            f"{batch_size // world_size * world_size}); use a multiple of {world_size}"
        )
    return batch_size // world_size


def sync_batchnorm(setting: bool | str, per_process: int, world_size: int, device_type: str) -> bool:
    """Whether to convert the model's BatchNorm layers to SyncBatchNorm."""
    if world_size < 2 or setting is False:
        return False
    if device_type != "cuda":
        if setting is True:
            raise KitError("trainer.sync_bn=true: torch's SyncBatchNorm runs on GPUs only; on CPUs use false or auto")
        return False
    return setting is True or per_process < SYNC_BELOW


def prepare_model(model: torch.nn.Module, setting: bool | str, per_process: int, world_size: int,
                  device_type: str) -> torch.nn.Module:  # fmt: skip
    if sync_batchnorm(setting, per_process, world_size, device_type) and any(
        isinstance(m, BATCH_NORMS) for m in model.modules()
    ):
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model
