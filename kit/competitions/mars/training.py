"""What fold training needs from Mars: images and masks as tensors, focal(+Dice) loss, mean IoU, OOF as arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandFlipd,
    RandGaussianNoised,
    RandRotated,
    RandScaleIntensityd,
    RandZoomd,
)
from torch import nn
from torch.utils.data import Dataset

from kit.competitions.parts import Explaining, FoldReport, FoldTraining, Oracle
from kit.competitions.pixel_stacking import PixelStacking
from kit.errors import DataError
from kit.io import atomic_path
from kit.report.masks import plot_masks
from kit.schema import Data

from . import data, metric, submission
from .layout import BIG_ROCK, CLASSES, HEIGHT, NUM_CLASSES, ORACLE_FILE, WIDTH


class MarsImages(Dataset):
    """{'image': (1, 64, 128) float32 in [0, 1], 'target': (64, 128) long, 'id': index in its npz array}."""

    def __init__(self, images: np.ndarray, masks: np.ndarray | None, ids: list[int], augment=None):
        self.images, self.masks, self.ids, self.augment = images, masks, ids, augment

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        item = {"image": torch.from_numpy(self.images[index][None] / 255.0).float()}
        mask = self.masks[index] if self.masks is not None else np.full(self.images[index].shape, -1)
        item["mask"] = torch.from_numpy(mask[None].astype(np.float32))
        if self.augment is not None:
            item = self.augment(item)
        image = torch.as_tensor(np.asarray(item["image"]), dtype=torch.float32)
        target = torch.as_tensor(np.asarray(item["mask"]))[0].round().long()
        return {"image": image, "target": target, "id": self.ids[index]}


def augmentation(seed: int) -> Compose:
    """The same geometry for image and mask (nearest for the mask), intensity changes for the image only."""
    keys, modes = ["image", "mask"], ("bilinear", "nearest")
    augment = Compose(
        [
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandRotated(keys, range_x=0.25, prob=0.4, mode=modes, padding_mode="reflection"),
            RandZoomd(keys, prob=0.4, min_zoom=0.9, max_zoom=1.25, mode=("bilinear", "nearest-exact")),
            RandScaleIntensityd("image", factors=0.2, prob=0.5),
            RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
            RandGaussianNoised("image", prob=0.3, std=0.02),
        ]
    )
    augment.set_random_state(seed=seed)
    return augment


class MarsTraining(FoldTraining, FoldReport, Explaining, PixelStacking, Oracle):
    loss_kind = "mars"
    metric_name = "score"
    metric_mode = "max"
    oof_file = "oof.npz"
    in_channels = 1
    pixel_classes = CLASSES
    pixel_grid = (HEIGHT, WIDTH)
    num_outputs = NUM_CLASSES

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.data = data.load(self.data_dir)
        self.position = {int(i): p for p, i in enumerate(self.data.ids)}
        if self.data.removed.size:
            print(f"mars: removed {self.data.removed.size} outlier training images sharing one mask")

    def ids(self, split: str) -> list[int]:
        return [int(i) for i in self.data.ids] if split == "train" else list(range(len(self.data.test)))

    def masks(self, ids: list[int]) -> np.ndarray:
        return self.data.masks[[self.position[i] for i in ids]]

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> MarsImages:
        if split == "test":
            return MarsImages(self.data.test[ids], None, ids)
        if augment_seed is not None:  # training: repeat the images that hold big rock
            repeat = Data.check(self.cfg["data"]).oversample_big_rock
            has_rock = (self.masks(ids) == BIG_ROCK).any(axis=(1, 2))
            ids = [i for i, rock in zip(ids, has_rock, strict=True) for _ in range(repeat if rock else 1)]
        positions = [self.position[i] for i in ids]
        augment = augmentation(augment_seed) if augment_seed is not None else None
        return MarsImages(self.data.images[positions], self.data.masks[positions], ids, augment)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().softmax(dim=1).cpu().numpy()

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        return metric.mean_iou(self.masks(ids), metric.predict_labels(np.asarray(probs)))

    def oracle(self, ids: list[int]) -> np.ndarray | None:
        """oracle.npz's true class probabilities (kit synth writes it) of training images `ids`."""
        path = self.data_dir / ORACLE_FILE
        if not path.exists():
            return None
        with np.load(path) as saved:
            probabilities = saved["probabilities"]
        images = len(self.data.ids) + len(self.data.removed)
        if probabilities.shape != (images, NUM_CLASSES, HEIGHT, WIDTH):
            raise DataError(f"{path}: probabilities of shape {probabilities.shape}, but training_set has {images} "
                            "images; regenerate both with kit synth mars")  # fmt: skip
        chosen = probabilities[ids].astype(np.float32)  # stored as probability × 255
        return chosen / chosen.sum(axis=1, keepdims=True)

    def prior(self, ids: list[int]) -> np.ndarray:
        """Per-pixel class frequencies over the training masks: (5, 64, 128)."""
        masks = self.masks(ids)
        counts = np.stack([(masks == c).sum(axis=0) for c in range(NUM_CLASSES)]) + 1.0
        return counts / counts.sum(axis=0, keepdims=True)

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """Per-pixel class probabilities as float16, keyed by image index."""
        with atomic_path(Path(path)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, ids=np.asarray(ids, dtype=np.int64), probs=np.asarray(probs, dtype=np.float16))
        return Path(path)

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        with np.load(path) as saved:
            if set(saved.files) != {"ids", "probs"}:
                raise DataError(f"{path}: expected arrays ids and probs, found {sorted(saved.files)}")
            return saved["ids"].tolist(), saved["probs"].astype(np.float32)

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        if list(ids) != list(range(len(self.data.test))):
            raise DataError(f"{path}: predictions must cover test_set in order ({len(self.data.test)} images)")
        return submission.write_submission(path, metric.predict_labels(np.asarray(probs)))

    def report_fold(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        chosen = list(range(min(6, len(ids))))
        picked = [ids[k] for k in chosen]
        images = self.data.images[[self.position[i] for i in picked]]
        pred = metric.predict_labels(np.asarray(probs)[chosen])
        plot_masks(out / "masks.png", images, self.masks(picked), pred, picked, CLASSES, ignore_class=0)

    def explain(self, model: nn.Module, out: Path, ids: list[int], probs: np.ndarray, images: int = 3) -> list[Path]:
        """Per validation image (most big rock first): the image, its true mask, and per terrain class the Grad-CAM
        of that class's logits over the pixels predicted as it, on the model's bottleneck (widest context)."""
        from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

        from kit.report.gradcam import bottleneck_layer, grad_cams, overlay
        from kit.report.panels import save_panels

        masks = self.masks(ids)
        order = np.argsort(-(masks == BIG_ROCK).sum(axis=(1, 2)), kind="stable")[:images]
        dataset = self.dataset([ids[k] for k in order], "train")
        written = []
        for row, k in enumerate(order):
            image = dataset[row]["image"][None]
            predicted = np.asarray(probs[k]).argmax(axis=0)
            picture = (self.data.images[self.position[ids[k]]][..., None]).astype(np.uint8)
            panels = [(picture[..., 0], f"image {ids[k]}"), (masks[k], "true mask (0-4)")]
            layer = bottleneck_layer(model, image)
            for c in range(1, NUM_CLASSES):
                region = (predicted == c).astype(np.float32)
                if not region.any():
                    panels.append((picture[..., 0], f"{CLASSES[c]}: not predicted"))
                    continue
                cam = grad_cams(model, image, [SemanticSegmentationTarget(c, region)], layer)[0]
                panels.append((overlay(picture, cam), f"{CLASSES[c]}: {int(region.sum())} px predicted"))
            written.append(save_panels(out / f"gradcam_image{ids[k]}.png", panels, f"image {ids[k]}", columns=3))
        return written

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        return self.masks(ids).reshape(-1)
