"""The fold runner: trains one fold of any competition and writes runs/<exp>/fold<k>/. It knows no competition;
the competition's training object supplies data, loss, metric and formats."""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.data import Mixup
from timm.utils.model_ema import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler
from tqdm import tqdm

from kernels import _dispatch as dispatch
from kit import paths
from kit.competitions import competition_of
from kit.competitions.parts import FoldReport, Staged
from kit.config import check_config, config_differences, dump_config, lookup
from kit.errors import KitError
from kit.io import atomic_path, write_text_atomic
from kit.report.progress import plot_progress
from kit.runtime import checkpoint
from kit.runtime.devices import to_device
from kit.runtime.inference import build_model, memory_format, predict
from kit.runtime.precision import Precision
from kit.train import distributed
from kit.train.finetune import param_groups, set_trainable
from kit.train.identity import identity, write_identity
from kit.train.loaders import make_loader
from kit.train.schedules import epoch_end, make_schedule
from kit.train.step import Stepper
from kit.train.tracking import FoldTracker


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fold_dir(cfg: dict, fold: int) -> Path:
    return paths.runs_root() / cfg["name"] / f"fold{fold}" / cfg.get("stage", "")


def weight_average(model: torch.nn.Module, decay: float | None) -> ModelEmaV3 | None:
    """An exponential moving average of the weights (and BatchNorm statistics) that validation, the best checkpoint
    and predictions use; its decay warms up as 1 - (1 + step)^(-2/3) to at most `decay`, so a few hundred steps
    (a small fold) already average over the later epochs instead of still remembering the random start."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise KitError(f"trainer.ema={decay}: the decay of the weight average must lie in (0, 1), or null for none")
    return ModelEmaV3(model, decay=decay, use_warmup=True)


def restore(
    saved: dict, model, optimizer, scheduler, ema: ModelEmaV3 | None, scaler=None, source: Path | None = None
) -> dict:
    """Load model_last.pt's weights, optimiser, schedule, weight average (started from the weights when the
    interrupted run kept none) and fp16 gradient scaler; returns the run's state (epoch, best, history)."""
    checkpoint.load_weights(model, saved["model"], source or "model_last.pt")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    if ema is not None:
        ema.module.load_state_dict(saved.get("ema", saved["model"]))
    if scaler is not None and scaler.is_enabled() and saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    if "rng" in saved:
        set_rng_states(saved["rng"])
    return saved["state"]


def rng_states() -> dict:
    """The random streams a run draws from (dropout, augmentation, data order), saved so a resumed run repeats an
    uninterrupted one."""
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def refuse_changed_config(saved: dict, cfg: dict, out: Path, force: bool) -> list[str]:
    """The keys a --resume changes; refused unless --force (then config.yaml is rewritten to say so)."""
    changed = [k for k in config_differences(saved, cfg) if k != "fold"]
    if changed and not force:
        details = ", ".join(f"{k} ({lookup(saved, k)!r} -> {lookup(cfg, k)!r})" for k in changed[:6])
        raise KitError(f"{out}: --resume with a changed config: {details}; add --force to continue anyway")
    return changed


def remove_orphaned_writes(folder: Path) -> None:
    """Temporary files a killed atomic write left behind (.<name>.<random>.tmp)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def prepare(cfg: dict, ctx: distributed.Context):
    """Data folder, folds and the competition's training object; rank 0 generates and caches first."""
    comp = competition_of(cfg)
    if ctx.is_main:
        data_dir = comp.data_dir(cfg["data"]["dir"])
        comp.folds(data_dir, cfg["data"]["folds"], cfg["data"]["fold_seed"])
    ctx.barrier()
    data_dir = comp.data_dir(cfg["data"]["dir"])
    folds = comp.folds(data_dir, cfg["data"]["folds"], cfg["data"]["fold_seed"])
    return comp, comp.training(cfg, data_dir), folds


def mixup(trainer: dict, classes: int) -> Mixup | None:
    """timm's Mixup/CutMix on single-label batches: soft targets, on which the loss's own label smoothing applies."""
    if not trainer.get("mixup"):
        return None
    if trainer["batch_size"] % 2:
        raise KitError(f"trainer.mixup needs an even trainer.batch_size (got {trainer['batch_size']})")
    return Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=float(trainer["mixup"]), num_classes=classes,
                 label_smoothing=0.0)  # fmt: skip


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


def train_fold(cfg: dict, fold: int, resume: bool = False, force: bool = False, epoch_hook=None) -> dict:
    """Train one fold; `epoch_hook(epoch, metric)` is told each validation's figure (a search prunes by raising)."""
    check_config(cfg, fold)
    ctx = distributed.setup()
    try:
        return _train_fold(cfg, fold, resume, ctx, force, epoch_hook)
    finally:
        distributed.teardown(ctx)


def _train_fold(cfg: dict, fold: int, resume: bool, ctx: distributed.Context, force: bool = False,
                epoch_hook=None) -> dict:  # fmt: skip
    trainer = cfg["trainer"]
    comp, training, folds = prepare(cfg, ctx)
    record = identity(cfg, comp.data_dir(cfg["data"]["dir"])) if ctx.is_main else None
    if isinstance(training, Staged):
        for stage_cfg in training.start_fold(fold):
            _train_fold(stage_cfg, fold, resume, ctx, force)
    out = fold_dir(cfg, fold)
    train_ids = folds.index[folds != fold].tolist()
    val_ids = folds.index[folds == fold].tolist()
    seed_everything(trainer["seed"])
    if ctx.device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)

    precision = Precision.for_device(trainer.get("precision", "auto"), ctx.device)
    accumulate = trainer.get("accumulate", 1)
    if ctx.is_main:
        print(f"{precision.describe()}; {dispatch.describe(ctx.device)}", flush=True)
    model = build_model(cfg, training).to(ctx.device).to(memory_format=memory_format(cfg))
    ema = weight_average(model, trainer.get("ema"))
    evaluated = ema.module if ema is not None else model
    wrapped = DistributedDataParallel(model) if ctx.world_size > 1 else model
    forward = torch.compile(wrapped) if trainer.get("compile") else wrapped
    loss_fn = training.loss().to(ctx.device)

    train_set = training.dataset(train_ids, "train", augment_seed=trainer["seed"] if trainer["augment"] else None)
    sampler = DistributedSampler(
        train_set, ctx.world_size, ctx.rank, shuffle=True, seed=trainer["seed"], drop_last=True
    )
    per_rank = max(1, trainer["batch_size"] // ctx.world_size)
    train_loader = make_loader(train_set, per_rank, trainer, ctx.device, sampler=sampler, drop_last=True)
    val_loader = make_loader(training.dataset(val_ids, "train"), trainer["batch_size"], trainer, ctx.device)
    batch_norms = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
    if per_rank < 2 and any(isinstance(m, batch_norms) for m in model.modules()):
        raise KitError(
            f"trainer.batch_size={trainer['batch_size']}: BatchNorm needs at least 2 samples per batch and process; "
            "use a larger batch (or model.norm=group where the model has it)"
        )
    if len(train_loader) == 0:
        raise KitError(
            f"trainer.batch_size={trainer['batch_size']}: fold {fold} has only {len(train_set)} training samples "
            f"({ctx.world_size} process(es)), so an epoch would train on nothing; lower the batch size"
        )

    optimizer = torch.optim.AdamW(param_groups(model, trainer), lr=trainer["lr"], weight_decay=trainer["weight_decay"])
    scheduler = make_schedule(optimizer, trainer, math.ceil(len(train_loader) / accumulate))
    state = {"epoch": -1, "best": math.inf, "best_epoch": -1, "stale": 0, "history": []}
    sign = 1.0 if training.metric_mode == "min" else -1.0
    prior = training.prior(train_ids)
    baseline = training.evaluate(val_ids, np.broadcast_to(prior, (len(val_ids), *prior.shape)))

    last = out / "model_last.pt"
    replaced = False  # a fresh run replaces the fold's earlier run only with its first checkpoint
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_orphaned_writes(out)
    if resume and last.exists():
        saved = checkpoint.load(last)
        changed = refuse_changed_config(saved.get("config", cfg), cfg, out, force)
        state = restore(saved, model, optimizer, scheduler, ema, precision.scaler, last)
        replaced = True
        if ctx.is_main:
            (out / "summary.json").unlink(missing_ok=True)  # until this continuation finishes, the fold is unfinished
            if changed or not (out / "config.yaml").exists():
                dump_config({**cfg, "fold": fold}, out / "config.yaml")
            write_identity(record, out)
            print(f"resuming {out} after epoch {state['epoch']}")

    mixing = mixup(trainer, training.num_outputs)
    stepper = Stepper(model, optimizer, scheduler, precision, trainer["grad_clip"], accumulate, ema)

    metric = training.metric_name
    tracker = FoldTracker(out, enabled=ctx.is_main)
    for epoch in range(state["epoch"] + 1, trainer["epochs"]):
        if state["stale"] >= trainer["early_stopping"]:
            break
        sampler.set_epoch(epoch)
        if train_set.augment is not None:
            train_set.augment.set_random_state(seed=trainer["seed"] + 1000 * epoch + ctx.rank)
        wrapped.train()
        trains = set_trainable(model, trainer, epoch)
        if trains and ctx.is_main:
            print(f"fold {fold} {trains}", flush=True)
        started, running, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(train_loader, desc=f"fold {fold} epoch {epoch}", leave=False, disable=not ctx.is_main)
        optimizer.zero_grad(set_to_none=True)
        for index, batch in enumerate(bar):
            image = to_device(batch["image"], ctx.device, memory_format(cfg))
            stepping = (index + 1) % accumulate == 0 or index + 1 == len(train_loader)
            syncing = nullcontext() if stepping or ctx.world_size == 1 else wrapped.no_sync()
            target = to_device(batch["target"], ctx.device)
            if mixing is not None:
                image, target = mixing(image, target)
            with syncing:
                with precision.autocast():
                    loss = loss_fn(forward(image), target)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise KitError(
                        f"fold {fold} epoch {epoch} batch {index}: the training loss is {value}; look for NaN or "
                        f"infinite values in the data, or lower trainer.lr"
                    )
                stepper.backward(loss)
            if stepping:
                stepper.step()
            running += value * len(image)
            seen += len(image)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        train_seconds = time.perf_counter() - started

        if ctx.is_main:
            ids, logits, val_loss = predict(evaluated, val_loader, cfg, ctx.device, loss_fn)
            probs = training.probabilities(logits)
            scores = training.evaluate(ids, probs)
            row = {
                "epoch": epoch,
                "train_loss": running / max(seen, 1),
                "val_loss": val_loss,
                **scores,
                "lr": optimizer.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
                "samples_per_s": seen * ctx.world_size / train_seconds,
            }
            state["history"].append(row)
            improved = sign * scores[metric] < sign * state["best"] if state["best_epoch"] >= 0 else True
            trend_improved = smoothed_improvement(state, scores[metric], trainer.get("early_stopping_smoothing"), sign)
            if not replaced:
                (out / "summary.json").unlink(missing_ok=True)  # from here on the fold holds this run, unfinished
                dump_config({**cfg, "fold": fold}, out / "config.yaml")
                write_identity(record, out)
                replaced = True
            epoch_end(scheduler, improved)
            if improved:
                state.update(best=scores[metric], best_epoch=epoch)
                checkpoint.save(out / "model_best.pt", {"model": evaluated.state_dict(), "config": cfg, "epoch": epoch})
                training.save_predictions(out / training.oof_file, ids, probs)
                if isinstance(training, FoldReport):
                    training.report_fold(out, ids, probs)
            state["stale"] = 0 if improved or trend_improved else state["stale"] + 1
            state["epoch"] = epoch
            history = pd.DataFrame(state["history"])
            with atomic_path(out / "history.csv") as tmp:
                history.to_csv(tmp, index=False)
            plot_progress(history, out / "progress.png", metric, baseline[metric])
            tracker.epoch(row)
            checkpoint.save(
                last,
                {
                    "model": model.state_dict(),
                    **({"ema": ema.module.state_dict()} if ema is not None else {}),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    **({"scaler": precision.scaler.state_dict()} if precision.scaler.is_enabled() else {}),
                    "state": state,
                    "rng": rng_states(),
                    "config": cfg,
                },
            )
            print(
                f"fold {fold} epoch {epoch}: train loss {row['train_loss']:.4f}  val loss {val_loss:.4f}  "
                f"{metric} {scores[metric]:.4f}  (best {state['best']:.4f} @ {state['best_epoch']})",
                flush=True,
            )
            if epoch_hook is not None:
                try:
                    epoch_hook(epoch, scores[metric])
                except BaseException:
                    tracker.close()
                    raise
        state = _broadcast(state, ctx)
        if not ctx.is_main:
            epoch_end(scheduler, state["stale"] == 0)

    tracker.pictures(max(state["epoch"], 0))
    tracker.close()
    summary = {
        "fold": fold,
        "metric": metric,
        "best_epoch": state["best_epoch"],
        metric: state["best"],
        f"prior_baseline_{metric}": baseline[metric],
        "ratio_to_baseline": state["best"] / baseline[metric],
        "epochs_run": state["epoch"] + 1,
        "samples_per_s": float(np.mean([h["samples_per_s"] for h in state["history"]])) if state["history"] else None,
        "n_train": len(train_ids),
        "n_valid": len(val_ids),
        "world_size": ctx.world_size,
        "rank": ctx.rank,
        "device": str(ctx.device),
    }
    if ctx.is_main and isinstance(training, Staged) and state["best_epoch"] >= 0:
        summary.update(training.after_fold(out))
        summary["ratio_to_baseline"] = summary[metric] / baseline[metric]
    if ctx.is_main:
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def _broadcast(state: dict, ctx: distributed.Context) -> dict:
    """Rank 0 validates; every rank needs its verdict (early stopping) to stay in step."""
    if ctx.world_size == 1:
        return state
    box = [state]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]
