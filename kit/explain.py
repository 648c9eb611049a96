"""`kit explain`: where a trained fold's best model looks, drawn on its own validation samples (OOF)."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.competitions import competition_of
from kit.competitions.parts import Explaining
from kit.errors import KitError
from kit.runtime.inference import best_model
from kit.train.outputs import trained_fold


def explain_fold(run, fold: int) -> list[Path]:
    """Pictures drawn on the fold's own validation samples, from the data the run was trained on."""
    comp = competition_of(run.config)
    training_class = comp.training_class
    if not issubclass(training_class, Explaining):
        raise KitError(f"competition {comp.name} draws no explanation pictures (its training has no Explaining part)")
    folder, trained, training, _ = trained_fold(run, fold)
    ids, probs = training.load_predictions(folder / training.oof_file)
    model = best_model(trained, training, folder, torch.device("cpu"))
    written = training.explain(model, folder / "explain", ids, probs)
    if not written:
        raise KitError(f"{folder}: nothing to draw (no validation sample fits)")
    return written
