"""Codabench entry point written by the kit (`task package-codabench`); it becomes model.py in the zip.

It must run where nothing of the kit is installed: torch, numpy and Pillow only. Its model.pt2 (torch.export) holds
every trained fold with the kit's normalisation and flip TTA, and returns class probabilities."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
BATCH = 256


class Model:
    def __init__(self):
        self.meta = json.loads((HERE / "meta.json").read_text())
        self.program = torch.export.load(str(HERE / "model.pt2")).module()
        self.size, self.channels = int(self.meta["size"]), int(self.meta["channels"])

    def _fit(self, X) -> np.ndarray:
        """(n, H, W[, C]) images as (n, size, size, channels) uint8, resized and converted as the kit trained."""
        X = np.asarray(X)
        if X.ndim == 3:
            X = X[..., None]
        if X.ndim != 4 or X.shape[-1] not in (1, 3, 4):
            raise ValueError(f"X of shape {X.shape}; expected (n, H, W) or (n, H, W, 1|3|4) images")
        if X.dtype != np.uint8:
            scale = 255.0 if X.size and float(np.nanmax(X)) <= 1.0 else 1.0  # floats in [0, 1] or [0, 255]
            X = np.clip(np.nan_to_num(X.astype(np.float64) * scale), 0, 255).round().astype(np.uint8)
        if X.shape[1:] == (self.size, self.size, self.channels):
            return X
        mode = "L" if self.channels == 1 else "RGB"
        fitted, resample = [], getattr(Image.Resampling, self.meta.get("interpolation", "bilinear").upper())
        for image in X:
            picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert(mode)
            array = np.asarray(picture.resize((self.size, self.size), resample), dtype=np.uint8)
            fitted.append(array[..., None] if array.ndim == 2 else array)
        return np.stack(fitted) if fitted else np.zeros((0, self.size, self.size, self.channels), np.uint8)

    @torch.no_grad()
    def predict_proba(self, X) -> np.ndarray:
        X = self._fit(X)
        parts = [self.program(torch.from_numpy(X[i : i + BATCH]).float()).numpy() for i in range(0, len(X), BATCH)]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.meta["classes"])), np.float32)

    def predict(self, X) -> np.ndarray:
        """(n,) int64 class indices, in the order of meta.json's classes."""
        return self.predict_proba(X).argmax(axis=1).astype(np.int64)
