"""Study classifiers on a 2.5D stack (slices of every view as channels) -> logits (batch, outputs)."""

from __future__ import annotations

import math

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from kit.errors import UnknownNameError
from kit.models.blocks import add_decoder_se
from kit.models.registry import register_model


def batch_norm_to_group_norm(module: nn.Module, groups: int = 8) -> nn.Module:
    """Swap every BatchNorm2d for GroupNorm: with a few studies per batch, BatchNorm's running statistics drift
    far from the batch statistics, and validation losses swing by orders of magnitude from epoch to epoch."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            channels = child.num_features
            setattr(module, name, nn.GroupNorm(math.gcd(groups, channels), channels))
        else:
            batch_norm_to_group_norm(child, groups)
    return module


NORMS = {"batch": lambda m: m, "group": batch_norm_to_group_norm}


def with_norm(model: nn.Module, norm: str) -> nn.Module:
    if norm not in NORMS:
        raise UnknownNameError(f"unknown norm {norm!r}; valid: {', '.join(sorted(NORMS))}")
    return NORMS[norm](model)


class UNetClassifier(nn.Module):
    """smp's U-Net (encoder, bottleneck, decoder with skips), then global average pooling and a linear head."""

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        encoder: str = "resnet18",
        decoder_channels=(128, 64, 32, 16, 8),
        dropout: float = 0.2,
        pool_grid: tuple[int, int] | None = None,
        decoder_se_reduction: int | None = None,
    ):
        super().__init__()
        self.unet = smp.Unet(
            encoder_name=encoder,
            encoder_weights=None,
            in_channels=in_channels,
            classes=1,
            decoder_channels=tuple(decoder_channels),
        )
        self.unet.segmentation_head = nn.Identity()
        if decoder_se_reduction:
            add_decoder_se(self.unet.decoder, decoder_se_reduction)
        # A grid of average pools (rows × columns) keeps where a finding lies, e.g. at which vertebral level;
        # None pools globally.
        self.pool = nn.AdaptiveAvgPool2d(tuple(pool_grid)) if pool_grid else nn.AdaptiveAvgPool2d(1)
        cells = pool_grid[0] * pool_grid[1] if pool_grid else 1
        features = decoder_channels[-1] * cells + self.unet.encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.unet.encoder(x)
        decoded = self.unet.decoder(skips)
        # Pooled bottleneck features sit beside the decoder's: the decoder sees fine detail, the bottleneck context.
        pooled = torch.cat([self.pool(decoded).flatten(1), skips[-1].mean(dim=(2, 3))], dim=1)
        return self.head(pooled)


@register_model
def unet_classifier(in_channels: int, num_outputs: int, norm: str = "batch", **kwargs) -> nn.Module:
    """U-Net classifier: smp Unet with any smp encoder, pooled decoder and bottleneck features, linear head."""
    return with_norm(UNetClassifier(in_channels, num_outputs, **kwargs), norm)


@register_model
def resnet_classifier(
    in_channels: int, num_outputs: int, encoder: str = "resnet18", dropout: float = 0.2, norm: str = "batch"
) -> nn.Module:
    """ResNet classifier: a timm ResNet (residual blocks, adaptive pooling, linear classifier)."""
    model = timm.create_model(
        encoder, pretrained=False, in_chans=in_channels, num_classes=num_outputs, drop_rate=dropout
    )
    return with_norm(model, norm)
