"""Fine-tuning as the seeds do it: the head alone for trainer.freeze_epochs epochs, then the last
trainer.unfreeze_stages stages of the backbone (null: all), with the backbone at trainer.backbone_lr × the learning
rate, each stage below the last a further trainer.layer_decay × (layer-wise decay), and with trainer.freeze_bn the
backbone's BatchNorm statistics kept as pretrained. Stages come from timm's own grouping of a backbone
(`group_matcher`), input to output."""

from __future__ import annotations

from timm.models import group_parameters
from torch import nn

from kit.errors import KitError
from kit.schema import trainer as settings


def stages(model: nn.Module) -> tuple[list[list[nn.Parameter]], list[nn.Parameter]]:
    """(backbone stages from input to output, head parameters)."""
    backbone, head = (model.backbone, list(model.head.parameters())) if hasattr(model, "backbone") else (model, None)
    if not hasattr(backbone, "group_matcher"):
        raise KitError(
            "trainer.freeze_epochs, unfreeze_stages and backbone_lr need a timm backbone (model.name=timm_classifier)"
        )
    named = dict(backbone.named_parameters())
    groups = [
        [named[n] for n in names] for names in group_parameters(backbone, backbone.group_matcher(coarse=True)).values()
    ]
    if head is None:
        *groups, head = groups  # timm's last group holds its classifier
    return groups, head


def uses_finetuning(trainer: dict) -> bool:
    chosen = settings(trainer)
    return (
        bool(chosen.freeze_epochs)
        or chosen.unfreeze_stages is not None
        or chosen.backbone_lr != 1.0
        or chosen.layer_decay != 1.0
        or chosen.freeze_bn
    )


def param_groups(model: nn.Module, trainer: dict) -> list[dict]:
    if not uses_finetuning(trainer):
        return [{"params": list(model.parameters())}]
    backbone, head = stages(model)
    base, decay = trainer["lr"] * settings(trainer).backbone_lr, settings(trainer).layer_decay
    groups = [{"params": stage, "lr": base * decay ** (len(backbone) - 1 - k)} for k, stage in enumerate(backbone)]
    return [*groups, {"params": head, "lr": trainer["lr"]}]


def set_trainable(model: nn.Module, trainer: dict, epoch: int) -> str | None:
    """Freeze or unfreeze for this epoch; a line saying what trains when that changes here (else None)."""
    if not uses_finetuning(trainer):
        return None
    backbone, _ = stages(model)
    frozen_epochs, unfrozen = settings(trainer).freeze_epochs, settings(trainer).unfreeze_stages
    after = len(backbone) if unfrozen is None else min(int(unfrozen), len(backbone))
    trainable = 0 if epoch < frozen_epochs else after
    for k, stage in enumerate(backbone):
        for parameter in stage:
            parameter.requires_grad_(k >= len(backbone) - trainable)
    if settings(trainer).freeze_bn:
        body = model.backbone if hasattr(model, "backbone") else model
        for module in body.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    if epoch in (0, frozen_epochs):
        return f"epoch {epoch}: the head and the last {trainable} of {len(backbone)} backbone stages train"
    return None


def frozen_fraction(model: nn.Module) -> float:
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if not p.requires_grad) / max(total, 1)


__all__ = ["param_groups", "set_trainable", "stages", "frozen_fraction"]
