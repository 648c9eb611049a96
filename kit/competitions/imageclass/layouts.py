"""Layout readers of the image-classification family: a dataset's files -> labelled and test samples.

Each reader is registered by name (`dataset.layout` in an experiment) and returns Samples: per split, the sample keys
(an image's path relative to data.dir, or its index for array layouts), the class index per sample (None where the
split is unlabelled) and a way to load the images."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from kit.errors import DataError, KitError, UnknownNameError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"}


@dataclass
class Split:
    keys: list[str]
    labels: np.ndarray | None  # class index per key; None: unlabelled
    arrays: np.ndarray | None = None  # (n, H, W[, C]) uint8 for array layouts
    files: list[Path] = field(default_factory=list)  # one image file per key otherwise
    groups: np.ndarray | None = None  # near-duplicate group per key (dataset.clean); each group goes to one fold

    def subset(self, keep: np.ndarray, groups: np.ndarray) -> Split:
        index = np.flatnonzero(keep)
        return Split(
            [self.keys[i] for i in index],
            None if self.labels is None else self.labels[index],
            None if self.arrays is None else self.arrays[index],
            [self.files[i] for i in index] if self.files else [],
            groups[index],
        )


@dataclass
class Samples:
    classes: list[str]
    train: Split
    test: Split


LAYOUTS: dict[str, Callable[[Path, dict], Samples]] = {}


def register_layout(name: str):
    def wrap(fn):
        LAYOUTS[name] = fn
        return fn

    return wrap


def read_layout(data_dir: Path, spec: dict) -> Samples:
    name = spec.get("layout")
    if name not in LAYOUTS:
        raise UnknownNameError(f"dataset.layout={name!r}; valid: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[name](Path(data_dir), spec)


def fit_image(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Any colour mode (grayscale, RGBA, palette) as (size, size, channels) uint8."""
    image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def fit_array(array: np.ndarray, size: int, channels: int) -> np.ndarray:
    """An (H, W, 1|3) uint8 array fitted by fit_image."""
    return fit_image(Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array), size, channels)


def load_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One image file of any format, fitted by fit_image."""
    try:
        with Image.open(path) as image:
            return fit_image(image, size, channels)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from exc


def _check_labels(labels: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{where}: labels of shape {labels.shape}; expected (N,) or (N, 1) class indices")
    if not np.issubdtype(labels.dtype, np.integer) and not np.all(np.mod(labels, 1) == 0):
        raise DataError(f"{where}: labels must be whole class indices, got dtype {labels.dtype}")
    outside = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if outside.size:
        raise DataError(
            f"{where}: row {outside[0]} has label {labels[outside[0]]}, outside the {n_classes} classes "
            f"(0 to {n_classes - 1}); {outside.size} such row(s)"
        )
    return labels.astype(np.int64)


def _check_images(images: np.ndarray, n: int, where: str) -> np.ndarray:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"{where}: images of shape {images.shape}; expected (N, H, W) or (N, H, W, 1|3)")
    if len(images) != n:
        raise DataError(f"{where}: {len(images)} images but {n} labels")
    if images.dtype != np.uint8:
        raise DataError(f"{where}: images of dtype {images.dtype}; expected uint8 (0-255)")
    return images


@register_layout("npz")
def read_npz(data_dir: Path, spec: dict) -> Samples:
    """One .npz: `images` and `labels` (AN2DL blood cells; no test split), or MedMNIST's `train_/val_/test_images`
    and `*_labels` (train and val are the labelled samples, test the official test split)."""
    path = data_dir / spec.get("file", "training_set.npz")
    classes = list(spec["classes"])
    try:
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
    except FileNotFoundError as exc:
        raise KitError(f"{path}: file not found (make one with `kit synth`)") from exc
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz ({exc})") from exc
    if {"train_images", "train_labels", "test_images", "test_labels"} <= set(arrays):
        parts = [p for p in ("train", "val") if f"{p}_images" in arrays]
        labels = [_check_labels(arrays[f"{p}_labels"], len(classes), f"{path}: {p}_labels") for p in parts]
        images = [
            _check_images(arrays[f"{p}_images"], len(y), f"{path}: {p}_images")
            for p, y in zip(parts, labels, strict=True)
        ]
        test_labels = _check_labels(arrays["test_labels"], len(classes), f"{path}: test_labels")
        test_images = _check_images(arrays["test_images"], len(test_labels), f"{path}: test_images")
        train = np.concatenate(images)
        train_split = Split([str(i) for i in range(len(train))], np.concatenate(labels), train)
        return Samples(classes, train_split, Split([str(i) for i in range(len(test_images))], test_labels, test_images))
    if {"images", "labels"} <= set(arrays):
        labels = _check_labels(arrays["labels"], len(classes), f"{path}: labels")
        images = _check_images(arrays["images"], len(labels), f"{path}: images")
        empty = Split([], None, images[:0])
        return Samples(classes, Split([str(i) for i in range(len(images))], labels, images), empty)
    raise DataError(
        f"{path}: arrays {sorted(arrays)}; expected images and labels, or train_images, train_labels, test_images "
        "and test_labels (MedMNIST)"
    )


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _class_tree(root: Path, data_dir: Path, classes: list[str] | None) -> tuple[list[str], Split]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [p.name for p in folders]
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{root}: folder(s) {', '.join(unknown)} are not among the classes {classes}")
    if not classes:
        raise DataError(f"{root}: no class folders (expected one sub-folder of images per class)")
    keys, labels, files = [], [], []
    for index, name in enumerate(classes):
        folder = root / name
        images = _images_in(folder) if folder.is_dir() else []
        if not images:
            raise DataError(f"{folder}: class folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        for path in images:
            keys.append(path.relative_to(data_dir).as_posix())
            labels.append(index)
            files.append(path)
    return classes, Split(keys, np.asarray(labels, dtype=np.int64), files=files)


@register_layout("folders")
def read_folders(data_dir: Path, spec: dict) -> Samples:
    """One sub-folder of images per class (mixed sizes, formats and colour modes). With train/ and test/
    sub-folders, train/ holds the class folders and test/ either class folders (labelled) or images (unlabelled)."""
    if not data_dir.is_dir():
        raise KitError(f"{data_dir}: folder not found")
    classes = spec.get("classes")
    if (data_dir / "train").is_dir():
        classes, train = _class_tree(data_dir / "train", data_dir, classes)
        test_root = data_dir / "test"
        if not test_root.is_dir():
            return Samples(classes, train, Split([], None))
        if any(p.is_dir() for p in test_root.iterdir()):
            _, test = _class_tree(test_root, data_dir, classes)
            return Samples(classes, train, test)
        files = _images_in(test_root)
        return Samples(classes, train, Split([p.relative_to(data_dir).as_posix() for p in files], None, files=files))
    classes, train = _class_tree(data_dir, data_dir, classes)
    return Samples(classes, train, Split([], None))


@register_layout("tinyimagenet")
def read_tinyimagenet(data_dir: Path, spec: dict) -> Samples:
    """wnids.txt, train/<wnid>/images/*.JPEG, and val/images with val/val_annotations.txt (file, wnid, box): the
    labelled val split is the test split (the real test/ has no labels)."""
    wnids_path = data_dir / "wnids.txt"
    if not wnids_path.exists():
        raise KitError(f"{wnids_path}: file not found (make the layout with `kit synth`)")
    classes = [line.strip() for line in wnids_path.read_text().splitlines() if line.strip()]
    keys, labels, files = [], [], []
    for index, wnid in enumerate(classes):
        folder = data_dir / "train" / wnid / "images"
        images = _images_in(folder) if folder.is_dir() else []
        if not images:
            raise DataError(f"{folder}: class folder holds no images")
        keys += [p.relative_to(data_dir).as_posix() for p in images]
        labels += [index] * len(images)
        files += images
    train = Split(keys, np.asarray(labels, dtype=np.int64), files=files)
    annotations = data_dir / "val" / "val_annotations.txt"
    if not annotations.exists():
        return Samples(classes, train, Split([], None))
    position = {wnid: k for k, wnid in enumerate(classes)}
    test_keys, test_labels, test_files = [], [], []
    for row, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in position:
            raise DataError(f"{annotations}: row {row} ({line[:60]!r}) names no wnid of wnids.txt")
        path = data_dir / "val" / "images" / fields[0]
        test_keys.append(path.relative_to(data_dir).as_posix())
        test_labels.append(position[fields[1]])
        test_files.append(path)
    return Samples(classes, train, Split(test_keys, np.asarray(test_labels, dtype=np.int64), files=test_files))
