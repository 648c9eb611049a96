"""What stage 1 found in a study, drawn for a person: its points on the sagittal slices through them, and per level
the four crops stage 2 reads (canal, left and right foramen, the axial slice nearest the canal point). A localiser
that missed the spine shows at a glance: points off the column, crops of muscle or air."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kit.data.dicom import Series
from kit.report.panels import save_panels

from .crops import CROP_KINDS, intensity_range, slice_index, study_crops
from .layout import LEVELS

COLOURS = np.array([[230, 25, 75], [245, 130, 48], [255, 225, 25], [60, 180, 75], [0, 130, 200]], np.uint8)  # levels


def _grey(stack: Series, index: int) -> np.ndarray:
    low, high = intensity_range(stack)
    image = np.clip((stack.pixels[index] - low) / max(high - low, 1e-6), 0, 1)
    return np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=2)


def marked_slice(stack: Series, points: np.ndarray) -> tuple[np.ndarray, int]:
    """The stack's slice nearest the points' median depth, each finite point a square in its level's colour."""
    finite = points[np.isfinite(points).all(axis=1)]
    index = int(round(slice_index(stack, np.median(finite, axis=0)))) if len(finite) else len(stack.positions) // 2
    image = _grey(stack, index)
    half = max(2, image.shape[0] // 100)
    for level, point in enumerate(points):
        if np.isfinite(point).all():
            _, row, col = (int(round(v)) for v in stack.lps_to_voxel(point))
            image[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1] = COLOURS[level]
    return image, index


def stage_one_picture(out: Path, study_id: int, views: dict[str, list[Series | None]], points: np.ndarray,
                      size: int, scales: list[float]) -> Path:  # fmt: skip
    """views as the crops read them ({"sag_t2": [stack or None], "sag_t1": [...], "axial_t2": [stacks]}); points:
    (15, 3) LPS, the five canal points then the left and the right foramina."""
    n = len(LEVELS)
    panels = []
    for view, rows, name in (("sag_t2", slice(0, n), "canal"), ("sag_t1", slice(n, 2 * n), "left foramina"),
                             ("sag_t1", slice(2 * n, 3 * n), "right foramina")):  # fmt: skip
        stack = views.get(view, [None])[0]
        if stack is None:
            panels.append((np.zeros((8, 8)), f"{view}: absent"))
            continue
        image, index = marked_slice(stack, points[rows])
        panels.append((image, f"{name} on {view} slice {index + 1}/{len(stack.positions)}"))
    panels.append((np.zeros((8, 8)), "levels: " + ", ".join(LEVELS)))
    crops = study_crops(views, points, size, 1, scales)
    for level, name in enumerate(LEVELS):
        for kind, kind_name in enumerate(CROP_KINDS):
            panels.append((crops[level, kind, 0].astype(np.float32), f"{name} {kind_name}"))
    return save_panels(out, panels, f"study {study_id}: stage 1's points and the crops stage 2 reads", columns=4)
