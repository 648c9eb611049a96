"""Segmentation models: the Macro/Micro dual U-Net ensemble of the Mars seed design, and any smp architecture."""

from __future__ import annotations

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import nn

from kernels.se import SqueezeExcite
from kit.errors import KitError, UnknownNameError
from kit.models import encoders
from kit.models import pretrained as pretrained_weights
from kit.models.blocks import (
    AttentionGate,
    CellularAutomata,
    DilatedInception,
    GlobalContext,
    add_decoder_se,
    conv_bn_relu,
)
from kit.models.registry import register_model


class Stage(nn.Sequential):
    """Two convolutions (or a dilated inception block), then an optional fused SE block."""

    def __init__(self, cin: int, cout: int, kernel: int, inception: bool, se_reduction: int | None):
        layers = [DilatedInception(cin, cout)] if inception else [conv_bn_relu(cin, cout, kernel)]
        layers.append(conv_bn_relu(cout, cout, kernel))
        if se_reduction:
            layers.append(SqueezeExcite(cout, se_reduction))
        super().__init__(*layers)


class UNet(nn.Module):
    """A configurable U-Net: widths per level, kernel size, dilated-inception stages, attention gates on the
    skips, a global context module at the bottleneck, SE blocks, and cellular-automata refinement of the logits."""

    def __init__(
        self, in_channels: int, classes: int, widths=(16, 32, 64, 128), kernel: int = 3, inception: bool = False,
        attention: bool = False, global_context: bool = False, se_reduction: int | None = 8, ca_steps: int = 0,
    ):  # fmt: skip
        super().__init__()
        self.down = nn.ModuleList()
        cin = in_channels
        for depth, width in enumerate(widths):
            self.down.append(Stage(cin, width, kernel, inception and depth == len(widths) - 1, se_reduction))
            cin = width
        self.context = GlobalContext(widths[-1]) if global_context else nn.Identity()
        self.gates, self.up = nn.ModuleList(), nn.ModuleList()
        for skip, deeper in zip(reversed(widths[:-1]), reversed(widths[1:]), strict=True):
            self.gates.append(AttentionGate(skip, deeper, max(8, skip // 2)) if attention else None)
            self.up.append(Stage(skip + deeper, skip, kernel, False, se_reduction))
        self.head = nn.Conv2d(widths[0], classes, 1)
        self.refine = CellularAutomata(classes, steps=ca_steps) if ca_steps else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for depth, stage in enumerate(self.down):
            x = stage(x if depth == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = self.context(skips.pop())
        for gate, stage in zip(self.gates, self.up, strict=True):
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            stage_in = torch.cat([gate(skip, x) if gate is not None else skip, x], dim=1)
            x = stage(stage_in)
        return self.refine(self.head(x))


def macro_unet(in_channels: int, classes: int, widths=(16, 32, 64, 128), se_reduction=8, ca_steps=2) -> UNet:
    """Global context: deep, dilated inception at the bottleneck, attention-gated skips."""
    return UNet(in_channels, classes, widths, 3, inception=True, attention=True, se_reduction=se_reduction,
                ca_steps=ca_steps)  # fmt: skip


def micro_unet(in_channels: int, classes: int, widths=(24, 48, 96), se_reduction=8, ca_steps=2) -> UNet:
    """Fine texture: fewer levels with larger (5×5) filters and a global context module."""
    return UNet(in_channels, classes, widths, 5, global_context=True, se_reduction=se_reduction, ca_steps=ca_steps)


class DualUNet(nn.Module):
    """Macro and Micro U-Nets' probabilities averaged; a big-rock specialist's probability blended into the big-rock
    class (the other classes rescaled so each pixel still sums to 1). Returns log-probabilities, so softmax of the
    output is the ensemble's probability and any logits loss trains all members together."""

    def __init__(self, in_channels: int, classes: int, macro: dict, micro: dict, specialist: dict | None,
                 specialist_class: int, specialist_weight: float):  # fmt: skip
        super().__init__()
        self.macro, self.micro = macro_unet(in_channels, classes, **macro), micro_unet(in_channels, classes, **micro)
        self.specialist = UNet(in_channels, 1, **specialist) if specialist else None
        self.specialist_class, self.specialist_weight = specialist_class, specialist_weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = 0.5 * (self.macro(x).float().softmax(dim=1) + self.micro(x).float().softmax(dim=1))
        if self.specialist is not None:
            k, w = self.specialist_class, self.specialist_weight
            old = probs[:, k : k + 1]
            new = (1 - w) * old + w * torch.sigmoid(self.specialist(x).float())
            others = probs * ((1 - new) / (1 - old).clamp(min=1e-6))
            probs = torch.cat([others[:, :k], new, others[:, k + 1 :]], dim=1)
        return probs.clamp(min=1e-7).log()


@register_model
def dual_unet(in_channels: int, num_outputs: int, macro=None, micro=None, specialist=None,
              specialist_class: int = 4, specialist_weight: float = 0.5) -> nn.Module:  # fmt: skip
    """Dual U-Net ensemble (Macro + Micro) with an optional big-rock specialist blended in."""
    return DualUNet(in_channels, num_outputs, macro or {}, micro or {}, specialist, specialist_class,
                    specialist_weight)  # fmt: skip


@register_model
def unet(in_channels: int, num_outputs: int, **kwargs) -> nn.Module:
    """The configurable U-Net alone (SE, dilated inception, attention gates, global context, cellular automata)."""
    return UNet(in_channels, num_outputs, **kwargs)


@register_model
def smp_segmenter(in_channels: int, num_outputs: int, arch: str = "Unet", encoder: str = "resnet18",
                  decoder_se_reduction: int | None = None, pretrained: str | None = None,
                  **kwargs) -> nn.Module:  # fmt: skip
    """Any smp architecture and encoder by name; pretrained: null (random), or a weights file or
    package:<installed weights package> for a timm encoder (tu-<timm name>, or an smp ResNet: timm's key names)."""
    encoders.check_smp(encoder)
    try:
        model = smp.create_model(arch, encoder_name=encoder, encoder_weights=None,
                                 in_channels=in_channels, classes=num_outputs, **kwargs)  # fmt: skip
    except KeyError as exc:
        raise UnknownNameError(f"smp: {exc.args[0]}") from exc
    if pretrained:
        architecture = encoder.removeprefix("tu-")
        if not timm.is_model(architecture):
            raise KitError(f"model.pretrained needs a timm encoder (model.encoder=tu-<timm name>); got {encoder!r}")
        prefix = "encoder.model" if encoder.startswith("tu-") else "encoder"
        pretrained_weights.load_into(model, pretrained, architecture, prefix)
    if decoder_se_reduction:
        add_decoder_se(model.decoder, decoder_se_reduction)
    return model
