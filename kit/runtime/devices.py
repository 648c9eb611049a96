"""Batches onto a device."""

from __future__ import annotations

import torch


def to_device(value, device: torch.device, memory_format=None):
    """A batch's tensor, or a dict of them (labels and heatmaps), on the device; copies from pinned memory overlap."""
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    moved = value.to(device, non_blocking=True)
    return moved.contiguous(memory_format=memory_format) if memory_format is not None else moved
