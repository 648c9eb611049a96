"""What fold training needs from a segmentation dataset of image and mask files: images resized to data.size (the
weights' interpolation), masks nearest; cross-entropy + Dice on the labelled pixels only; mean IoU over the classes,
scored at each mask's own resolution; OOF as quantised probabilities; label PNGs as the submission."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose, RandAdjustContrastd, RandFlipd, RandRotated, RandScaleIntensityd, RandZoomd
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset
from tqdm import tqdm

from kit.competitions.imageclass.layouts import RESAMPLING
from kit.competitions.parts import FoldReport, FoldTraining
from kit.competitions.pixel_stacking import PixelStacking
from kit.errors import DataError, KitError
from kit.io import atomic_path
from kit.models import pretrained
from kit.report.confusion import plot_matrix
from kit.report.masks import plot_masks
from kit.schema import Data

from . import metric
from .layouts import Layout, Pairs, read_image, read_layout, read_mask

DEFAULT_MEAN_STD = {1: ([0.5], [0.25]), 3: ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}


class Segments(Dataset):
    """{'image': (C, S, S) float32 normalised, 'target': (S, S) long (ignore value where unlabelled), 'id'}."""

    def __init__(self, images: np.ndarray, masks: np.ndarray | None, ids: list[int], mean_std, ignore: int,
                 augment=None):  # fmt: skip
        self.images, self.masks, self.ids, self.augment, self.ignore = images, masks, ids, augment, ignore
        mean, std = mean_std
        self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image = torch.from_numpy(np.ascontiguousarray(self.images[index])).permute(2, 0, 1).float() / 255.0
        shape = image.shape[1:]
        mask = self.masks[index] if self.masks is not None else np.full(shape, self.ignore, np.uint8)
        item = {"image": image, "mask": torch.from_numpy(mask[None].astype(np.float32))}
        if self.augment is not None:
            item = self.augment(item)
        image = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)
        target = torch.as_tensor(np.asarray(item["mask"]))[0].round().long()
        return {"image": (image - self.mean) / self.std, "target": target, "id": self.ids[index]}


def augmentation(seed: int, ignore: int) -> Compose:
    """Rover views have an up: mirror left-right, small rotations and zooms (the mask nearest, padded with the
    ignore value), brightness and contrast for the image only."""
    keys, modes = ["image", "mask"], ("bilinear", "nearest")
    augment = Compose(
        [
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandRotated(keys, range_x=0.2, prob=0.3, mode=modes, padding_mode="zeros"),
            RandZoomd(keys, prob=0.4, min_zoom=1.0, max_zoom=1.4, mode=("bilinear", "nearest-exact")),
            RandScaleIntensityd("image", factors=0.2, prob=0.5),
            RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
        ]
    )
    augment.set_random_state(seed=seed)
    return augment


class SegmentationTraining(FoldTraining, FoldReport, PixelStacking):
    """Sample ids: 0..n_train-1 the labelled pairs, then the test split's (the same files may be in both)."""

    spec: ClassVar[dict]
    loss_kind = "segmentation"
    metric_name = "miou"
    metric_mode = "max"
    oof_file = "oof.npz"

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.layout: Layout = read_layout(self.data_dir, self.spec)
        self.classes = self.pixel_classes = list(self.spec["classes"])
        self.ignore = int(self.spec["ignore_index"])
        self.num_outputs = len(self.classes)
        self.in_channels = int(self.spec["channels"])
        self.size = int(cfg["data"]["size"])
        self.pixel_grid = (self.size, self.size)
        self.interpolation = pretrained.interpolation(cfg.get("model") or {})
        self.native: dict[Path, tuple[int, int]] = {}  # image -> (height, width), from its header or its decoding
        self._masks: dict[Path, np.ndarray] = {}
        self.n_train = len(self.layout.train.keys)
        self.keys = self.layout.train.keys + self.layout.test.keys

    def _pair(self, sample: int) -> tuple[Pairs, int]:
        return (self.layout.train, sample) if sample < self.n_train else (self.layout.test, sample - self.n_train)

    @cached_property
    def images(self) -> np.ndarray:
        """Every sample at data.size × data.size, (n, S, S, C) uint8, decoded once (shared files once)."""
        resample = RESAMPLING.get(self.interpolation, Image.Resampling.BILINEAR)
        decoded: dict[Path, np.ndarray] = {}
        files = self.layout.train.images + self.layout.test.images
        for path in tqdm(files, desc="decoding images", leave=False, disable=len(files) < 500):
            if path not in decoded:
                image = read_image(path, self.in_channels)
                self.native[path] = image.shape[:2]
                picture = Image.fromarray(image[..., 0] if self.in_channels == 1 else image)
                array = np.asarray(picture.resize((self.size, self.size), resample))
                decoded[path] = array[..., None] if array.ndim == 2 else array
        return np.stack([decoded[p] for p in files]) if files else np.zeros((0, self.size, self.size, 1), np.uint8)

    def size_of(self, path: Path) -> tuple[int, int]:
        """An image's (height, width), from its header alone where it was not decoded yet."""
        if path not in self.native:
            try:
                with Image.open(path) as picture:
                    self.native[path] = (picture.height, picture.width)
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
                raise DataError(f"{path}: unreadable image ({exc})") from exc
        return self.native[path]

    def full_mask(self, sample: int) -> np.ndarray:
        """A labelled sample's mask at its own size, with excluded pixels (rover, far range) set to the ignore value."""
        pairs, k = self._pair(sample)
        if pairs.masks is None:
            raise KitError(f"{pairs.images[k]}: no mask (this split is unlabelled)")
        return self._mask(pairs, k)

    def _mask(self, pairs: Pairs, k: int) -> np.ndarray:
        cache = self._masks
        path = pairs.masks[k]
        if path not in cache:
            mask = read_mask(path, set(range(self.num_outputs)) | {self.ignore})
            height, width = self.size_of(pairs.images[k])
            if mask.shape != (height, width):
                raise DataError(f"{path}: mask of size {mask.shape[1]}×{mask.shape[0]}, its image "
                                f"{pairs.images[k].name} is {width}×{height}")  # fmt: skip
            for extra in pairs.excluded[k] if pairs.excluded else []:
                excluded = read_image(extra, 1)[..., 0]
                if excluded.shape == mask.shape:
                    mask = np.where(excluded != 0, self.ignore, mask).astype(np.uint8)
            cache[path] = mask
        return cache[path]

    @cached_property
    def small_masks(self) -> np.ndarray:
        """The labelled masks at data.size (nearest): the training targets."""
        out = np.full((self.n_train, self.size, self.size), self.ignore, np.uint8)
        for i in tqdm(range(self.n_train), desc="reading masks", leave=False, disable=self.n_train < 500):
            picture = Image.fromarray(self.full_mask(i))
            out[i] = np.asarray(picture.resize((self.size, self.size), Image.Resampling.NEAREST))
        return out

    def check(self) -> None:
        """Read every labelled mask now, so bad input is one error before any training."""
        self.small_masks  # noqa: B018

    def ids(self, split: str) -> list[int]:
        return list(range(self.n_train)) if split == "train" else list(range(self.n_train, len(self.keys)))

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> Segments:
        augment = augmentation(augment_seed, self.ignore) if augment_seed is not None else None
        if augment is not None and self.spec["rare_class"] is not None:  # training: repeat the rare class
            repeat = Data.check(self.cfg["data"]).oversample_rare
            rare = self.classes.index(self.spec["rare_class"])
            holds = (self.small_masks[ids] == rare).any(axis=(1, 2))
            ids = [i for i, has in zip(ids, holds, strict=True) for _ in range(repeat if has else 1)]
        labelled = all(i < self.n_train for i in ids)
        masks = self.small_masks[ids] if labelled and ids else None
        mean_std = pretrained.normalisation(self.cfg.get("model") or {}, self.in_channels,
                                            DEFAULT_MEAN_STD[self.in_channels])  # fmt: skip
        return Segments(self.images[ids], masks, ids, mean_std, self.ignore, augment)

    def loss(self) -> nn.Module:
        spec = {**self.cfg["loss"], "ignore_index": self.ignore}
        weights = spec.get("class_weights")
        if weights is not None and (not isinstance(weights, list) or len(weights) != self.num_outputs):
            raise KitError(f"config: loss.class_weights={weights!r}; expected one number per class "
                           f"({', '.join(self.classes)}), in that order")  # fmt: skip
        return self.loss_from(spec)

    def test_labelled(self) -> bool:
        return self.layout.test.masks is not None and bool(self.layout.test.keys)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().softmax(dim=1).cpu().numpy()

    def native_labels(self, sample: int, probs: np.ndarray) -> np.ndarray:
        """A sample's predicted labels at its image's own size (probabilities resized bilinearly, then argmax)."""
        pairs, k = self._pair(sample)
        height, width = self.size_of(pairs.images[k])
        tensor = torch.from_numpy(np.asarray(probs, dtype=np.float32))[None]
        if tensor.shape[-2:] != (height, width):
            tensor = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)
        return tensor[0].argmax(dim=0).numpy().astype(np.uint8)

    def confusion(self, ids: list[int], probs: np.ndarray) -> np.ndarray:
        total = np.zeros((self.num_outputs, self.num_outputs), np.int64)
        for sample, p in zip(ids, probs, strict=True):
            total += metric.confusion(self.full_mask(sample), self.native_labels(sample, p), self.num_outputs,
                                      self.ignore)  # fmt: skip
        return total

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        return metric.iou_parts(self.confusion(ids, probs), self.classes)

    def prior(self, ids: list[int]) -> np.ndarray:
        """Per-pixel class frequencies over the labelled training pixels: (classes, S, S)."""
        masks = self.small_masks[[i for i in ids if i < self.n_train]]
        counts = np.stack([(masks == c).sum(axis=0) for c in range(self.num_outputs)]).astype(np.float64) + 1.0
        return counts / counts.sum(axis=0, keepdims=True)

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """Class probabilities at data.size as uint8 (× 255: 2 MB per 100 images at 128 px), keyed by sample key."""
        quantised = np.round(np.clip(np.asarray(probs, dtype=np.float32), 0, 1) * 255).astype(np.uint8)
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, keys=np.asarray([self.keys[i] for i in ids]), labelled=np.asarray(
                [i < self.n_train for i in ids]), probs=quantised)  # fmt: skip
        return Path(path)

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        with np.load(path) as saved:
            if not {"keys", "labelled", "probs"} <= set(saved.files):
                raise DataError(f"{path}: expected arrays keys, labelled and probs, found {sorted(saved.files)}")
            keys, labelled, probs = saved["keys"].tolist(), saved["labelled"], saved["probs"]
        train = {k: i for i, k in enumerate(self.layout.train.keys)}
        test = {k: self.n_train + i for i, k in enumerate(self.layout.test.keys)}
        ids = []
        for key, own in zip(keys, labelled, strict=True):
            lookup = train if own else test
            if key not in lookup:
                raise DataError(f"{path}: {key!r} is no sample of {self.data_dir}")
            ids.append(lookup[key])
        probs = probs.astype(np.float32) / 255.0
        return ids, probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-6)

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """One label PNG per image, named by its stem, at the image's size (values: class indices), in the folder
        <path without .csv>/, <path> listing them (id, file, labelled pixels per class), and <stem>_masks.png."""
        if not ids:
            raise KitError(f"{self.data_dir}: no images to predict")
        path = Path(path)
        folder = path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for sample, p in zip(ids, probs, strict=True):
            labels = self.native_labels(sample, p)
            target = folder / f"{self.keys[sample]}.png"
            with atomic_path(target) as tmp:
                Image.fromarray(labels, mode="L").save(tmp, format="PNG")
            counts = np.bincount(labels.ravel(), minlength=self.num_outputs)
            rows.append({"id": self.keys[sample], "file": f"{folder.name}/{target.name}",
                         **{c: int(n) for c, n in zip(self.classes, counts, strict=True)}})  # fmt: skip
        with atomic_path(path) as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        self._overlay(path.with_name(f"{path.stem}_masks.png"), list(ids), probs)  # beside: the folder is labels only
        return path

    def _overlay(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        """masks.png: six images (where labelled, the two holding most of the rare class first, the rest spread over
        `ids`), their truth where known, the prediction; unlabelled pixels black in the truth, white (unscored) in
        the prediction."""
        labelled = self._labelled(ids)
        chosen = list(np.linspace(0, len(ids) - 1, min(6, len(ids))).round().astype(int))
        if labelled and self.spec["rare_class"] is not None:
            rare = self.classes.index(self.spec["rare_class"])
            counts = np.array([(self._small(i) == rare).sum() for i in ids])
            first = [int(k) for k in np.argsort(-counts, kind="stable")[:2] if counts[k] > 0]
            chosen = first + [k for k in chosen if k not in first][: max(0, len(chosen) - len(first))]
        picked = [ids[k] for k in chosen]
        images = self.images[picked][..., 0] if self.in_channels == 1 else self.images[picked]
        pred = np.asarray(probs)[chosen].argmax(axis=1) + 1  # drawn one up: 0 (black) is unlabelled
        truth = np.stack([self._small(i) for i in picked]).astype(np.int64) + 1 if labelled else np.zeros_like(pred)
        truth[truth == self.ignore + 1] = 0
        plot_masks(out, images, truth, pred, [self.keys[i] for i in picked], ("unlabelled", *self.classes),
                   ignore_class=0)  # fmt: skip

    def _labelled(self, ids: list[int]) -> bool:
        return all(self._pair(i)[0].masks is not None for i in ids)

    def _small(self, sample: int) -> np.ndarray:
        if sample < self.n_train:
            return self.small_masks[sample]
        picture = Image.fromarray(self.full_mask(sample))
        return np.asarray(picture.resize((self.size, self.size), Image.Resampling.NEAREST))

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        """Per pixel of data.size, the class; -1 where unlabelled (the stack never trains on those)."""
        masks = self.small_masks[ids].astype(np.int64)
        return np.where(masks == self.ignore, -1, masks).reshape(-1)

    def report_fold(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        """masks.png (six validation images: the image, its truth, the prediction) and confusion.png (pixels)."""
        self._overlay(out / "masks.png", list(ids), probs)
        plot_matrix(out / "confusion.png", self.confusion(ids, probs), self.classes)
