"""One optimiser step under mixed precision: scaled backward, unscale, clip, step, scaler update, schedule, EMA."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.utils.model_ema import ModelEmaV3

from kit.runtime.precision import Precision
from kit.train.schedules import Schedule


@dataclass
class Stepper:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Schedule | None
    precision: Precision
    grad_clip: float
    accumulate: int = 1
    ema: ModelEmaV3 | None = None

    def backward(self, loss: torch.Tensor) -> None:
        self.precision.scaler.scale(loss / self.accumulate).backward()

    def step(self) -> None:
        scaler = self.precision.scaler
        scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        scaler.step(self.optimizer)
        scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.scheduler.last_epoch if self.scheduler is not None else None)
