"""Stage 2's input: crops around each disc level, sampled in patient (LPS) millimetres from the series' own stacks.

A crop lies on one slice of a stack, centred on the projection of a level point, with its axes fixed in the patient
(sagittal: columns posterior, rows inferior; axial: columns towards the patient's left, rows posterior), so crops
from differently oriented or angled stacks look alike and a left-right flip of an axial crop is a true mirror.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import map_coordinates

from kit.data.dicom import Series

from .layout import LEVELS
from .levels import nearest_slice

# (in-plane axis the crop's columns follow, the one its rows follow) per plane, as LPS directions
CROP_AXES = {
    "sagittal": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])),
    "axial": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])),
}
CROP_KINDS = ("spinal", "left_foramen", "right_foramen", "axial")  # per level, in the model's order
DEFAULT_LEVEL_GAP_MM = 30.0


def in_plane_axes(stack: Series) -> tuple[np.ndarray, np.ndarray]:
    """The stack's row and column directions, matched to its plane's crop axes and signed like them."""
    want_u, want_v = CROP_AXES["axial" if stack.plane == "axial" else "sagittal"]
    dirs = [stack.orientation[:3], stack.orientation[3:]]
    u = max(dirs, key=lambda d: abs(d @ want_u))
    v = dirs[1] if u is dirs[0] else dirs[0]
    return u * np.sign(u @ want_u or 1.0), v * np.sign(v @ want_v or 1.0)


def intensity_range(stack: Series) -> tuple[float, float]:
    low, high = np.percentile(stack.pixels, [0.5, 99.5])
    return float(low), float(max(high, low + 1e-6))


def plane_crop(stack: Series, index: int, centre: np.ndarray, side_mm: float, size: int,
               scale: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """(size, size) float32 in [0, 1]: slice `index` of the stack around the point's projection on it, `side_mm`
    across; outside the image is 0."""
    u, v = in_plane_axes(stack)
    offsets = (np.arange(size) + 0.5) / size * side_mm - side_mm / 2
    world = centre + offsets[None, :, None] * u + offsets[:, None, None] * v
    relative = world - stack.voxel_to_lps(index, 0.0, 0.0)
    rows = relative @ stack.orientation[3:] / stack.pixel_spacing[0]
    cols = relative @ stack.orientation[:3] / stack.pixel_spacing[1]
    pixels = map_coordinates(stack.pixels[index], [rows, cols], order=1, mode="constant", cval=np.nan)
    low, high = scale
    return np.nan_to_num(np.clip((pixels - low) / (high - low), 0.0, 1.0), nan=0.0).astype(np.float32)


def slab(stack: Series, index: float, slices: int) -> list[int]:
    """`slices` neighbouring slice indices around `index`, clipped to the stack (an end slice repeats)."""
    centre = int(round(index))
    return [int(np.clip(centre + k - slices // 2, 0, len(stack.positions) - 1)) for k in range(slices)]


def stack_crops(stack: Series | None, index: float | None, centre: np.ndarray, side_mm: float, size: int,
                slices: int, scale) -> np.ndarray:  # fmt: skip
    if stack is None or index is None or not np.isfinite(centre).all():
        return np.zeros((slices, size, size), dtype=np.float32)
    return np.stack([plane_crop(stack, i, centre, side_mm, size, scale) for i in slab(stack, index, slices)])


def level_gap(level_points: np.ndarray) -> float:
    """Median distance between neighbouring levels' points (mm): the scale of the crops."""
    steps = np.linalg.norm(np.diff(level_points, axis=0), axis=1)
    steps = steps[np.isfinite(steps)]
    return float(np.median(steps)) if len(steps) else DEFAULT_LEVEL_GAP_MM


def slice_index(stack: Series, point: np.ndarray) -> float | None:
    if stack is None or not np.isfinite(point).all():
        return None
    index = float(stack.lps_to_voxel(point)[0])
    return index if -0.5 <= index <= len(stack.positions) - 0.5 else None


def study_crops(views: dict[str, list[Series]], points: np.ndarray, size: int, slices: int,
                scales: Sequence[float]) -> np.ndarray:  # fmt: skip
    """(levels, crop kinds, slices, size, size) float16 for one study: per level a Sagittal T2 slab through the
    canal point, Sagittal T1 slabs through the left and right foramen points, and the axial slab nearest the canal
    point over every axial stack. points: (15, 3) LPS of the five canal points, then the left and the right foramina
    (NaN where unknown); scales: each kind's crop side as a multiple of the distance between levels."""
    gap = level_gap(points[: len(LEVELS)])
    sag_t2 = views.get("sag_t2", [None])[0]
    sag_t1 = views.get("sag_t1", [None])[0]
    axial = views.get("axial_t2", [])
    ranges = {id(s): intensity_range(s) for s in (sag_t2, sag_t1, *axial) if s is not None}
    out = np.zeros((len(LEVELS), len(CROP_KINDS), slices, size, size), dtype=np.float16)
    for level in range(len(LEVELS)):
        canal = points[level]
        foramina = points[len(LEVELS) + level], points[2 * len(LEVELS) + level]
        sources = [(sag_t2, canal), (sag_t1, foramina[0]), (sag_t1, foramina[1])]
        for kind, (stack, point) in enumerate(sources):
            side = scales[kind] * gap
            index = slice_index(stack, point)
            out[level, kind] = stack_crops(stack, index, point, side, size, slices, ranges.get(id(stack)))
        hit = nearest_slice(canal, axial) if axial and np.isfinite(canal).all() else None
        if hit is not None:
            stack = axial[hit.stack]
            out[level, 3] = stack_crops(stack, hit.slice, canal, scales[3] * gap, size, slices, ranges[id(stack)])
    return out
