"""Layout readers of the segmentation family: a dataset's files -> pairs of image and label mask, matched by stem.

Each reader is registered by name (`dataset.layout`) and returns Pairs: the sample keys (file stems), the image files,
the mask files (None where a split is unlabelled) and, optionally, masks of pixels the metric must never see (the
rover and the far range in AI4Mars' release)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from kit.competitions.imageclass.layouts import IMAGE_SUFFIXES
from kit.data.read_once import read_once
from kit.errors import DataError, UnknownNameError
from kit.schema import SegmentationDataset


@dataclass
class Pairs:
    keys: list[str]
    images: list[Path]
    masks: list[Path] | None  # None: unlabelled
    excluded: list[list[Path]] = field(default_factory=list)  # per key, masks of pixels to ignore (value != 0)


@dataclass
class Layout:
    train: Pairs  # the labelled pairs folds are made of
    test: Pairs  # what predict writes masks for (scored where labelled)


LAYOUTS: dict[str, Callable[[Path, dict], Layout]] = {}


def register_layout(name: str):
    def wrap(fn):
        LAYOUTS[name] = fn
        return fn

    return wrap


def check_layout(spec: dict) -> str:
    name = spec.get("layout")
    if name not in LAYOUTS:
        raise UnknownNameError(f"dataset.layout={name!r}; valid: {', '.join(sorted(LAYOUTS))}")
    return name


@read_once
def read_layout(data_dir: Path, spec: dict) -> Layout:
    data_dir, spec = Path(data_dir), SegmentationDataset.resolved(spec)
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: no such folder")
    return LAYOUTS[check_layout(spec)](data_dir, spec)


def _images(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder (the images of this layout)")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}
    if not found:
        raise DataError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return found


@register_layout("folders")
def image_mask_folders(data_dir: Path, spec: dict) -> Layout:
    """dataset.images / dataset.masks (folders under data.dir): every image with the mask of its stem. A folder
    without masks is unlabelled (predict only); one with some masks must have one for every image and no more."""
    images = _images(data_dir / spec["images"])
    mask_dir = data_dir / spec["masks"]
    masks = (
        {p.stem: p for p in sorted(mask_dir.glob("*")) if p.suffix.lower() in IMAGE_SUFFIXES}
        if mask_dir.is_dir()
        else {}
    )
    keys = sorted(images)
    if not masks:
        return Layout(Pairs([], [], []), Pairs(keys, [images[k] for k in keys], None))
    lonely = [k for k in keys if k not in masks]
    if lonely:
        raise DataError(f"{images[lonely[0]]}: no mask {mask_dir / (lonely[0] + '.png')} ({len(lonely)} image(s) "
                        f"without a mask of the same stem)")  # fmt: skip
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise DataError(f"{masks[orphans[0]]}: a mask without an image of the same stem ({len(orphans)} such)")
    pairs = Pairs(keys, [images[k] for k in keys], [masks[k] for k in keys])
    return Layout(pairs, pairs)


AI4MARS_ID = re.compile(r"^N[LR][AB]_(\d{9})EDR_F(\d{7})")


@register_layout("ai4mars")
def ai4mars_release(data_dir: Path, spec: dict) -> Layout:
    """AI4Mars' release tree for one rover (msl by default): images/edr/*.JPG, crowd labels labels/train/<id>.png,
    expert test labels labels/test/masked-gold-min<k>-100agree/<id>_merged.png (k = dataset.test_agreement, 3 by
    default). Its documentation masks out the rover (images/mxy/<id with MXY>.png) and the range beyond 30 m
    (images/rng-30m/<id with RNG>.png): those pixels count as unlabelled."""
    root = data_dir / spec["rover"] / "ncam"
    if not root.is_dir() and (data_dir / "images").is_dir():
        root = data_dir
    images = _images(root / "images" / "edr")

    def labelled(folder: Path, suffix: str) -> Pairs:
        masks = {p.name.removesuffix(suffix + ".png"): p for p in sorted(folder.glob(f"*{suffix}.png"))}
        keys = sorted(k for k in masks if k in images)
        excluded = [[root / "images" / "mxy" / f"{k.replace('EDR', 'MXY')}.png",
                     root / "images" / "rng-30m" / f"{k.replace('EDR', 'RNG')}.png"] for k in keys]  # fmt: skip
        return Pairs(keys, [images[k] for k in keys], [masks[k] for k in keys],
                     [[p for p in paths if p.exists()] for paths in excluded])  # fmt: skip

    train = labelled(root / "labels" / "train", "")
    if not train.keys:
        raise DataError(f"{root / 'labels' / 'train'}: no label PNG whose stem is an image of {root / 'images/edr'}")
    agreement = int(spec["test_agreement"])
    return Layout(train, labelled(root / "labels" / "test" / f"masked-gold-min{agreement}-100agree", "_merged"))


def scenes(keys: list[str], gap_s: int = 600) -> list[str]:
    """Per key, its scene: NAVCAM frames in spacecraft-clock order are one scene while each shares the rover's
    position (site and drive, F<sssdddd> in the id) with the one before or follows it within `gap_s` seconds.
    A key that is no NAVCAM id is a scene of its own."""
    parsed = {k: AI4MARS_ID.match(k) for k in keys}
    timed = sorted((int(m.group(1)), m.group(2), k) for k, m in parsed.items() if m)
    scene, out, last = -1, {}, None
    for clock, position, key in timed:
        if last is None or (position != last[1] and clock - last[0] > gap_s):
            scene += 1
        out[key], last = f"scene{scene}", (clock, position)
    return [out.get(k, k) for k in keys]


def read_mask(path: Path, values: set[int]) -> np.ndarray:
    """A label PNG as (H, W) uint8; every value must be a class index or the ignore value."""
    try:
        with Image.open(path) as picture:
            mask = np.asarray(picture.convert("L") if picture.mode not in ("L", "P", "I", "I;16") else picture)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable mask ({exc})") from exc
    if mask.ndim != 2:
        raise DataError(f"{path}: a mask must have one channel; it has shape {mask.shape}")
    found = np.unique(mask)
    bad = [int(v) for v in found if int(v) not in values]
    if bad:
        raise DataError(f"{path}: mask value(s) {bad[:5]} are neither a class nor the ignore value "
                        f"({', '.join(map(str, sorted(values)))})")  # fmt: skip
    return mask.astype(np.uint8)


def read_image(path: Path, channels: int) -> np.ndarray:
    """Any image mode as (H, W, channels) uint8."""
    try:
        with Image.open(path) as picture:
            array = np.asarray(picture.convert("L" if channels == 1 else "RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: unreadable image ({exc})") from exc
    return array[..., None] if array.ndim == 2 else array
