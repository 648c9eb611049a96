"""One fold on every GPU of the machine: under torchrun, one data-parallel (DDP) process per GPU, where there are
several (Kaggle's T4 x2); in this process otherwise. The training notebook (push-train) calls this."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from kit import paths
from kit.config import apply_overrides, load_experiment
from kit.errors import KitError


def launch_command(exp: str, fold: int, overrides: list[str], processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "kit.cli", "train-fold", "--exp", exp, "--fold", str(fold), *overrides]  # fmt: skip


def train_fold_on_every_gpu(exp: str, fold: int, overrides: list[str] = (), echo=print) -> dict:
    """The fold's summary.json; `overrides` are key=value config overrides."""
    from kit.train.runner import train_fold

    cfg = apply_overrides(load_experiment(exp), list(overrides))
    gpus = torch.cuda.device_count()
    if gpus < 2:
        return train_fold(cfg, fold)
    echo(f"{gpus} GPUs: torchrun, one DDP process per GPU")
    env = {**os.environ, "KIT_HOME": str(paths.home())}
    if subprocess.run(launch_command(exp, fold, list(overrides), gpus), env=env, check=False).returncode:
        raise KitError(f"training fold {fold} of {exp} on {gpus} GPUs failed (its log is above)")
    return json.loads((paths.fold_dir(cfg["name"], fold) / "summary.json").read_text())
