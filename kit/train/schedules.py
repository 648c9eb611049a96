"""Learning-rate schedules by name (`trainer.schedule`), each a per-step factor of the groups' learning rates after a
linear warm-up. A factor is a callable object, so LambdaLR saves its state in model_last.pt and --resume restores it."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from kit.errors import UnknownNameError
from kit.schema import trainer as settings

SCHEDULES: dict[str, Callable] = {}


def register_schedule(fn):
    SCHEDULES[fn.__name__] = fn
    return fn


class Factor:
    def __init__(self, warmup_steps: int, total_steps: int, steps_per_epoch: int, trainer: dict):
        self.warmup_steps, self.total_steps, self.steps_per_epoch = warmup_steps, total_steps, steps_per_epoch
        self.decay = settings(trainer).lr_decay
        self.patience = settings(trainer).plateau_patience

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return self.after_warmup(step - self.warmup_steps)

    def after_warmup(self, step: int) -> float:
        raise NotImplementedError

    def epoch_end(self, improved: bool) -> None:
        """Told after each validation whether the fold's metric improved."""


@register_schedule
class cosine(Factor):  # noqa: N801 - named as users write it in trainer.schedule
    """Half a cosine from the peak to zero over the remaining steps."""

    def after_warmup(self, step: int) -> float:
        progress = step / max(1, self.total_steps - self.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@register_schedule
class exponential(Factor):  # noqa: N801
    """Multiplied by trainer.lr_decay every epoch (smoothly, per step)."""

    def after_warmup(self, step: int) -> float:
        return self.decay ** (step / self.steps_per_epoch)


@register_schedule
class plateau(Factor):  # noqa: N801
    """Constant, multiplied by trainer.lr_decay after trainer.plateau_patience epochs without improvement."""

    scale = 1.0
    stale = 0

    def after_warmup(self, step: int) -> float:
        return self.scale

    def epoch_end(self, improved: bool) -> None:
        self.stale = 0 if improved else self.stale + 1
        if self.stale >= self.patience:
            self.scale, self.stale = self.scale * self.decay, 0


def make_schedule(optimizer, trainer: dict, steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    name = settings(trainer).schedule
    if name not in SCHEDULES:
        raise UnknownNameError(f"trainer.schedule={name!r}; valid: {', '.join(sorted(SCHEDULES))}")
    warmup, total = trainer["warmup_epochs"] * steps_per_epoch, trainer["epochs"] * steps_per_epoch
    factors = [SCHEDULES[name](warmup, total, steps_per_epoch, trainer) for _ in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def epoch_end(scheduler: torch.optim.lr_scheduler.LambdaLR, improved: bool) -> None:
    """Tell every factor; a changed factor applies from the next epoch's first step."""
    for group, base_lr, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas,
                                      strict=True):  # fmt: skip
        factor.epoch_end(improved)
        group["lr"] = base_lr * factor(scheduler.last_epoch)
