"""Study classifiers on a 2.5D stack (slices of every view as channels) -> logits (batch, outputs)."""

from __future__ import annotations

import math

import segmentation_models_pytorch as smp
import timm
import torch
from torch import nn

from kit.errors import KitError, UnknownNameError
from kit.models import encoders
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
    """smp's U-Net (encoder, bottleneck, decoder with skips), then global average pooling and a linear head.

    With `heatmaps` > 0 it also predicts that many landmark heatmaps (logits over the decoder's pixels) and returns
    {'logits', 'heatmap'}; with level attention as well, the heatmaps are the attention maps, so their supervision
    tells each level where to look.
    """

    def __init__(
        self,
        in_channels: int,
        num_outputs: int,
        encoder: str = "resnet18",
        decoder_channels=(128, 64, 32, 16, 8),
        dropout: float = 0.2,
        pool_grid: tuple[int, int] | None = None,
        decoder_se_reduction: int | None = None,
        level_attention: dict | None = None,
        heatmaps: int = 0,
    ):
        super().__init__()
        self.unet = smp.Unet(
            encoder_name=encoders.check_smp(encoder),
            encoder_weights=None,
            in_channels=in_channels,
            classes=1,
            decoder_channels=tuple(decoder_channels),
        )
        self.unet.segmentation_head = nn.Identity()
        if decoder_se_reduction:
            add_decoder_se(self.unet.decoder, decoder_se_reduction)
        self.level_head = self.heatmap_head = None
        self.returns_heatmap = bool(heatmaps)
        if heatmaps and not level_attention:
            self.heatmap_head = nn.Conv2d(decoder_channels[-1], heatmaps, 1)
        if level_attention:
            if heatmaps and heatmaps != level_attention.get("levels", 5):
                levels = level_attention.get("levels", 5)
                raise KitError(
                    f"model.heatmaps={heatmaps} must equal model.level_attention.levels ({levels}) when both are set"
                )
            self.level_head = LevelAttentionHead(
                decoder_channels[-1], self.unet.encoder.out_channels[-1], num_outputs, dropout=dropout,
                **level_attention,
            )  # fmt: skip
            return
        # A grid of average pools (rows × columns) keeps where a finding lies, e.g. at which vertebral level;
        # None pools globally.
        self.pool = nn.AdaptiveAvgPool2d(tuple(pool_grid)) if pool_grid else nn.AdaptiveAvgPool2d(1)
        cells = pool_grid[0] * pool_grid[1] if pool_grid else 1
        features = decoder_channels[-1] * cells + self.unet.encoder.out_channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        skips = self.unet.encoder(x)
        decoded = self.unet.decoder(skips)
        if self.level_head is not None:
            logits, attention = self.level_head(decoded, skips[-1])
            return {"logits": logits, "heatmap": attention} if self.returns_heatmap else logits
        # Pooled bottleneck features sit beside the decoder's: the decoder sees fine detail, the bottleneck context.
        pooled = torch.cat([self.pool(decoded).flatten(1), skips[-1].mean(dim=(2, 3))], dim=1)
        logits = self.head(pooled)
        if self.returns_heatmap:
            return {"logits": logits, "heatmap": self.heatmap_head(decoded)}
        return logits


class LevelAttentionHead(nn.Module):
    """One classifier shared by every level: each level gets its own attention map over the decoder output, the
    attended features (with the pooled bottleneck and the level's one-hot) go through the same MLP, which then learns
    from every level's examples at once. Outputs are ordered (group, level, class), e.g. RSNA's condition × level.
    """

    def __init__(self, channels: int, context_channels: int, num_outputs: int, levels: int = 5, classes: int = 3,
                 hidden: int = 64, dropout: float = 0.2):  # fmt: skip
        super().__init__()
        self.levels, self.classes = levels, classes
        self.groups = num_outputs // (levels * classes)
        if self.groups * levels * classes != num_outputs:
            raise ValueError(f"{num_outputs} outputs are not groups × {levels} levels × {classes} classes")
        self.attend = nn.Conv2d(channels, levels, 1)
        self.context = nn.Linear(context_channels, hidden)
        self.mlp = nn.Sequential(
            nn.Linear(channels + hidden + levels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, self.groups * classes),
        )  # fmt: skip

    def forward(self, decoded: torch.Tensor, bottleneck: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (n, groups · levels · classes) and the attention logits (n, levels, H, W)."""
        n = decoded.shape[0]
        attention = self.attend(decoded)
        weights = attention.flatten(2).softmax(dim=-1)  # (n, levels, HW)
        attended = torch.einsum("nlp,ncp->nlc", weights, decoded.flatten(2))
        context = torch.relu(self.context(bottleneck.mean(dim=(2, 3))))[:, None].expand(-1, self.levels, -1)
        level = torch.eye(self.levels, device=decoded.device, dtype=decoded.dtype)[None].expand(n, -1, -1)
        logits = self.mlp(torch.cat([attended, context, level], dim=-1))  # (n, levels, groups · classes)
        return logits.view(n, self.levels, self.groups, self.classes).transpose(1, 2).reshape(n, -1), attention


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
        encoders.check_timm(encoder), pretrained=False, in_chans=in_channels, num_classes=num_outputs, drop_rate=dropout
    )
    return with_norm(model, norm)
