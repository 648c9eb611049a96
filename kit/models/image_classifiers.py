"""Image classifiers of the image-classification family: any timm backbone by name, with weights from a local file
or (online only) timm's hub, and either timm's own head or the seed's head (fused SE, pooling, dense Swish layers)."""

from __future__ import annotations

import timm
import torch
from torch import nn

from kernels.se import SqueezeExcite
from kit.models import encoders
from kit.models import pretrained as pretrained_weights
from kit.models.fused_se import fuse_timm_se
from kit.models.hub import hub_model
from kit.models.registry import register_model


class DenseHead(nn.Module):
    """The seed's head: a fused SE block on the last feature map, global average pooling, then dense layers with
    BatchNorm, Swish and dropout, and the classifier."""

    def __init__(self, channels: int, num_outputs: int, hidden=(256,), se_reduction: int | None = 16,
                 dropout: float = 0.3):  # fmt: skip
        super().__init__()
        self.se = SqueezeExcite(channels, se_reduction) if se_reduction else nn.Identity()
        layers, width = [], channels
        for units in hidden:
            layers += [nn.Linear(width, units), nn.BatchNorm1d(units), nn.SiLU(), nn.Dropout(dropout)]
            width = units
        self.dense = nn.Sequential(*layers, nn.Linear(width, num_outputs))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.dense(self.se(features).mean(dim=(2, 3)))


class BackboneWithHead(nn.Module):
    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x))


@register_model
def timm_classifier(in_channels: int, num_outputs: int, encoder: str = "resnet18", pretrained: str | None = None,
                    dropout: float = 0.2, head: dict | None = None) -> nn.Module:  # fmt: skip
    """Any timm backbone (its SE blocks on the fused SE op where they compute the same function); pretrained: null
    (random), a weights file, package:<installed weights package>, or "hub" (online only); head: null for timm's
    classifier, or the seed's dense head ({hidden, se_reduction, dropout})."""
    encoders.check_timm(encoder)
    kwargs = {"in_chans": in_channels, "num_classes": 0 if head else num_outputs, "drop_rate": dropout}
    if pretrained == "hub":
        backbone = hub_model(encoder, **kwargs)
    else:
        backbone = timm.create_model(encoder, pretrained=False, **kwargs)
        if pretrained:
            pretrained_weights.load_into(backbone, pretrained, encoder)
    fuse_timm_se(backbone)
    if not head:
        return backbone
    return BackboneWithHead(backbone, DenseHead(backbone.num_features, num_outputs, **head))


@register_model
def simple_cnn(in_channels: int, num_outputs: int, widths=(32, 64, 128, 256), dropout: float = 0.3) -> nn.Module:
    """A CNN from scratch: per width two 3×3 conv-BN-ReLU and a 2×2 max-pool, then global pooling and a linear head."""
    layers, cin = [], in_channels
    for width in widths:
        for _ in range(2):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            cin = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, num_outputs)
    )
