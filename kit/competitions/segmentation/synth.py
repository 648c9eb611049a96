"""A synthetic twin of an image/mask dataset in its layout: textured terrain regions (one texture per class), an
unlabelled band at the top (the far range), frames named like NAVCAM ids, three frames per scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from kit.schema import SegmentationDataset


def _frame(rng: np.random.Generator, size: int, classes: int, ignore: int) -> tuple[np.ndarray, np.ndarray]:
    seeds = rng.integers(0, size, (6, 2))
    labels = rng.integers(0, classes, 6)
    yy, xx = np.mgrid[:size, :size]
    nearest = np.argmin([(yy - y) ** 2 + (xx - x) ** 2 for y, x in seeds], axis=0)
    mask = labels[nearest].astype(np.uint8)
    brightness = np.linspace(70, 190, classes)[mask]
    texture = rng.normal(0, 1, (size, size)) * (8 + 10 * (mask % 2))
    image = np.clip(brightness + texture, 0, 255).astype(np.uint8)
    mask[: size // 6] = ignore
    return image, mask


def generate(out: Path, spec: dict, train: int, test: int, seed: int, force: bool = False) -> Path:
    rng, spec = np.random.default_rng(seed), SegmentationDataset.resolved(spec)
    classes, ignore, size = len(spec["classes"]), int(spec["ignore_index"]), int(spec["synth_size"])
    out = Path(out)
    ai4mars = spec["layout"] == "ai4mars"
    root = out / spec["rover"] / "ncam" if ai4mars else out
    images = root / "images" / "edr" if ai4mars else out / spec["images"]
    masks = root / "labels" / "train" if ai4mars else out / spec["masks"]
    test_masks = root / "labels" / "test" / f"masked-gold-min{int(spec['test_agreement'])}-100agree"
    for folder in (images, masks, *((test_masks,) if ai4mars else ())):
        folder.mkdir(parents=True, exist_ok=True)
    total = train + (test if ai4mars else 0)
    for k in range(total):
        scene, frame = divmod(k, 3)
        key = f"NLA_{400000000 + 5000 * scene + 60 * frame}EDR_F{scene:07d}NCAM00001M1"
        image, mask = _frame(rng, size, classes, ignore)
        Image.fromarray(np.repeat(image[..., None], 3, axis=2)).save(images / f"{key}.jpg", quality=95)
        labelled = masks if k < train else test_masks
        Image.fromarray(mask, mode="L").save(labelled / f"{key}{'' if k < train else '_merged'}.png")
    return out
