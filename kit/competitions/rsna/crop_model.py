"""Stage 2 of `rsna_two_stage`: a timm encoder over every slice of every level's crops, attention-MIL pooling over
each crop's slices, and one head per condition."""

from __future__ import annotations

import timm
import torch
from torch import nn

from kit.models import encoders
from kit.models import pretrained as pretrained_weights
from kit.models.fused_se import fuse_timm_se
from kit.models.registry import register_model

SEVERITIES = 3
LEVELS = 5
CONDITIONS = 5


class AttentionPool(nn.Module):
    """Gated attention-MIL (Ilse et al. 2018): a softmax over the instances of learned gated scores."""

    def __init__(self, features: int, hidden: int = 64):
        super().__init__()
        self.value, self.gate, self.score = (
            nn.Linear(features, hidden),
            nn.Linear(features, hidden),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., instances, features) -> (..., features)
        weights = self.score(torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))).softmax(dim=-2)
        return (weights * x).sum(dim=-2)


class LevelCropClassifier(nn.Module):
    """(batch, levels, crop kinds [canal, left foramen, right foramen, axial], slices, H, W) -> (batch, 5 conditions
    × 5 levels × 3) logits in the competition's target order. Left and right foramina share a head (a sagittal
    crop of either looks alike); the axial crop holds both lateral recesses, each with its own head. `temperature`
    (one per condition) is 1 while training and fitted on the fold's OOF afterwards."""

    def __init__(self, encoder: str, dropout: float, pretrained: str | None = None):
        super().__init__()
        self.encoder = timm.create_model(encoder, pretrained=False, in_chans=1, num_classes=0)
        if pretrained:  # ImageNet's colour stem summed to one channel, as timm adapts it
            pretrained_weights.load_into(self.encoder, pretrained, encoder)
        fuse_timm_se(self.encoder)
        width = self.encoder.num_features
        self.pools = nn.ModuleList(AttentionPool(width) for _ in range(4))
        self.level = nn.Embedding(LEVELS, width)
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({k: nn.Linear(width, SEVERITIES) for k in ("canal", "foramen", "left", "right")})
        self.register_buffer("temperature", torch.ones(CONDITIONS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, levels, kinds, slices, height, width = x.shape
        features = self.encoder(x.reshape(-1, 1, height, width)).view(batch, levels, kinds, slices, -1)
        pooled = torch.stack([pool(features[:, :, k]) for k, pool in enumerate(self.pools)], dim=2)
        pooled = self.dropout(pooled + self.level.weight[None, :levels, None])
        logits = torch.stack([self.heads["canal"](pooled[:, :, 0]), self.heads["foramen"](pooled[:, :, 1]),
                              self.heads["foramen"](pooled[:, :, 2]), self.heads["left"](pooled[:, :, 3]),
                              self.heads["right"](pooled[:, :, 3])], dim=1)  # fmt: skip
        logits = logits / self.temperature.view(1, -1, 1, 1)
        return logits.reshape(batch, -1)


@register_model
def level_crop_mil(in_channels: int, num_outputs: int, encoder: str = "resnet18", dropout: float = 0.2,
                   pretrained: str | None = None) -> nn.Module:  # fmt: skip
    """Stage 2 of rsna_two_stage (in_channels: 1 per slice image; num_outputs: 75); pretrained: null, or a weights
    file or package:<installed weights package> for the encoder."""
    if num_outputs != CONDITIONS * LEVELS * SEVERITIES:
        raise ValueError(f"level_crop_mil predicts the 75 RSNA outputs, not {num_outputs}")
    return LevelCropClassifier(encoders.check_timm(encoder), dropout, pretrained)
