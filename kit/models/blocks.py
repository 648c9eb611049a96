"""Building blocks shared by the kit's models."""

from __future__ import annotations

import torch
from torch import nn

from kernels.se import SqueezeExcite


def add_decoder_se(decoder: nn.Module, reduction: int) -> nn.Module:
    """Put a fused Squeeze-and-Excitation block (kernels.se) after every block of an smp U-Net decoder."""
    for block in decoder.blocks:
        block.attention2 = SqueezeExcite(block.conv2[0].out_channels, reduction)
    return decoder


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, dilation: int = 1) -> nn.Sequential:
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class DilatedInception(nn.Module):
    """Parallel 3×3 convolutions at several dilations (and a 1×1), concatenated and fused, with a residual."""

    def __init__(self, cin: int, cout: int, dilations=(1, 2, 4)):
        super().__init__()
        branch = max(8, cout // (len(dilations) + 1))
        self.branches = nn.ModuleList([conv_bn_relu(cin, branch, 1)])
        self.branches.extend(conv_bn_relu(cin, branch, 3, d) for d in dilations)
        self.fuse = conv_bn_relu(branch * (len(dilations) + 1), cout, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([b(x) for b in self.branches], dim=1)) + self.skip(x)


class AttentionGate(nn.Module):
    """Attention U-Net gate: the decoder's coarser signal decides which skip-connection pixels pass."""

    def __init__(self, skip_channels: int, gate_channels: int, inner: int):
        super().__init__()
        self.skip, self.gate = nn.Conv2d(skip_channels, inner, 1), nn.Conv2d(gate_channels, inner, 1)
        self.psi = nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(inner, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.skip(skip) + self.gate(gate))


class GlobalContext(nn.Module):
    """GCNet's global context block: attention-pooled context, a bottleneck transform, added to every pixel."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(8, channels // reduction)
        self.attend = nn.Conv2d(channels, 1, 1)
        self.transform = nn.Sequential(
            nn.Conv2d(channels, hidden, 1), nn.LayerNorm([hidden, 1, 1]), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weights = self.attend(x).view(n, 1, h * w).softmax(dim=-1)
        context = torch.bmm(x.view(n, c, h * w), weights.transpose(1, 2)).view(n, c, 1, 1)
        return x + self.transform(context)


class CellularAutomata(nn.Module):
    """A learned local update applied a few times to the logits: each pixel revises its class from its
    neighbourhood, cleaning speckle. Starts as the identity (the last convolution is zero-initialised)."""

    def __init__(self, classes: int, hidden: int = 16, steps: int = 3):
        super().__init__()
        self.steps = steps
        self.rule = nn.Sequential(nn.Conv2d(classes, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.update = nn.Conv2d(hidden, classes, 1)
        nn.init.zeros_(self.update.weight)
        nn.init.zeros_(self.update.bias)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        for _ in range(self.steps):
            logits = logits + self.update(self.rule(logits))
        return logits
