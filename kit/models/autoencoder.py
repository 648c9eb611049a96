"""An autoencoder on a classifier's backbone: a timm encoder (features_only) and a light decoder of upsampling
conv blocks back to the input size. `activations(x)` gives the encoder's stride-8 map for pictures."""

from __future__ import annotations

import math

import timm
import torch
from torch import nn

from kit.models import encoders
from kit.models.registry import register_model


def up_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="nearest"),
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Autoencoder(nn.Module):
    def __init__(self, encoder: nn.Module, out_channels: int, widths: tuple[int, ...]):
        super().__init__()
        self.encoder = encoder
        info = encoder.feature_info
        reduction, channels = info.reduction()[-1], info.channels()[-1]
        steps = int(math.log2(reduction))
        widths = [widths[min(k, len(widths) - 1)] for k in range(steps)]
        blocks, cin = [], channels
        for width in widths:
            blocks.append(up_block(cin, width))
            cin = width
        self.decoder = nn.Sequential(*blocks, nn.Conv2d(cin, out_channels, 1))
        self.activation_index = min(range(len(info.reduction())), key=lambda k: abs(info.reduction()[k] - 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)[-1])

    @torch.no_grad()
    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """(N, h, w): the mean absolute activation of the encoder's stride-8 feature map."""
        return self.encoder(x)[self.activation_index].abs().mean(dim=1)


@register_model
def autoencoder(in_channels: int, num_outputs: int, encoder: str = "resnet18",
                decoder_widths=(128, 64, 32, 16)) -> nn.Module:  # fmt: skip
    """num_outputs: the reconstructed channels (the input's)."""
    encoders.check_timm(encoder)
    backbone = timm.create_model(encoder, pretrained=False, features_only=True, in_chans=in_channels)
    return Autoencoder(backbone, num_outputs, tuple(decoder_widths))
