"""What happens around a fold's loop, one concern per callback (Lightning's hook set, cut to what the kit needs):
claiming the folder, early stopping, the best checkpoint and its OOF, history and curves, TensorBoard, the resumable
checkpoint, the epoch's line, and a search's pruning. They run on rank 0 only, in list order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kit.competitions.parts import FoldReport
from kit.io import atomic_path
from kit.report.progress import plot_progress
from kit.runtime import checkpoint
from kit.schema import trainer as settings
from kit.train.fit import Fit
from kit.train.resume import rng_states
from kit.train.tracking import FoldTracker


@dataclass
class Validation:
    epoch: int
    row: dict  # history.csv's row: losses, scores, learning rate, time
    ids: list
    probs: np.ndarray
    improved: bool  # a new best of the raw metric


class Callback:
    def on_validation(self, fit: Fit, result: Validation) -> None: ...

    def on_fit_end(self, fit: Fit) -> None: ...

    def on_interrupt(self, fit: Fit) -> None:
        """The loop is leaving by an exception (Ctrl-C, a pruned trial, an error)."""


class ClaimFold(Callback):
    def on_validation(self, fit, result):
        if not fit.claimed:
            fit.claim()


def smoothed_improvement(state: dict, value: float, smoothing: float | None, sign: float) -> bool:
    """Whether an exponential moving average of the validation metric (weight `smoothing` on the past) reached a new
    best: with it, early stopping waits out a noisy spike on a small validation fold instead of stopping a few epochs
    after it. None: the raw metric alone decides."""
    if not smoothing:
        return False
    previous = state.get("smoothed")
    state["smoothed"] = value if previous is None else smoothing * previous + (1 - smoothing) * value
    best = state.get("best_smoothed")
    if best is None or sign * state["smoothed"] < sign * best:
        state["best_smoothed"] = state["smoothed"]
        return True
    return False


class EarlyStopping(Callback):
    """Counts the epochs since the metric (or its smoothed trend) last improved; the loop stops at
    trainer.early_stopping."""

    def on_validation(self, fit, result):
        value = result.row[fit.metric]
        trend = smoothed_improvement(fit.state, value, settings(fit.trainer).early_stopping_smoothing, fit.sign)
        fit.state["stale"] = 0 if result.improved or trend else fit.state["stale"] + 1


class BestCheckpoint(Callback):
    """model_best.pt, the fold's OOF predictions and its report, from the best validation so far."""

    def on_validation(self, fit, result):
        if not result.improved:
            return
        checkpoint.save(fit.out / "model_best.pt",
                        {"model": fit.evaluated.state_dict(), "config": fit.cfg, "epoch": result.epoch})  # fmt: skip
        fit.training.save_predictions(fit.out / fit.training.oof_file, result.ids, result.probs)
        if isinstance(fit.training, FoldReport):
            fit.training.report_fold(fit.out, result.ids, result.probs)


class HistoryWriter(Callback):
    """history.csv and progress.png (the curves against the prior's line)."""

    def on_validation(self, fit, result):
        history = pd.DataFrame(fit.state["history"])
        with atomic_path(fit.out / "history.csv") as tmp:
            history.to_csv(tmp, index=False)
        plot_progress(history, fit.out / "progress.png", fit.metric, fit.baseline[fit.metric])


class TensorBoard(Callback):
    def __init__(self, fit: Fit):
        self.tracker = FoldTracker(fit.out, resumed_after=fit.state["epoch"] if fit.claimed else None)

    def on_validation(self, fit, result):
        self.tracker.epoch(result.row)

    def on_fit_end(self, fit):
        self.tracker.pictures(max(fit.state["epoch"], 0))
        self.tracker.close()

    def on_interrupt(self, fit):
        self.tracker.close()


class LastCheckpoint(Callback):
    """model_last.pt: everything --resume needs to continue as if never stopped."""

    def on_validation(self, fit, result):
        scaler = fit.precision.scaler
        checkpoint.save(
            fit.out / "model_last.pt",
            {
                "model": fit.model.state_dict(),
                **({"ema": fit.ema.module.state_dict()} if fit.ema is not None else {}),
                "optimizer": fit.optimizer.state_dict(),
                "scheduler": fit.scheduler.state_dict(),
                **({"scaler": scaler.state_dict()} if scaler.is_enabled() else {}),
                "state": fit.state,
                "rng": rng_states(),
                "config": fit.cfg,
            },
        )


class EpochLine(Callback):
    def on_validation(self, fit, result):
        row, state = result.row, fit.state
        print(
            f"fold {fit.fold} epoch {result.epoch}: train loss {row['train_loss']:.4f}  "
            f"val loss {row['val_loss']:.4f}  {fit.metric} {row[fit.metric]:.4f}  "
            f"(best {state['best']:.4f} @ {state['best_epoch']})",
            flush=True,
        )


class Pruning(Callback):
    """Tells a search each validation's figure; the search prunes the trial by raising."""

    def __init__(self, hook: Callable[[int, float], None]):
        self.hook = hook

    def on_validation(self, fit, result):
        self.hook(result.epoch, result.row[fit.metric])


def default_callbacks(fit: Fit, epoch_hook: Callable[[int, float], None] | None = None) -> list[Callback]:
    callbacks = [ClaimFold(), EarlyStopping(), BestCheckpoint(), HistoryWriter(), TensorBoard(fit), LastCheckpoint(),
                 EpochLine()]  # fmt: skip
    return callbacks + ([Pruning(epoch_hook)] if epoch_hook is not None else [])
