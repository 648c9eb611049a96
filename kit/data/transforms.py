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

from kit.data.dicom import Series, merge_series, read_view
from kit.errors import DataError

RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class MissingViewWarning(UserWarning):
    pass


class LoadViewsd(Transform):
    """item['series'][view] (series folders) -> item[view], a (1, slices, rows, columns) MetaTensor with its RAS
    affine, and item['present'][view]; a view with no series is filled with zeros and a warning names the study.
    Labelled points item['points'][view] (rows [channel, series_id, instance_number, x, y]) become RAS millimetres
    in item['points_ras'][view] (rows [channel, R, A, S]); a point on a slice the series lacks is dropped."""

    def __init__(self, views: Sequence[str], fill_shape: Mapping[str, Sequence[int]]):
        self.views = tuple(views)
        self.fill_shape = {view: tuple(fill_shape[view]) for view in self.views}

    def __call__(self, item: dict) -> dict:
        out = dict(item)
        out["present"] = {}
        for view in self.views:
            folders = item.get("series", {}).get(view, [])
            if folders:
                stacks = [stack for folder in folders for stack in read_view(folder)]
                out.setdefault("points_ras", {})[view] = points_to_ras(stacks, item.get("points", {}).get(view, []))
                series = merge_series(volume_stacks(stacks))
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


def volume_stacks(stacks: Sequence[Series]) -> list[Series]:
    """The stacks that make a view's volume: every axial stack (several stacks or series cover different discs), but
    only the first series of a sagittal or coronal view (a second sagittal series repeats the same anatomy, and
    merging would interleave the two)."""
    if stacks[0].plane == "axial":
        return list(stacks)
    return [s for s in stacks if s.folder == stacks[0].folder]


def require_inside(series: Series, instance: int, x: float, y: float) -> None:
    """A labelled pixel (x = column, y = row) outside its image is an error naming the series folder."""
    height, width = series.pixels.shape[1:]
    if not (0 <= x < width and 0 <= y < height):
        raise DataError(f"{series.folder}: the labelled point x={x:g}, y={y:g} on instance {instance} lies outside its "
                        f"{width}x{height} image (train_label_coordinates.csv)")  # fmt: skip


def points_to_ras(stacks: Sequence[Series], points: Sequence[Sequence[float]]) -> np.ndarray:
    """[channel, series_id, instance_number, x (column), y (row)] rows -> [channel, R, A, S] rows."""
    rows = []
    for channel, series_id, instance, x, y in points:
        for series in stacks:  # a series folder may hold several stacks; the point lies on one of them
            ras = series.pixel_to_ras(int(instance), x, y) if series.folder.name == str(int(series_id)) else None
            if ras is not None:
                require_inside(series, int(instance), x, y)
                rows.append([channel, *ras])
                break
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


class ProjectPointsd(Transform):
    """item['points_ras'][view] -> item['points'][view]: rows [channel, slice, row, column] in the voxel grid of
    item[view] as it is now (after orientation and resizing), through the inverse of its affine."""

    def __init__(self, views: Sequence[str]):
        self.views = tuple(views)

    def __call__(self, item: dict) -> dict:
        out = dict(item)
        ras = out.pop("points_ras", {})
        out["points"] = {}
        for view in self.views:
            world = ras.get(view, np.zeros((0, 4)))
            inverse = np.linalg.inv(np.asarray(item[view].affine, dtype=np.float64))
            voxels = (inverse[:3, :3] @ world[:, 1:].T).T + inverse[:3, 3]
            out["points"][view] = np.concatenate([world[:, :1], voxels], axis=1).astype(np.float32)
        return out


def study_preprocess(
    views: Sequence[str], size: Mapping[str, Sequence[int]], axcodes: Mapping[str, str], dtype=np.float16
) -> Compose:
    """Deterministic per-study preprocessing, cacheable on disk: read, orient, resample to size[view] = (slices, H, W),
    scale intensities to [0, 1] between the 0.5th and 99.5th percentiles, store compactly, and project labelled
    points into the final grid."""
    steps: list = [LoadViewsd(views, size)]
    steps += [Orientationd(keys=view, axcodes=axcodes[view], labels=RAS_LABELS) for view in views]
    steps += [
        Resized(keys=view, spatial_size=tuple(size[view]), mode="trilinear", anti_aliasing=True) for view in views
    ]
    steps += [
        ScaleIntensityRangePercentilesd(keys=list(views), lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True),
        CastToTyped(keys=list(views), dtype=dtype),
        ProjectPointsd(views),
    ]
    return Compose(steps)
