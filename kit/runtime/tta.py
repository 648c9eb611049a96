"""Test-time augmentation: a model's logits averaged over views of its input — the image and its horizontal flip
(`flip`), or the eight orientations of the dihedral group (`dihedral`, for data with no up such as cells under a
microscope) — each output map turned back to the input's orientation before the mean."""

from __future__ import annotations

import torch

# mode -> its views as (quarter turns, mirrored first)
VIEWS = {
    "none": [(0, False)],
    "flip": [(0, False), (0, True)],
    "dihedral": [(turns, mirrored) for mirrored in (False, True) for turns in range(4)],
}


def mode_of(setting: bool | str) -> str:
    """trainer.tta as a mode: true is the flip, false none."""
    if isinstance(setting, bool):
        return "flip" if setting else "none"
    return setting


def logits_of(out) -> torch.Tensor:
    """The prediction a model returns: its tensor, or out['logits'] for models that also return auxiliary heads."""
    return out["logits"] if isinstance(out, dict) else out


def view(x: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    return torch.rot90(x.flip(-1) if mirrored else x, turns, dims=(-2, -1))


def unview(y: torch.Tensor, turns: int, mirrored: bool) -> torch.Tensor:
    y = torch.rot90(y, -turns, dims=(-2, -1))
    return y.flip(-1) if mirrored else y


def averaged(model, image: torch.Tensor, mode: str):
    """The model's output on the image under `mode`: as the model returns it for `none`, else the mean logits."""
    if mode == "none":
        return model(image)
    total = None
    for turns, mirrored in VIEWS[mode]:
        out = logits_of(model(view(image, turns, mirrored)))
        out = unview(out, turns, mirrored) if out.ndim == 4 else out
        total = out if total is None else total + out
    return total / len(VIEWS[mode])
