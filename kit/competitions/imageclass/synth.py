"""Synthetic datasets in each layout's exact form, with differences between classes that a CNN can learn: every class
has its own stripe orientation and frequency (and tint, in colour), under noise, random phase and brightness."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from kit.errors import KitError
from kit.io import atomic_path
from kit.schema import ImageDataset

from . import layouts

WRITERS: dict[str, Callable] = {}


def register_writer(layout: str):
    def wrap(fn):
        WRITERS[layout] = fn
        return fn

    return wrap


def class_image(rng: np.random.Generator, label: int, n_classes: int, size: int, channels: int) -> np.ndarray:
    """(size, size, channels) uint8."""
    angle = np.pi * label / n_classes + rng.normal(0, 0.05)
    frequency = 2 + (label % 3) + rng.uniform(-0.2, 0.2)
    y, x = np.mgrid[0:size, 0:size] / size
    stripes = np.sin(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
    base = 0.5 + 0.3 * stripes + rng.normal(0, 0.12, (size, size)) + rng.uniform(-0.1, 0.1)
    if channels == 1:
        image = base[..., None]
    else:
        tint = 0.75 + 0.25 * np.cos(2 * np.pi * (label / n_classes + np.array([0.0, 1 / 3, 2 / 3])))
        image = base[..., None] * tint
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def _labels(rng, n: int, n_classes: int) -> np.ndarray:
    return np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, max(0, n - n_classes))])[:n]


def _fresh(out: Path, force: bool) -> Path:
    if out.exists():
        if not force:
            raise KitError(f"{out} already exists; pass --force to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _save(image: np.ndarray, path: Path, mode_of_some: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    if mode_of_some:
        picture = picture.convert(mode_of_some)
    picture.save(path)


@register_writer("npz")
def write_npz(out: Path, spec: dict, train: int, test: int, rng: np.random.Generator) -> None:
    """MedMNIST's arrays when the dataset names train_/test_ keys (its `file` ends in mnist.npz), else AN2DL's."""
    n_classes, size, channels = len(spec["classes"]), spec["synth_size"], spec["channels"]
    name = spec["file"]

    def arrays(n):
        labels = _labels(rng, n, n_classes)
        images = np.stack([class_image(rng, int(k), n_classes, size, channels) for k in labels])
        return (images[..., 0] if channels == 1 else images), labels[:, None]

    if spec["arrays"] == "medmnist":
        (tr, ytr), (va, yva), (te, yte) = arrays(train), arrays(max(2, train // 8)), arrays(test)
        content = dict(train_images=tr, train_labels=ytr, val_images=va, val_labels=yva, test_images=te,
                       test_labels=yte)  # fmt: skip
    else:
        images, labels = arrays(train)
        if spec["clean"]:
            images, labels = _contaminate(rng, images, labels, n_classes, spec["clean"])
        content = {"images": images, "labels": labels}
    with atomic_path(out / name) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **content)


def _contaminate(rng, images: np.ndarray, labels: np.ndarray, n_classes: int, clean: dict):
    """AN2DL's traps, in proportion: two non-class pictures pasted in (about 13% of samples, each copy slightly
    noisy, labels at random) and a few real samples repeated exactly, label and all."""
    n = len(images)
    copies = max(int(clean.get("contaminant_copies", 20)), round(0.065 * n))
    pasted = []
    for seed in (1, 2):  # smooth blobs, nothing like a class's stripes
        coarse = Image.fromarray((np.random.default_rng(seed).random((5, 5)) * 255).astype(np.uint8))
        picture = np.asarray(coarse.resize(images.shape[1:3][::-1], Image.Resampling.BICUBIC), dtype=np.int64)
        base = np.repeat(picture[..., None], images.shape[3], axis=-1) if images.ndim == 4 else picture
        noise = rng.integers(-3, 4, (copies, *images.shape[1:]))
        pasted.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    repeats = rng.choice(n, max(2, n // 50), replace=False)
    images = np.concatenate([images, *pasted, images[repeats]])
    labels = np.concatenate([labels, rng.integers(0, n_classes, (2 * copies, 1)), labels[repeats]])
    order = rng.permutation(len(images))
    return images[order], labels[order]


@register_writer("folders")
def write_folders(out: Path, spec: dict, train: int, test: int, rng: np.random.Generator) -> None:
    """One folder per class with mixed sizes, formats (PNG, JPEG) and colour modes (grayscale, RGB, RGBA)."""
    classes, channels = spec["classes"] or spec["synth_classes"], spec["channels"]
    if isinstance(classes, int):
        classes = [f"class_{k}" for k in range(classes)]
    for k, label in enumerate(_labels(rng, train, len(classes))):
        size = int(rng.integers(48, 96))
        image = class_image(rng, int(label), len(classes), size, channels)
        suffix, mode = [(".png", None), (".jpg", "RGB"), (".png", "RGBA"), (".jpeg", "L")][k % 4]
        if channels == 1 and mode in ("RGB", "RGBA"):
            mode = None
        _save(image, out / classes[label] / f"img_{k:05d}{suffix}", mode)


@register_writer("tinyimagenet")
def write_tinyimagenet(out: Path, spec: dict, train: int, test: int, rng: np.random.Generator) -> None:
    """wnids.txt, words.txt, train/<wnid>/images/*.JPEG (with <wnid>_boxes.txt), val/images and
    val_annotations.txt, test/images; 64×64 JPEG, about one in ten grayscale."""
    n_classes = spec["synth_classes"] if isinstance(spec["synth_classes"], int) else len(spec["synth_classes"])
    wnids = [f"n{1440764 + 1000 * k:08d}" for k in range(n_classes)]
    (out / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (out / "words.txt").write_text("".join(f"{w}\tsynthetic class {k}\n" for k, w in enumerate(wnids)))

    def picture(label: int, path: Path) -> None:
        image = class_image(rng, label, n_classes, 64, 3)
        _save(image, path, "L" if rng.random() < 0.1 else "RGB")

    for k, label in enumerate(_labels(rng, train, n_classes)):
        wnid = wnids[label]
        picture(int(label), out / "train" / wnid / "images" / f"{wnid}_{k}.JPEG")
    for wnid in wnids:
        (out / "train" / wnid).mkdir(parents=True, exist_ok=True)  # a class may draw no image when train is small
        (out / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    rows = []
    for k, label in enumerate(_labels(rng, test, n_classes)):
        picture(int(label), out / "val" / "images" / f"val_{k}.JPEG")
        rows.append(f"val_{k}.JPEG\t{wnids[label]}\t0\t0\t63\t63\n")
    (out / "val" / "val_annotations.txt").write_text("".join(rows))
    for k in range(min(test, 5)):
        picture(int(rng.integers(n_classes)), out / "test" / "images" / f"test_{k}.JPEG")


def generate(out: Path, spec: dict, train: int, test: int, seed: int = 0, force: bool = False) -> Path:
    out, spec = Path(out), ImageDataset.resolved(spec)
    layout = layouts.layout_names(spec)[0]  # the first layout the dataset is published in
    if layout not in WRITERS:
        raise KitError(f"dataset.layout={layout!r} has no synthetic writer; valid: {', '.join(sorted(WRITERS))}")
    staging = _fresh(out.with_name(out.name + ".partial"), force=True)
    WRITERS[layout](staging, spec, train, test, np.random.default_rng(seed))
    _fresh(out, force).rmdir()
    staging.rename(out)
    return out
