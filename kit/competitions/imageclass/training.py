"""What fold training needs from a single-label image dataset: images as tensors, cross-entropy (label smoothing,
class-balanced weights) or the fused focal loss, the dataset's ranking metric, OOF and test predictions as CSV."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from monai.transforms import Compose, RandFlipd, RandGaussianNoised, RandRotate90d, RandRotated, RandZoomd
from PIL import Image
from torch import nn
from torch.utils.data import Dataset

from kit.competitions.parts import Explaining, FoldReport, FoldTraining, Stacking
from kit.data.decoded import decoded
from kit.errors import DataError, KitError
from kit.io import atomic_path
from kit.models import pretrained
from kit.report.confusion import plot_confusion
from kit.schema import Data
from kit.schema import trainer as settings

from .duplicates import read_clean
from .layouts import Samples, Split, fit_array, load_image
from .metrics import classification_scores

MEAN_STD = {1: ([0.5], [0.25]), 3: ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}  # ImageNet's for colour


class Images(Dataset):
    """{'image': (C, S, S) float32 normalised, 'target': class index (-1 unknown), 'id': sample id}."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, ids: list[int], channels: int, augment=None,
                 randaugment=None, reconstruct: bool = False, mean_std: tuple | None = None,
                 rows: list[int] | None = None):  # fmt: skip
        """images and labels aligned with ids, or, with `rows`, whole arrays read at those rows one sample at a time
        (a memory-mapped cache is then never copied whole before the first batch)."""
        self.images, self.labels, self.ids, self.augment, self.randaugment = images, labels, ids, augment, randaugment
        self.rows = list(range(len(ids))) if rows is None else list(rows)
        self.reconstruct = reconstruct  # the target is the normalised image itself (autoencoders)
        mean, std = mean_std or MEAN_STD[channels]
        self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        row = self.rows[index]
        array = np.array(self.images[row])  # a copy: the cache is memory-mapped read-only
        if self.randaugment is not None:
            picture = self.randaugment(Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array))
            array = np.array(picture, dtype=np.uint8).reshape(array.shape)
        image = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float() / 255.0
        if self.augment is not None:
            image = torch.as_tensor(np.asarray(self.augment({"image": image})["image"]), dtype=torch.float32)
        image = (image - self.mean) / self.std
        target = image if self.reconstruct else int(self.labels[row])
        return {"image": image, "target": target, "id": self.ids[index]}


def mean_std(cfg: dict, channels: int) -> tuple[list[float], list[float]]:
    """The run's normalisation: its pretrained weights' own (recorded in model.weights), else the kit's default."""
    return pretrained.normalisation(cfg.get("model") or {}, channels, MEAN_STD[channels])


def augmentation(seed: int, any_orientation: bool = False) -> Compose:
    """Flips, small rotations, zoom and noise; `any_orientation` (microscopy: a cell has no up) adds vertical flips and
    quarter turns, each of the eight orientations equally likely."""
    turns = [RandFlipd("image", prob=0.5, spatial_axis=0), RandRotate90d("image", prob=0.75, max_k=3)]
    augment = Compose(
        [
            RandFlipd("image", prob=0.5, spatial_axis=1),
            *(turns if any_orientation else []),
            RandRotated("image", range_x=0.26, prob=0.3, padding_mode="reflection"),
            RandZoomd("image", prob=0.3, min_zoom=0.9, max_zoom=1.15),
            RandGaussianNoised("image", prob=0.2, std=0.02),
        ]
    )
    augment.set_random_state(seed=seed)
    return augment


def randaugment(spec: str | None, channels: int):
    """timm's RandAugment on the uint8 picture (before the MONAI transforms); spec as timm writes it, e.g.
    rand-m9-n2-mstd0.5 (magnitude 9, 2 ops per image, magnitude noise 0.5)."""
    if not spec:
        return None
    from timm.data.auto_augment import rand_augment_transform

    fill = 128 if channels == 1 else tuple(round(255 * m) for m in MEAN_STD[3][0])
    try:
        return rand_augment_transform(spec, {"img_mean": fill})
    except (AssertionError, ValueError, KeyError, IndexError) as exc:
        raise KitError(
            f"trainer.randaugment={spec!r}: not a timm RandAugment string (e.g. rand-m9-n2-mstd0.5)"
        ) from exc


class ImageTraining(FoldTraining, FoldReport, Explaining, Stacking):
    """Sample ids: 0..n_train-1 the labelled samples, then the test split's, so one id never names two images."""

    spec: ClassVar[dict]
    loss_kind = "image_classification"
    metric_mode = "max"
    oof_file = "oof.csv"
    rows_per_sample = 1
    meta_params = {"learning_rate": 0.05, "n_estimators": 200, "num_leaves": 15, "min_child_samples": 20}
    meta_inner_cv = True

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.samples: Samples = read_clean(self.data_dir, self.spec)[0]
        self.classes = self.samples.classes
        self.num_outputs = self.meta_classes = len(self.classes)
        self.in_channels = int(self.spec["channels"])
        self.size = int(cfg["data"]["size"])
        self.interpolation = pretrained.interpolation(cfg.get("model") or {})
        self.fit = Data.check(cfg["data"]).fit
        self.n_train = len(self.samples.train.keys)
        self.keys = self.samples.train.keys + self.samples.test.keys
        test_labels = self.samples.test.labels
        unknown = np.full(len(self.samples.test.keys), -1, dtype=np.int64)
        self.labels = np.concatenate([self.samples.train.labels, unknown if test_labels is None else test_labels])
        self._test_labelled = test_labels is not None and len(test_labels) > 0

    @cached_property
    def images(self) -> np.ndarray:
        """Every sample at data.size × data.size, (n, S, S, C) uint8, decoded once (memory-mapped from the cache
        where one split alone is files: it is read sample by sample, not copied)."""
        train, test = self._decode(self.samples.train, "train"), self._decode(self.samples.test, "test")
        return train if not len(test) else test if not len(train) else np.concatenate([train, test])

    def _decode(self, split: Split, name: str) -> np.ndarray:
        empty = np.empty((0, self.size, self.size, self.in_channels), np.uint8)
        size, channels, interpolation, fit = self.size, self.in_channels, self.interpolation, self.fit
        if split.arrays is not None:
            arrays = split.arrays if split.arrays.ndim == 4 else split.arrays[..., None]
            if arrays.shape[1:] == empty.shape[1:] and fit == "stretch":
                return arrays
            fitted = [fit_array(a, size, channels, interpolation, fit) for a in arrays]
        elif split.files:
            settings = {"reader": "imageclass", "size": size, "channels": channels, "interpolation": interpolation}
            if fit != "stretch":  # caches decoded before data.fit existed stay valid
                settings["fit"] = fit
            return decoded(split.files, empty.shape[1:], lambda p: load_image(p, size, channels, interpolation, fit),
                           settings, f"{name} images")  # fmt: skip
        else:
            fitted = []
        return np.stack(fitted) if fitted else empty

    def ids(self, split: str) -> list[int]:
        return list(range(self.n_train)) if split == "train" else list(range(self.n_train, len(self.keys)))

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> Images:
        orientation = bool(self.spec["any_orientation"])
        augment = augmentation(augment_seed, orientation) if augment_seed is not None else None
        extra = randaugment(settings(self.cfg["trainer"]).randaugment, self.in_channels) if augment else None
        return Images(self.images, self.labels, ids, self.in_channels, augment, extra,
                      mean_std=mean_std(self.cfg, self.in_channels), rows=ids)  # fmt: skip

    def loss(self) -> nn.Module:
        spec = dict(self.cfg["loss"])
        weights = spec.pop("class_weights", None)
        if weights == "balanced":
            counts = np.bincount(self.samples.train.labels, minlength=len(self.classes)).astype(np.float64)
            spec["weight"] = torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)), dtype=torch.float32)
        elif isinstance(weights, list):
            if len(weights) != len(self.classes):
                raise KitError(
                    f"config: loss.class_weights has {len(weights)} values for {len(self.classes)} classes "
                    f"({', '.join(self.classes)}); give one weight per class, in that order"
                )
            spec["weight"] = torch.tensor(weights, dtype=torch.float32)
        elif weights is not None:
            raise KitError(f"config: loss.class_weights={weights!r}; expected balanced, null or one number per class")
        return self.loss_from(spec)

    def test_labelled(self) -> bool:
        return self._test_labelled

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().softmax(dim=1).cpu().numpy()

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        labels = self.labels[np.asarray(ids, dtype=np.int64)]
        if (labels < 0).any():
            raise KitError("evaluate: some samples have no label (the test split of this dataset is unlabelled)")
        return classification_scores(labels, probs)

    def prior(self, ids: list[int]) -> np.ndarray:
        counts = np.bincount(self.labels[ids], minlength=len(self.classes)) + 1.0
        return counts / counts.sum()

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """id (path relative to data.dir, or array index), label (true class name; labelled samples only), then one
        probability column per class."""
        frame = pd.DataFrame({"id": [self.keys[i] for i in ids]})
        if all(i < self.n_train for i in ids):
            frame["label"] = [self.classes[k] for k in self.labels[ids]]
        frame[list(self.classes)] = np.asarray(probs, dtype=np.float64)
        with atomic_path(Path(path)) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        return Path(path)

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        frame = pd.read_csv(path, dtype={"id": str})
        missing = [c for c in ["id", *self.classes] if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no column(s) {', '.join(missing)}")
        train = "label" in frame.columns
        lookup = {key: (i if train else self.n_train + i) for i, key in
                  enumerate(self.samples.train.keys if train else self.samples.test.keys)}  # fmt: skip
        unknown = [k for k in frame["id"] if k not in lookup]
        if unknown:
            raise DataError(f"{path}: id {unknown[0]!r} is no sample of {self.data_dir} ({len(unknown)} such)")
        return [lookup[k] for k in frame["id"]], frame[list(self.classes)].to_numpy(np.float32)

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        if not ids:
            raise KitError(
                f"{self.data_dir}: this dataset has no test split to submit; its CV (task oof) is the figure"
            )
        frame = pd.DataFrame({"id": [self.keys[i] for i in ids]})
        frame["label"] = [self.classes[k] for k in np.asarray(probs).argmax(axis=1)]
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(path)) as tmp:
            frame.to_csv(tmp, index=False)
        return Path(path)

    def report_fold(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        plot_confusion(out / "confusion.png", self.labels[ids], np.asarray(probs).argmax(axis=1), self.classes)

    def explain(self, model: nn.Module, out: Path, ids: list[int], probs: np.ndarray, per_class: int = 2,
                max_classes: int = 12) -> list[Path]:  # fmt: skip
        """One PNG per class (the first max_classes): Grad-CAM of the predicted class on its most confident correct
        and wrong validation images."""
        from kit.report.gradcam import grad_cams, overlay
        from kit.report.panels import save_panels

        ids, probs = np.asarray(ids), np.asarray(probs)
        labels, predicted, confidence = self.labels[ids], probs.argmax(axis=1), probs.max(axis=1)
        written = []
        for c, name in enumerate(self.classes[:max_classes]):
            chosen = []
            for right in (True, False):
                rows = np.flatnonzero((labels == c) & ((predicted == c) == right))
                chosen += [(r, right) for r in rows[np.argsort(-confidence[rows])][:per_class]]
            if not chosen:
                continue
            picked = [int(ids[r]) for r, _ in chosen]
            batch = torch.stack([self.dataset(picked, "valid")[k]["image"] for k in range(len(picked))])
            cams = grad_cams(model, batch, [int(predicted[r]) for r, _ in chosen])
            panels = [
                (overlay(self.images[i], cam), f"{'right' if right else 'WRONG'}: {self.classes[predicted[r]]} "
                 f"{confidence[r]:.2f}")
                for i, cam, (r, right) in zip(picked, cams, chosen, strict=True)
            ]  # fmt: skip
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
            written.append(save_panels(out / f"gradcam_{c:03d}_{safe}.png", panels, f"true class {name}"))
        return written

    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame:
        columns = {}
        for name, probs in zip(model_names, probs_by_model, strict=True):
            for c, cls in enumerate(self.classes):
                columns[f"{name}__{cls}"] = np.asarray(probs, dtype=np.float32)[:, c]
        return pd.DataFrame(columns)

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        return self.labels[ids]

    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(probs)

    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        return row_probs.reshape(n_samples, len(self.classes))
