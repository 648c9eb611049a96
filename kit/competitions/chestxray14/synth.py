"""A small ChestX-ray14 in the release's exact layout: Data_Entry_2017.csv with its real header (trailing comma),
images_00k/images/*.png (some RGBA, as in the release), train_val_list.txt / test_list.txt split by patient.

Findings follow the real prevalences (Infiltration most frequent, Hernia rarest, most images `No Finding`) and
co-occur independently; each finding draws its own blob at its own place on a chest-like picture, so a CNN can
learn them."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from kit.errors import KitError
from kit.io import write_text_atomic

from .table import ENTRY_FILE, FINDINGS, HEADER, LISTS, NO_FINDING

PREVALENCE = np.array([10.3, 2.5, 11.9, 17.7, 5.2, 5.6, 1.3, 4.7, 4.2, 2.1, 2.2, 1.5, 3.0, 0.2]) / 100
SIZE = 128
PER_FOLDER = 100


def findings(rng: np.random.Generator) -> np.ndarray:
    """Independent draws at 0.8× the real prevalences (at least 1%, so the rarest still reaches a small set): about
    55% of images have no finding, as in the release (whose findings co-occur more than independent draws would)."""
    return (rng.random(len(FINDINGS)) < np.maximum(PREVALENCE * 0.8, 0.01)).astype(np.uint8)


def picture(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    body = 0.75 - 0.35 * (((x - 0.33) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1)
    body = body - 0.35 * (((x - 0.67) / 0.16) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1)
    image = body + rng.normal(0, 0.05, body.shape) + rng.uniform(-0.05, 0.05)
    for k in np.flatnonzero(labels):
        cx, cy = 0.2 + 0.6 * (k % 4) / 3, 0.2 + 0.6 * (k // 4) / 3
        radius = 0.05 + 0.02 * (k % 3)
        image += 0.35 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def generate(out: Path, train: int, test: int, seed: int = 0, force: bool = False) -> Path:
    out = Path(out)
    if out.exists():
        if not force:
            raise KitError(f"{out} already exists; pass --force to replace it")
        shutil.rmtree(out)
    rng = np.random.default_rng(seed)
    rows, lists, written = [], {"train": [], "test": []}, 0
    patient = 0
    while len(lists["train"]) < train or len(lists["test"]) < test:
        patient += 1
        split = (
            "train" if len(lists["test"]) >= test or (len(lists["train"]) < train and rng.random() < 0.8) else "test"
        )
        for follow_up in range(int(rng.geometric(0.5))):
            name = f"{patient:08d}_{follow_up:03d}.png"
            labels = findings(rng)
            folder = out / f"images_{written // PER_FOLDER + 1:03d}" / "images"
            folder.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(picture(rng, labels))
            (image.convert("RGBA") if rng.random() < 0.05 else image).save(folder / name)
            written += 1
            text = "|".join(f for f, on in zip(FINDINGS, labels, strict=True) if on) or NO_FINDING
            age, gender, view = (
                int(rng.integers(1, 95)),
                "MF"[int(rng.integers(2))],
                ["PA", "AP"][int(rng.random() < 0.4)],
            )
            rows.append(
                f"{name},{text},{follow_up:03d},{patient:08d},{age:03d}Y,{gender},{view},{SIZE},{SIZE},0.143,0.143"
            )
            lists[split].append(name)
    write_text_atomic(out / ENTRY_FILE, HEADER + "\n" + "\n".join(rows) + "\n")
    for split, names in lists.items():
        write_text_atomic(out / LISTS[split], "\n".join(sorted(names)) + "\n")
    return out
