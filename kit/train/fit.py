"""Everything one fold's training holds (model, optimiser, loaders, state), built from its config before the first
epoch; the loop in runner.py and the callbacks read and update it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from timm.data import Mixup
from timm.utils.model_ema import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from kit.config import dump_config
from kit.errors import KitError
from kit.runtime import checkpoint
from kit.runtime.inference import build_model, memory_format
from kit.runtime.precision import Precision
from kit.schema import trainer as settings
from kit.train import data_parallel, distributed
from kit.train.finetune import param_groups
from kit.train.identity import write_identity
from kit.train.loaders import make_loader
from kit.train.prepare import fold_dir
from kit.train.resume import refuse_changed_config, remove_orphaned_writes, restore
from kit.train.schedules import Schedule, make_schedule
from kit.train.step import Stepper


@dataclass
class Fit:
    cfg: dict
    fold: int
    ctx: distributed.Context
    training: object  # the competition's training object (kit.competitions.parts)
    train_ids: list
    val_ids: list
    record: dict | None  # run.json's content, written once the fold's first validation claims the folder
    model: torch.nn.Module
    ema: ModelEmaV3 | None
    wrapped: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    forward: torch.nn.Module  # `wrapped`, compiled when trainer.compile
    loss_fn: torch.nn.Module
    precision: Precision
    optimizer: torch.optim.Optimizer
    scheduler: Schedule
    stepper: Stepper
    mixing: Mixup | None
    sampler: DistributedSampler
    train_loader: DataLoader
    val_loader: DataLoader
    baseline: dict  # the prior-frequency prediction's scores on the validation rows
    state: dict = field(default_factory=lambda: {"epoch": -1, "best": math.inf, "best_epoch": -1, "stale": 0,
                                                 "history": []})  # fmt: skip
    claimed: bool = False  # a fresh run replaces the fold's earlier run only with its first validation
    began: float = 0.0  # perf_counter at the fold's start, moved back by the seconds of the run a resume continues

    @property
    def trainer(self) -> dict:
        return self.cfg["trainer"]

    @property
    def out(self) -> Path:
        return fold_dir(self.cfg, self.fold)

    @property
    def metric(self) -> str:
        return self.training.metric_name

    @property
    def sign(self) -> float:
        return 1.0 if self.training.metric_mode == "min" else -1.0

    @property
    def evaluated(self) -> torch.nn.Module:
        """What validation, the best checkpoint and predictions use: the weight average where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def claim(self) -> None:
        """From here on the fold's folder holds this run, unfinished until summary.json is written."""
        (self.out / "summary.json").unlink(missing_ok=True)
        dump_config(self.cfg, self.out / "config.yaml")
        write_identity(self.record, self.out)
        self.claimed = True


def weight_average(model: torch.nn.Module, decay: float | None) -> ModelEmaV3 | None:
    """An exponential moving average of the weights (and BatchNorm statistics) that validation, the best checkpoint
    and predictions use; its decay warms up as 1 - (1 + step)^(-2/3) to at most `decay`, so a few hundred steps
    (a small fold) already average over the later epochs instead of still remembering the random start."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise KitError(f"trainer.ema={decay}: the decay of the weight average must lie in (0, 1), or null for none")
    return ModelEmaV3(model, decay=decay, use_warmup=True)


def mixup(trainer: dict, classes: int) -> Mixup | None:
    """timm's Mixup/CutMix on single-label batches: soft targets, on which the loss's own label smoothing applies."""
    if not settings(trainer).mixup:
        return None
    if trainer["batch_size"] % 2:
        raise KitError(f"trainer.mixup needs an even trainer.batch_size (got {trainer['batch_size']})")
    return Mixup(mixup_alpha=0.8, cutmix_alpha=1.0, prob=settings(trainer).mixup, num_classes=classes,
                 label_smoothing=0.0)  # fmt: skip


def fold_ids(training, folds: pd.Series, fold: int) -> tuple[list, list]:
    """The fold's training and validation samples among those the data holds (where the competition lets a user train
    without the samples a folder lacks, e.g. RSNA's data.studies=present)."""
    held = set(training.ids("train"))
    missing = [i for i in folds.index if i not in held]
    if missing:
        training.samples_absent(missing, len(folds))
    train_ids = [i for i in folds.index[folds != fold] if i in held]
    val_ids = [i for i in folds.index[folds == fold] if i in held]
    if not train_ids or not val_ids:
        raise KitError(f"fold {fold}: {len(train_ids)} training and {len(val_ids)} validation samples with data "
                       f"({len(held)} in all); a fold needs both")  # fmt: skip
    return train_ids, val_ids


def build_fit(cfg: dict, fold: int, ctx: distributed.Context, training, folds: pd.Series, record: dict | None) -> Fit:
    trainer = cfg["trainer"]
    train_ids, val_ids = fold_ids(training, folds, fold)
    precision = Precision.for_device(settings(trainer).precision, ctx.device)
    model = build_model(cfg, training).to(ctx.device).to(memory_format=memory_format(cfg))
    per_process = data_parallel.per_process_batch(trainer["batch_size"], ctx.world_size)
    model = data_parallel.prepare_model(model, settings(trainer).sync_bn, per_process, ctx.world_size, ctx.device.type)
    ema = weight_average(model, settings(trainer).ema)
    wrapped = DistributedDataParallel(model) if ctx.world_size > 1 else model
    loss_fn = training.loss().to(ctx.device)
    sampler, train_loader, val_loader = _loaders(cfg, fold, ctx, training, train_ids, val_ids)
    _check_batches(model, trainer, fold, ctx, train_loader)
    accumulate = settings(trainer).accumulate
    optimizer = torch.optim.AdamW(param_groups(model, trainer), lr=trainer["lr"], weight_decay=trainer["weight_decay"])
    scheduler = make_schedule(optimizer, trainer, math.ceil(len(train_loader) / accumulate))
    prior = training.prior(train_ids)
    return Fit(
        cfg=cfg, fold=fold, ctx=ctx, training=training, train_ids=train_ids, val_ids=val_ids, record=record,
        model=model, ema=ema, wrapped=wrapped, forward=torch.compile(wrapped) if settings(trainer).compile else wrapped,
        loss_fn=loss_fn, precision=precision, optimizer=optimizer, scheduler=scheduler,
        stepper=Stepper(model, optimizer, scheduler, precision, trainer["grad_clip"], accumulate, ema),
        mixing=mixup(trainer, training.num_outputs), sampler=sampler, train_loader=train_loader,
        val_loader=val_loader,
        baseline=training.evaluate(val_ids, np.broadcast_to(prior, (len(val_ids), *prior.shape))),
    )  # fmt: skip


def _loaders(cfg: dict, fold: int, ctx: distributed.Context, training, train_ids: list, val_ids: list):
    trainer = cfg["trainer"]
    train_set = training.dataset(train_ids, "train", augment_seed=trainer["seed"] if trainer["augment"] else None)
    sampler = DistributedSampler(train_set, ctx.world_size, ctx.rank, shuffle=True, seed=trainer["seed"],
                                 drop_last=True)  # fmt: skip
    per_rank = data_parallel.per_process_batch(trainer["batch_size"], ctx.world_size)
    train_loader = make_loader(train_set, per_rank, trainer, ctx.device, sampler=sampler, drop_last=True)
    val_loader = make_loader(training.dataset(val_ids, "train"), trainer["batch_size"], trainer, ctx.device)
    return sampler, train_loader, val_loader


def _check_batches(model, trainer: dict, fold: int, ctx: distributed.Context, train_loader: DataLoader) -> None:
    per_rank = train_loader.batch_size
    if per_rank < 2 and any(isinstance(m, data_parallel.BATCH_NORMS) for m in model.modules()):
        raise KitError(
            f"trainer.batch_size={trainer['batch_size']}: BatchNorm needs at least 2 samples per batch and process; "
            "use a larger batch (or model.norm=group where the model has it)"
        )
    if len(train_loader) == 0:
        raise KitError(
            f"trainer.batch_size={trainer['batch_size']}: fold {fold} has only {len(train_loader.dataset)} training "
            f"samples ({ctx.world_size} process(es)), so an epoch would train on nothing; lower the batch size"
        )


def start(fit: Fit, resume: bool, force: bool) -> None:
    """Make the fold's folder; with --resume and a model_last.pt, continue from it (the fold is unfinished until
    this continuation writes its summary)."""
    out, last = fit.out, fit.out / "model_last.pt"
    if fit.ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_orphaned_writes(out)
    if not (resume and last.exists()):
        return
    saved = checkpoint.load(last)
    changed = refuse_changed_config(saved.get("config", fit.cfg), fit.cfg, out, force)
    fit.state = restore(saved, fit.model, fit.optimizer, fit.scheduler, fit.ema, fit.precision.scaler, last)
    fit.claimed = True
    if fit.ctx.is_main:
        (out / "summary.json").unlink(missing_ok=True)
        if changed or not (out / "config.yaml").exists():
            dump_config(fit.cfg, out / "config.yaml")
        write_identity(fit.record, out)
        print(f"resuming {out} after epoch {fit.state['epoch']}")
