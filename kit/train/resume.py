"""What --resume needs: the random streams, the state a checkpoint restores, and the refusal of a changed config."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from timm.utils.model_ema import ModelEmaV3

from kit.config import config_differences, lookup
from kit.errors import KitError
from kit.runtime import checkpoint
from kit.train.identity import recorded_config


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
    changed = config_differences(saved, cfg)
    if changed and not force:
        details = ", ".join(f"{k} ({lookup(saved, k)!r} -> {lookup(cfg, k)!r})" for k in changed[:6])
        raise KitError(f"{out}: --resume with a changed config: {details}; add --force to continue anyway "
                       "(train-all: --restart retrains every fold)")  # fmt: skip
    return changed


def finished_summary(out: Path, cfg: dict, force: bool) -> dict | None:
    """What a resumed fold that had finished keeps: its summary.json as written (figures, seconds), untouched;
    None where the fold is unfinished, or where --force continues it under a changed config (more epochs, say).
    A finished fold of a changed config is otherwise refused like any resume."""
    summary = out / "summary.json"
    if not (summary.exists() and (out / "model_best.pt").exists()):
        return None
    if refuse_changed_config(recorded_config(out), cfg, out, force):
        return None
    return json.loads(summary.read_text())


def remove_orphaned_writes(folder: Path) -> None:
    """Temporary files a killed atomic write left behind (.<name>.<random>.tmp)."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)
