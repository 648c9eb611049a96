"""Course delivery on Codabench (AN2DL): a zip holding model.py, whose `Model().predict(X)` takes (n, H, W, C) uint8
images and returns (n,) integer labels, beside the weights. The weights are one torch.export program holding every
trained fold with the kit's normalisation and TTA (the flip or the eight orientations), so model.py needs torch, numpy
and Pillow, never the kit.

The rehearsal unzips into a fresh folder and imports model.py in a fresh, isolated process in which importing the
kit fails, then checks shape, dtype and range, equality with the kit's own predictions, and the time per 1,000
images."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.export import Dim

from kernels.dispatch import reference_math
from kit import paths
from kit.competitions import competition_of
from kit.competitions.imageclass.training import MEAN_STD, Images, ImageTraining, mean_std
from kit.errors import KitError
from kit.io import atomic_path
from kit.runtime import tta
from kit.runtime.inference import best_model, fold_average
from kit.schema import trainer as settings

TEMPLATE = Path(__file__).with_name("model_template.py")
LABEL_MARGIN = 1e-4  # labels must agree wherever the kit's top two probabilities are further apart than this


class Delivered(nn.Module):
    """(N, S, S, C) float pixels in 0..255 -> (N, classes) probabilities averaged over folds, as the kit predicts."""

    def __init__(self, models: list[nn.Module], channels: int, tta_mode: str, mean_std: tuple | None = None):
        super().__init__()
        self.models, self.tta = nn.ModuleList(models), tta_mode
        mean, std = mean_std or MEAN_STD[channels]
        self.register_buffer("mean", torch.tensor(mean)[:, None, None])
        self.register_buffer("std", torch.tensor(std)[:, None, None])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2) / 255.0 - self.mean) / self.std
        total = 0
        for model in self.models:
            logits = tta.logits_of(tta.averaged(model, x, self.tta))
            total = total + logits.float().softmax(dim=1)
        return total / len(self.models)


def _trained(run) -> tuple[dict, str, ImageTraining, list[Path]]:
    if not issubclass(competition_of(run.config).training_class, ImageTraining):
        raise KitError(f"{run.name}: Codabench packages are for the image-classification family only")
    comp, training, _ = run.prepare()
    if training.fit != "stretch":  # model.py resizes each picture whole, as the platform hands it over
        raise KitError(f"{run.name}: data.fit={training.fit}: a Codabench model.py fits pictures by stretch only")
    return run.config, comp.slug, training, [fold.path for fold in run.folds]


def package(run) -> tuple[Path, dict]:
    """submissions/<slug>/<run>.zip, then its rehearsal; returns the zip and the rehearsal's findings."""
    cfg, slug, training, folds = _trained(run)
    cpu = torch.device("cpu")
    models = [best_model(cfg, training, fold, cpu).to(memory_format=torch.contiguous_format) for fold in folds]
    views = tta.mode_of(settings(cfg["trainer"]).tta)
    delivered = Delivered(models, training.in_channels, views, mean_std(cfg, training.in_channels)).eval()
    example = torch.zeros(2, training.size, training.size, training.in_channels)
    with torch.no_grad(), reference_math():
        program = torch.export.export(delivered, (example,), dynamic_shapes=({0: Dim("batch", min=1)},))
    meta = {
        "experiment": cfg["name"], "classes": list(training.classes), "size": training.size,
        "channels": training.in_channels, "folds": [f.name for f in folds], "tta": delivered.tta,
        "torch": torch.__version__, "interpolation": training.interpolation,
    }  # fmt: skip
    path = paths.submissions_root() / slug / f"{cfg['name']}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        torch.export.save(program, Path(scratch) / "model.pt2")
        with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.write(TEMPLATE, "model.py")
            archive.write(Path(scratch) / "model.pt2", "model.pt2")
            archive.writestr("meta.json", json.dumps(meta, indent=1))
    images = rehearsal_images(training)
    held = Images(images, np.full(len(images), -1), list(range(len(images))), training.in_channels,
                  mean_std=mean_std(cfg, training.in_channels))  # fmt: skip
    expected = fold_average(cfg, training, folds, held, list(range(len(images))))
    return path, rehearse(path, images, expected)


def rehearsal_images(training: ImageTraining, limit: int = 1000) -> np.ndarray:
    """Up to `limit` labelled images as the dataset holds them (n, S, S, C) uint8, evenly spread over the set."""
    index = np.linspace(0, training.n_train - 1, min(limit, training.n_train)).round().astype(int)
    return training.images[np.unique(index)]


RUNNER = r"""
import importlib.abc, json, sys, time
import numpy as np

class NoKit(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("kit", "kernels"):
            raise ModuleNotFoundError(f"model.py imports {name}: the zip must work without the kit")

sys.meta_path.insert(0, NoKit())
folder, images_path, out_path = sys.argv[1:4]
sys.path.insert(0, folder)
import model

X = np.load(images_path)
start = time.perf_counter()
m = model.Model()
loaded = time.perf_counter() - start
labels = m.predict(X)
probs = m.predict_proba(X)
thousand = np.resize(X, (1000, *X.shape[1:]))
start = time.perf_counter()
m.predict(thousand)
per_thousand = time.perf_counter() - start
np.save(out_path + ".labels.npy", labels)
np.save(out_path + ".probs.npy", probs)
json.dump({"load_s": loaded, "s_per_1000": per_thousand, "dtype": str(labels.dtype), "shape": list(labels.shape)},
          open(out_path, "w"))
"""


def rehearse(zip_path: Path, images: np.ndarray, expected: np.ndarray) -> dict:
    """Unzip, import model.py without the kit in a fresh process, and compare with the kit's probabilities."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "unzipped"
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(folder)
        np.save(Path(scratch) / "images.npy", images)
        out = Path(scratch) / "result.json"
        started = time.perf_counter()
        command = [sys.executable, "-I", "-c", RUNNER, str(folder), str(Path(scratch) / "images.npy"), str(out)]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        if result.returncode:
            lines = [line for line in result.stderr.strip().splitlines() if not line.startswith((" ", "W1", "I1"))]
            raise KitError(f"{zip_path}: rehearsal failed: {lines[-1] if lines else result.returncode}")
        found = json.loads(out.read_text())
        labels = np.load(str(out) + ".labels.npy")
        probs = np.load(str(out) + ".probs.npy")
        found["wall_s"] = time.perf_counter() - started
    n_classes = expected.shape[1]
    problems = []
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        problems.append(f"predict returned {labels.dtype} of shape {labels.shape}; expected ({len(images)},) integers")
    elif labels.min() < 0 or labels.max() >= n_classes:
        problems.append(f"labels outside 0..{n_classes - 1}")
    top_two = np.sort(expected, axis=1)[:, -2:]
    clear = (top_two[:, 1] - top_two[:, 0]) > LABEL_MARGIN
    disagree = int(np.sum((labels != expected.argmax(axis=1)) & clear)) if not problems else len(images)
    max_diff = float(np.abs(probs - expected).max()) if probs.shape == expected.shape else float("inf")
    if disagree:
        problems.append(f"{disagree} of {len(images)} labels differ from the kit's predictions")
    if max_diff > 1e-4:
        problems.append(f"probabilities differ from the kit's by up to {max_diff:.2e}")
    if problems:
        raise KitError(f"{zip_path}: rehearsal: " + "; ".join(problems))
    return {**found, "images": len(images), "max_prob_diff": max_diff, "classes": n_classes,
            "zip_mb": zip_path.stat().st_size / 1e6}  # fmt: skip
