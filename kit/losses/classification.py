"""Losses of single-label image classification: cross-entropy and the fused focal loss (kernels.focal)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kernels.focal import focal_loss
from kit.losses.registry import register_loss


@register_loss("image_classification", "ce")
class CrossEntropy(nn.Module):
    def __init__(self, label_smoothing: float = 0.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing)


@register_loss("image_classification", "focal")
class Focal(nn.Module):
    """The fused multi-class focal loss (kernels.focal) on (N, C) logits."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits.float()[..., None, None], target[:, None, None], self.gamma, self.weight)
