"""Building blocks shared by the kit's models."""

from __future__ import annotations

from torch import nn

from kernels.se import SqueezeExcite


def add_decoder_se(decoder: nn.Module, reduction: int) -> nn.Module:
    """Put a fused Squeeze-and-Excitation block (kernels.se) after every block of an smp U-Net decoder."""
    for block in decoder.blocks:
        block.attention2 = SqueezeExcite(block.conv2[0].out_channels, reduction)
    return decoder
