"""Landmark heatmaps: Gaussian targets drawn from projected points, and the spatial-softmax loss that fits them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def gaussian_heatmaps(points: np.ndarray, channels: int, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """(channels, H, W) float32, peak 1 at each point's (row, column); rows of `points` are [channel, slice, row,
    column] (slice unused: the heatmap lies in the image plane); a channel without a point stays zero."""
    rows, cols = np.arange(shape[0], dtype=np.float32)[:, None], np.arange(shape[1], dtype=np.float32)[None, :]
    maps = np.zeros((channels, *shape), dtype=np.float32)
    for channel, _, row, col in np.asarray(points, dtype=np.float32).reshape(-1, 4):
        if 0 <= channel < channels:
            blob = np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * sigma**2))
            maps[int(channel)] = np.maximum(maps[int(channel)], blob)
    return maps


def spatial_softmax_loss(logits: torch.Tensor, target: torch.Tensor, min_mass: float = 1.0) -> torch.Tensor:
    """Cross-entropy between the softmax over each channel's pixels and the target heatmap normalised to sum 1.

    logits (N, C, h, w), target (N, C, H, W) (resized to h×w when they differ). Channels whose target holds less
    than `min_mass` (no landmark, or one moved out of view by augmentation) are left out; none left gives 0.
    """
    if target.shape[-2:] != logits.shape[-2:]:
        scale = target.shape[-2] * target.shape[-1] / (logits.shape[-2] * logits.shape[-1])
        target = F.interpolate(target, size=logits.shape[-2:], mode="bilinear", align_corners=False) * scale
    target = target.flatten(2).float()
    mass = target.sum(dim=-1)
    keep = mass >= min_mass
    if not keep.any():
        return logits.sum() * 0.0
    log_p = logits.flatten(2).float().log_softmax(dim=-1)
    ce = -(target / mass.clamp(min=1e-6)[..., None] * log_p).sum(dim=-1)
    return ce[keep].mean()
