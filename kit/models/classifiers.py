"""Study classifiers on a 2.5D stack (slices of every view as channels) -> logits (batch, outputs)."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from kit.models.registry import register_model


class UNetClassifier(nn.Module):
    """smp's U-Net (encoder, bottleneck, decoder with skips), then global average pooling and a linear head."""

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        encoder: str = "resnet18",
        decoder_channels=(128, 64, 32, 16, 8),
        dropout: float = 0.2,
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
        features = decoder_channels[-1] + self.unet.encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = self.unet.encoder(x)
        decoded = self.unet.decoder(skips)
        # Pooled bottleneck features sit beside the decoder's: the decoder sees fine detail, the bottleneck context.
        pooled = torch.cat([decoded.mean(dim=(2, 3)), skips[-1].mean(dim=(2, 3))], dim=1)
        return self.head(pooled)


@register_model
def unet_classifier(in_channels: int, num_outputs: int, **kwargs) -> nn.Module:
    """U-Net classifier: smp Unet with any smp encoder, pooled decoder and bottleneck features, linear head."""
    return UNetClassifier(in_channels, num_outputs, **kwargs)


@register_model
def resnet_classifier(in_channels: int, num_outputs: int, encoder: str = "resnet18", dropout: float = 0.2) -> nn.Module:
    """ResNet classifier: a timm ResNet (residual blocks, adaptive pooling, linear classifier)."""
    return timm.create_model(
        encoder, pretrained=False, in_chans=in_channels, num_classes=num_outputs, drop_rate=dropout
    )
