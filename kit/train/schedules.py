"""Learning-rate schedules by name (`trainer.schedule`): timm's scheduler factory (`create_scheduler_v2`) after a
linear warm-up, stepped after every optimiser update; a plateau schedule also hears after each validation whether
the metric improved."""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.scheduler import create_scheduler_v2

from kit.errors import UnknownNameError
from kit.schema import trainer as settings

SCHEDULES: dict[str, Callable[[dict, int], dict]] = {}
WARMUP_LR = 1e-5  # timm's default start of the warm-up


def register_schedule(fn):
    """A schedule is named by its function; the function gives timm's factory its arguments for a trainer."""
    SCHEDULES[fn.__name__] = fn
    return fn


@register_schedule
def cosine(trainer: dict, steps_per_epoch: int) -> dict:
    """Half a cosine from the peak to zero over the steps after the warm-up."""
    return {"sched": "cosine"}


@register_schedule
def exponential(trainer: dict, steps_per_epoch: int) -> dict:
    """Multiplied by trainer.lr_decay every epoch, smoothly: timm's step schedule with a step of one update."""
    decay = settings(trainer).lr_decay
    return {"sched": "step", "decay_epochs": 1 / steps_per_epoch, "decay_rate": decay ** (1 / steps_per_epoch)}


@register_schedule
def plateau(trainer: dict, steps_per_epoch: int) -> dict:
    """Constant after the warm-up, multiplied by trainer.lr_decay after trainer.plateau_patience epochs without
    improvement (Schedule.epoch_end: timm's own plateau schedule is deprecated and loses its state on --resume)."""
    return {"sched": "constant"}


class Schedule:
    """A timm scheduler behind the interface of PyTorch's: `step()` after each update, `last_epoch` counting the
    updates (the weight average's warm-up reads it), `state_dict()` for --resume; `epoch_end(improved)` after each
    validation, which a plateau schedule turns into a factor on timm's rates."""

    def __init__(self, scheduler, decay: float | None = None, patience: int = 1):
        self.scheduler, self.decay, self.patience = scheduler, decay, patience
        self.last_epoch, self.scale, self.stale = 0, 1.0, 0

    def step(self) -> None:
        self.last_epoch += 1
        self.scheduler.step_update(self.last_epoch)
        if self.scale != 1.0:
            for group in self.scheduler.optimizer.param_groups:
                group["lr"] *= self.scale

    def epoch_end(self, improved: bool) -> None:
        """Told after each validation whether the fold's metric improved; a change applies from the next update."""
        if self.decay is None:
            return
        self.stale = 0 if improved else self.stale + 1
        if self.stale >= self.patience:
            self.scale, self.stale = self.scale * self.decay, 0
            for group in self.scheduler.optimizer.param_groups:
                group["lr"] *= self.decay

    def state_dict(self) -> dict:
        """What a resume needs: timm's schedules are functions of the update count, the plateau's factor is ours."""
        return {"updates": self.last_epoch, "scale": self.scale, "stale": self.stale}

    def load_state_dict(self, saved: dict) -> None:
        if "updates" not in saved:  # LambdaLR's state, in a model_last.pt written before the kit used timm's schedules
            factor = (saved.get("lr_lambdas") or [None])[0] or {}
            saved = {"updates": saved["last_epoch"], "scale": factor.get("scale", 1.0), "stale": factor.get("stale", 0)}
        self.last_epoch, self.scale, self.stale = saved["updates"] - 1, saved["scale"], saved["stale"]
        self.step()


def make_schedule(optimizer: torch.optim.Optimizer, trainer: dict, steps_per_epoch: int) -> Schedule:
    """trainer.schedule over trainer.epochs, after trainer.warmup_epochs of linear warm-up from WARMUP_LR."""
    name = settings(trainer).schedule
    if name not in SCHEDULES:
        raise UnknownNameError(f"trainer.schedule={name!r}; valid: {', '.join(sorted(SCHEDULES))}")
    warmup, epochs = settings(trainer).warmup_epochs, trainer["epochs"]
    timm_arguments = SCHEDULES[name](trainer, steps_per_epoch)
    scheduler, _ = create_scheduler_v2(
        optimizer, num_epochs=max(epochs - warmup, 1), warmup_epochs=warmup, warmup_prefix=True, warmup_lr=WARMUP_LR,
        min_lr=0.0, step_on_epochs=False, updates_per_epoch=steps_per_epoch, **timm_arguments,
    )  # fmt: skip
    if name == "plateau":
        return Schedule(scheduler, settings(trainer).lr_decay, settings(trainer).plateau_patience)
    return Schedule(scheduler)
