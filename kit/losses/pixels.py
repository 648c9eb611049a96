"""Losses of per-pixel classes: cross-entropy with Dice over the labelled pixels (any image/mask dataset, whose
masks may hold an ignore value), and the fused focal loss with MONAI's Dice (Mars, every pixel labelled)."""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from torch import nn
from torch.nn import functional as F

from kernels.focal import focal_loss
from kit.losses.registry import register_loss


def present_class_dice(probs: torch.Tensor, target: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice over the batch's labelled pixels, averaged over the classes present in the batch's truth.
    By hand because MONAI's Dice losses also average the classes a batch lacks, whose best score is predicting none
    of them: on AI4Mars (big rock in a few images) that taught the model never to predict big rock."""
    onehot = F.one_hot(torch.where(labelled, target, 0), probs.shape[1]).permute(0, 3, 1, 2).float()
    weight = labelled[:, None].float()
    intersection = (probs * onehot * weight).sum(dim=(0, 2, 3))
    truth, predicted = (onehot * weight).sum(dim=(0, 2, 3)), (probs * weight).sum(dim=(0, 2, 3))
    present = truth > 0
    if not present.any():
        return probs.sum() * 0.0
    dice = 2 * intersection[present] / (truth[present] + predicted[present]).clamp(min=1e-6)
    return 1 - dice.mean()


@register_loss("segmentation", "ce_dice")
class CrossEntropyDice(nn.Module):
    """Cross-entropy (optional per-class weights) and Dice over the present classes, both over the labelled pixels
    only (the ignore value never counts)."""

    def __init__(self, ignore_index: int = 255, dice_weight: float = 0.5, label_smoothing: float = 0.0,
                 class_weights: list[float] | None = None):  # fmt: skip
        super().__init__()
        self.ignore_index, self.dice_weight, self.label_smoothing = ignore_index, dice_weight, label_smoothing
        self.register_buffer("weight", None if class_weights is None else torch.tensor(class_weights).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        loss = F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index,
                               label_smoothing=self.label_smoothing)  # fmt: skip
        if self.dice_weight:
            labelled = target != self.ignore_index
            loss = loss + self.dice_weight * present_class_dice(logits.softmax(dim=1), target, labelled)
        return loss


@register_loss("mars", "focal_dice")
class FocalDice(nn.Module):
    """Focal loss with per-class alpha (kernels.focal), plus Dice over the non-background classes (MONAI)."""

    def __init__(self, alpha=None, gamma: float = 2.0, dice_weight: float = 0.0):
        super().__init__()
        self.register_buffer("alpha", None if alpha is None else torch.tensor(alpha, dtype=torch.float32))
        self.gamma, self.dice_weight = gamma, dice_weight
        self.dice = DiceLoss(include_background=False, to_onehot_y=True, softmax=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = focal_loss(logits.float(), target, self.gamma, self.alpha)
        if self.dice_weight:
            loss = loss + self.dice_weight * self.dice(logits.float(), target[:, None])
        return loss
