"""The fold runner: trains one fold of any competition and writes runs/<exp>/fold<k>/. It knows no competition;
the competition's training object supplies data, loss, metric and formats, and the callbacks write the outputs."""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext

import numpy as np
import torch
from tqdm import tqdm

from kernels import dispatch
from kit.competitions.parts import Oracle, Staged, gap_closed
from kit.config import check_config
from kit.errors import KitError
from kit.io import write_text_atomic
from kit.models import pretrained
from kit.runtime.devices import to_device
from kit.runtime.inference import memory_format, predict
from kit.train import distributed
from kit.train.callbacks import Callback, Validation, default_callbacks
from kit.train.finetune import set_trainable
from kit.train.fit import Fit, build_fit, start
from kit.train.identity import identity
from kit.train.prepare import fold_dir, prepare, seed_everything
from kit.train.resume import finished_summary


def train_fold(cfg: dict, fold: int, resume: bool = False, force: bool = False, epoch_hook=None) -> dict:
    """Train one fold; `epoch_hook(epoch, metric)` is told each validation's figure (a search prunes by raising)."""
    check_config(cfg, fold)
    cfg = pretrained.resolve(cfg)
    ctx = distributed.setup()
    try:
        return _train_fold(cfg, fold, resume, ctx, force, epoch_hook)
    finally:
        distributed.teardown(ctx)


def _train_fold(cfg: dict, fold: int, resume: bool, ctx: distributed.Context, force: bool = False,
                epoch_hook=None) -> dict:  # fmt: skip
    began = time.perf_counter()
    kept = finished_summary(fold_dir(cfg, fold), cfg, force) if resume else None
    if kept is not None:
        if ctx.is_main:
            print(f"fold {fold}: finished earlier, kept as it is ({fold_dir(cfg, fold) / 'summary.json'}); "
                  "train-all --restart retrains it")  # fmt: skip
        return {**kept, "rank": ctx.rank}
    comp, training, folds = prepare(cfg, ctx)
    record = identity(cfg, comp.data_dir(cfg["data"]["dir"])) if ctx.is_main else None
    if isinstance(training, Staged):
        for stage_cfg in training.start_fold(fold):
            _train_fold(stage_cfg, fold, resume, ctx, force)
    seed_everything(cfg["trainer"]["seed"])
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    fit = build_fit(cfg, fold, ctx, training, folds, record)
    if ctx.is_main:
        print(f"{fit.precision.describe()}; {dispatch.describe(ctx.device)}", flush=True)
    start(fit, resume, force)
    fit.began = began - fit.state.get("elapsed", 0.0)  # a resumed fold's seconds count both processes
    callbacks = default_callbacks(fit, epoch_hook) if ctx.is_main else []
    try:
        run_epochs(fit, callbacks)
    except BaseException:
        for callback in callbacks:
            callback.on_interrupt(fit)
        raise
    for callback in callbacks:
        callback.on_fit_end(fit)
    return summarize(fit, time.perf_counter() - fit.began)


def run_epochs(fit: Fit, callbacks: list[Callback]) -> None:
    for epoch in range(fit.state["epoch"] + 1, fit.trainer["epochs"]):
        if fit.state["stale"] >= fit.trainer["early_stopping"]:
            break
        started = time.perf_counter()
        train_loss, seen = train_epoch(fit, epoch)
        if fit.ctx.is_main:
            result = validate(fit, epoch, train_loss, seen, started)
            for callback in callbacks:
                callback.on_validation(fit, result)
        fit.state = _broadcast(fit.state, fit.ctx)
        if not fit.ctx.is_main:
            fit.scheduler.epoch_end(fit.state["stale"] == 0)


def train_epoch(fit: Fit, epoch: int) -> tuple[float, int]:
    """One pass over the training loader; returns the mean training loss and the samples seen (this process)."""
    trainer, ctx = fit.trainer, fit.ctx
    fit.sampler.set_epoch(epoch)
    augment = fit.train_loader.dataset.augment
    if augment is not None:
        augment.set_random_state(seed=trainer["seed"] + 1000 * epoch + ctx.rank)
    fit.wrapped.train()
    trains = set_trainable(fit.model, trainer, epoch)
    if trains and ctx.is_main:
        print(f"fold {fit.fold} {trains}", flush=True)
    running, seen = 0.0, 0
    bar = tqdm(fit.train_loader, desc=f"fold {fit.fold} epoch {epoch}", leave=False, disable=not ctx.is_main)
    fit.optimizer.zero_grad(set_to_none=True)
    for index, batch in enumerate(bar):
        stepping = (index + 1) % fit.stepper.accumulate == 0 or index + 1 == len(fit.train_loader)
        value, count = train_batch(fit, batch, stepping, f"fold {fit.fold} epoch {epoch} batch {index}")
        running += value * count
        seen += count
        bar.set_postfix(loss=f"{running / seen:.4f}")
    return running / max(seen, 1), seen


def train_batch(fit: Fit, batch: dict, stepping: bool, where: str) -> tuple[float, int]:
    image = to_device(batch["image"], fit.ctx.device, memory_format(fit.cfg))
    target = to_device(batch["target"], fit.ctx.device)
    if fit.mixing is not None:
        image, target = fit.mixing(image, target)
    syncing = nullcontext() if stepping or fit.ctx.world_size == 1 else fit.wrapped.no_sync()
    with syncing:
        with fit.precision.autocast():
            loss = fit.loss_fn(fit.forward(image), target)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise KitError(f"{where}: the training loss is {value}; look for NaN or infinite values in the data, "
                           "or lower trainer.lr")  # fmt: skip
        fit.stepper.backward(loss)
    if stepping:
        fit.stepper.step()
    return value, len(image)


def validate(fit: Fit, epoch: int, train_loss: float, seen: int, started: float) -> Validation:
    """Score the validation rows, append history's row, keep the best and tell the schedule (rank 0)."""
    train_seconds = time.perf_counter() - started
    ids, logits, val_loss = predict(fit.evaluated, fit.val_loader, fit.cfg, fit.ctx.device, fit.loss_fn)
    probs = fit.training.probabilities(logits)
    scores = fit.training.evaluate(ids, probs)
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, **scores,
           "lr": fit.optimizer.param_groups[0]["lr"], "seconds": time.perf_counter() - started,
           "samples_per_s": seen * fit.ctx.world_size / train_seconds}  # fmt: skip
    state = fit.state
    improved = state["best_epoch"] < 0 or fit.sign * scores[fit.metric] < fit.sign * state["best"]
    state["history"].append(row)
    fit.scheduler.epoch_end(improved)
    if improved:
        state.update(best=scores[fit.metric], best_epoch=epoch)
    state["epoch"] = epoch
    state["elapsed"] = time.perf_counter() - fit.began
    return Validation(epoch, row, ids, probs, improved)


def summarize(fit: Fit, seconds: float) -> dict:
    """summary.json (rank 0 writes it): the best figure, the prior's and (on a phantom) the oracle's on the same rows,
    and how the fold ran."""
    metric, state, ctx, baseline = fit.metric, fit.state, fit.ctx, fit.baseline
    history = state["history"]
    summary = {
        "fold": fit.fold,
        "metric": metric,
        "best_epoch": state["best_epoch"],
        metric: state["best"],
        f"prior_baseline_{metric}": baseline[metric],
        "ratio_to_baseline": state["best"] / baseline[metric],
        "epochs_run": state["epoch"] + 1,
        "samples_per_s": float(np.mean([h["samples_per_s"] for h in history])) if history else None,
        "n_train": len(fit.train_ids),
        "n_valid": len(fit.val_ids),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "device": str(ctx.device),
        "seconds": round(seconds, 1),
        "parts": best_parts(history, state["best_epoch"], metric),
    }
    if ctx.is_main and isinstance(fit.training, Staged) and state["best_epoch"] >= 0:
        summary.update(fit.training.after_fold(fit.out))
        summary["ratio_to_baseline"] = summary[metric] / baseline[metric]
    truth = fit.training.oracle(fit.val_ids) if isinstance(fit.training, Oracle) and ctx.is_main else None
    if truth is not None:
        summary[f"oracle_{metric}"] = fit.training.evaluate(fit.val_ids, truth)[metric]
        summary.update(gap_closed(summary[metric], baseline[metric], summary[f"oracle_{metric}"]))
    if ctx.is_main:
        write_text_atomic(fit.out / "summary.json", json.dumps(summary, indent=1))
    return summary


ROW_KEYS = {"epoch", "train_loss", "val_loss", "lr", "seconds", "samples_per_s"}


def best_parts(history: list[dict], best_epoch: int, metric: str) -> dict[str, float]:
    """The metric's other parts at the best epoch (per-class IoU, AUC beside accuracy...)."""
    row = next((h for h in history if h["epoch"] == best_epoch), {})
    return {k: v for k, v in row.items() if k not in ROW_KEYS and k != metric}


def _broadcast(state: dict, ctx: distributed.Context) -> dict:
    """Rank 0 validates; every rank needs its verdict (early stopping) to stay in step."""
    if ctx.world_size == 1:
        return state
    box = [state]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
