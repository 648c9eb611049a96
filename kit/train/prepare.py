"""What every command that trains or benchmarks a fold sets up first: seeds, the fold's folder, data and folds."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from kit import paths
from kit.competitions import competition_of
from kit.data.read_once import one_read
from kit.train import distributed


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fold_dir(cfg: dict, fold: int) -> Path:
    return paths.fold_dir(cfg["name"], fold) / cfg.get("stage", "")


def prepare(cfg: dict, ctx: distributed.Context, with_folds: bool = True):
    """Data folder, folds and the competition's training object; rank 0 generates and caches first. Without folds
    (predicting other data, which may be too small to split): folds is None."""
    with one_read():  # the folds and the training object list the same folder
        comp = competition_of(cfg)
        if not with_folds:
            data_dir = comp.data_dir(cfg["data"]["dir"])
            return comp, comp.training(cfg, data_dir), None
        folds = None
        if ctx.is_main:
            folds = comp.folds(comp.data_dir(cfg["data"]["dir"]), cfg["data"]["folds"], cfg["data"]["fold_seed"])
        ctx.barrier()
        data_dir = comp.data_dir(cfg["data"]["dir"])
        if folds is None:  # the other processes read what rank 0 made
            folds = comp.folds(data_dir, cfg["data"]["folds"], cfg["data"]["fold_seed"])
        return comp, comp.training(cfg, data_dir), folds
