"""Grad-CAM for any classifier (the grad-cam package), on the last layer whose output is still a feature map."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def feature_maps(model: nn.Module, sample: torch.Tensor) -> list[tuple[nn.Module, tuple[int, int]]]:
    """Every module's (N, C, H, W) output with H, W > 1 in one forward pass, in the order the modules finished."""
    found: list[tuple[nn.Module, tuple[int, int]]] = []

    def record(module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.ndim == 4 and min(output.shape[-2:]) > 1:
            found.append((module, tuple(output.shape[-2:])))

    handles = [m.register_forward_hook(record) for m in model.modules() if m is not model]
    try:
        with torch.no_grad():
            model(sample)
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError(f"{type(model).__name__} has no layer with a spatial feature map for Grad-CAM")
    return found


def last_feature_map_layer(model: nn.Module, sample: torch.Tensor) -> nn.Module:
    """The module that outputs the last map of at least 4×4 (else the last bigger than 1×1): a timm stage, the seed
    head's SE block, or a from-scratch CNN's last block, without naming layers per architecture. A 2×2 map (ResNet's
    last stage at 64 px) would only say which quadrant."""
    found = feature_maps(model, sample)
    fine = [module for module, shape in found if min(shape) >= 4]
    return (fine or [module for module, _ in found])[-1]


def bottleneck_layer(model: nn.Module, sample: torch.Tensor) -> nn.Module:
    """A segmenter's widest-context map: the smallest feature map of at least 4×4, the last such in a forward pass
    (the last one of any size would be the per-pixel output itself)."""
    found = [(shape[0] * shape[1], -k, module) for k, (module, shape) in enumerate(feature_maps(model, sample))
             if min(shape) >= 4]  # fmt: skip
    if not found:
        raise ValueError(f"{type(model).__name__} has no feature map of at least 4×4 for Grad-CAM")
    return min(found, key=lambda item: (item[0], item[1]))[2]


def grad_cams(model: nn.Module, images: torch.Tensor, targets: list, layer: nn.Module | None = None) -> np.ndarray:
    """(n, H, W) class-activation maps in [0, 1]: per image an output index, or a grad-cam target object."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = layer or last_feature_map_layer(model, images[:1])
    targets = [ClassifierOutputTarget(int(t)) if isinstance(t, int | np.integer) else t for t in targets]
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=images, targets=targets)


def overlay(image: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """An (H, W, 1|3) uint8 image with the map laid over it, as (H, W, 3) uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rgb = np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image
    return show_cam_on_image(rgb.astype(np.float32) / 255.0, cam, use_rgb=True, image_weight=0.6)
