"""Losses of multi-label findings (ChestX-ray14): weighted binary cross-entropy and the fused sigmoid focal loss."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from kernels.focal import sigmoid_focal_loss
from kit.losses.registry import register_loss


@register_loss("chestxray14", "bce")
class WeightedBCE(nn.Module):
    def __init__(self, pos_weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.float(), target.float(), pos_weight=self.pos_weight)


@register_loss("chestxray14", "focal")
class SigmoidFocal(nn.Module):
    """The fused sigmoid focal loss (kernels.focal), averaged over images × findings."""

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits.float(), target.float(), self.alpha, self.gamma, reduction="mean")
