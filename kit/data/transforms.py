"""MONAI preprocessing of a study: read each view's DICOM series, orient it, resample it to a fixed size, scale it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CastToTyped,
    Compose,
    Orientationd,
    Resized,
    ScaleIntensityRangePercentilesd,
    Transform,
)

from kit.data.dicom import merge_series, read_series

RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class MissingViewWarning(UserWarning):
    pass


class LoadViewsd(Transform):
    """item['series'][view] (series folders) -> item[view], a (1, slices, rows, columns) MetaTensor with its RAS
    affine, and item['present'][view]; a view with no series is filled with zeros and a warning names the study."""

    def __init__(self, views: Sequence[str], fill_shape: Mapping[str, Sequence[int]]):
        self.views = tuple(views)
        self.fill_shape = {view: tuple(fill_shape[view]) for view in self.views}

    def __call__(self, item: dict) -> dict:
        out = dict(item)
        out["present"] = {}
        for view in self.views:
            folders = item.get("series", {}).get(view, [])
            if folders:
                series = merge_series([read_series(folder) for folder in folders])
                volume = MetaTensor(torch.from_numpy(series.pixels[None]), affine=torch.from_numpy(series.affine_ras()))
            else:
                warnings.warn(
                    f"study {item.get('study_id')}: no {view} series; filled with zeros",
                    MissingViewWarning,
                    stacklevel=2,
                )
                volume = MetaTensor(torch.zeros((1, *self.fill_shape[view])), affine=torch.eye(4, dtype=torch.float64))
            out[view] = volume
            out["present"][view] = bool(folders)
        return out


def study_preprocess(
    views: Sequence[str], size: Mapping[str, Sequence[int]], axcodes: Mapping[str, str], dtype=np.float16
) -> Compose:
    """Deterministic per-study preprocessing, cacheable on disk: read, orient, resample to size[view] = (slices, H, W),
    scale intensities to [0, 1] between the 0.5th and 99.5th percentiles, and store compactly."""
    steps: list = [LoadViewsd(views, size)]
    steps += [Orientationd(keys=view, axcodes=axcodes[view], labels=RAS_LABELS) for view in views]
    steps += [
        Resized(keys=view, spatial_size=tuple(size[view]), mode="trilinear", anti_aliasing=True) for view in views
    ]
    steps += [
        ScaleIntensityRangePercentilesd(keys=list(views), lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
        CastToTyped(keys=list(views), dtype=dtype),
    ]
    return Compose(steps)
