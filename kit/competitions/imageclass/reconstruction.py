"""Fold training of an autoencoder (model.name=autoencoder) on a family dataset: the target is the (augmented,
normalised) image itself, the loss and metric its mean squared error, the prior baseline the mean training image.
The OOF keeps each validation image's error; each improved epoch draws inputs, reconstructions and the encoder's
activation maps side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from kit.errors import KitError
from kit.io import atomic_path

from .training import MEAN_STD, Images, augmentation


class Reconstruction:
    """Mixed in before a dataset's training class."""

    metric_name = "mse"
    metric_mode = "min"
    loss_kind = "reconstruction"
    pictures = 8

    def __init__(self, cfg: dict, data_dir: Path):
        super().__init__(cfg, data_dir)
        self.num_outputs = self.in_channels

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> Images:
        augment = augmentation(augment_seed) if augment_seed is not None else None
        return Images(self.images[ids], self.labels[ids], ids, self.in_channels, augment, reconstruct=True)

    def loss(self) -> nn.Module:
        return self.loss_from({"name": "mse"})

    def targets(self, ids: list[int]) -> np.ndarray:
        mean, std = (np.asarray(v, np.float32)[:, None, None] for v in MEAN_STD[self.in_channels])
        return (self.images[ids].transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - mean) / std

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().cpu().numpy()

    def per_image_error(self, ids: list[int], reconstructions: np.ndarray) -> np.ndarray:
        return ((np.asarray(reconstructions) - self.targets(ids)) ** 2).mean(axis=(1, 2, 3))

    def evaluate(self, ids: list[int], reconstructions: np.ndarray) -> dict[str, float]:
        return {"mse": float(self.per_image_error(ids, reconstructions).mean())}

    def prior(self, ids: list[int]) -> np.ndarray:
        """The mean training image: the trivial reconstruction every image is compared with."""
        return self.targets(ids).mean(axis=0)

    def save_predictions(self, path: Path, ids: list[int], reconstructions: np.ndarray) -> Path:
        frame = pd.DataFrame({"id": [self.keys[i] for i in ids], "mse": self.per_image_error(ids, reconstructions)})
        with atomic_path(Path(path)) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        return Path(path)

    def load_predictions(self, path: Path):
        raise KitError(f"{path}: an autoencoder's OOF holds each image's error, not predictions to merge or stack")

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        raise KitError("an autoencoder makes no submission")

    def report_fold(self, out: Path, ids: list[int], reconstructions: np.ndarray) -> None:
        """reconstructions.png: input, reconstruction and the encoder's activation map for the first images."""
        from kit.report.panels import save_panels
        from kit.runtime import checkpoint
        from kit.runtime.inference import build_model

        picked = list(range(min(self.pictures, len(ids))))
        model = build_model(self.cfg, self)
        model.load_state_dict(checkpoint.load(out / "model_best.pt")["model"])
        model.eval()
        inputs = torch.from_numpy(self.targets([ids[k] for k in picked]))
        maps = model.activations(inputs).numpy()
        mean, std = (np.asarray(v, np.float32)[:, None, None] for v in MEAN_STD[self.in_channels])
        panels = []
        for k in picked:
            original = self.images[ids[k]]
            rebuilt = np.clip((reconstructions[k] * std + mean) * 255, 0, 255).astype(np.uint8).transpose(1, 2, 0)
            error = float(self.per_image_error([ids[k]], reconstructions[k : k + 1])[0])
            panels += [
                (_displayable(original), f"input {self.keys[ids[k]][-18:]}"),
                (_displayable(rebuilt), f"reconstruction, mse {error:.3f}"),
                (maps[k], "encoder activation (stride 8)"),
            ]
        save_panels(out / "reconstructions.png", panels, "validation images", columns=3)


def _displayable(image: np.ndarray) -> np.ndarray:
    return image[..., 0] if image.shape[-1] == 1 else image


def reconstruction_class(training_class: type) -> type:
    return type(f"{training_class.__name__}Reconstruction", (Reconstruction, training_class), {})
