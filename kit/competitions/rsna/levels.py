"""Across series by world coordinates: a level's point found on a sagittal series picks the axial slice through that
disc (the first step of the two-stage recipe), whichever axial series or angled stack holds it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kit.data.dicom import Series
from kit.errors import DataError


@dataclass(frozen=True)
class SliceHit:
    stack: int  # index into the stacks searched
    slice: int  # index into that stack's slices (spatial order)
    instance_number: int | None
    distance_mm: float  # from the point to that slice's plane


def point_lps(stack: Series, instance_number: int, x: float, y: float) -> np.ndarray:
    """Patient (LPS) millimetres of pixel (x = column, y = row) on the slice with this InstanceNumber."""
    if instance_number not in stack.instance_numbers:
        raise DataError(f"{stack.folder}: no slice with InstanceNumber {instance_number}")
    return stack.voxel_to_lps(stack.instance_numbers.index(instance_number), y, x)


def nearest_slice(point: np.ndarray, stacks: list[Series]) -> SliceHit | None:
    """The slice, over every stack, whose plane passes nearest the point and whose image contains the point's
    projection; None when no image contains it."""
    best = None
    for k, stack in enumerate(stacks):
        depth = np.asarray(point) @ stack.normal
        distances = np.abs(stack.positions @ stack.normal - depth)
        i = int(np.argmin(distances))
        _, row, column = stack.lps_to_voxel(point)
        rows, columns = stack.pixels.shape[1:]
        if not (0 <= row < rows and 0 <= column < columns):
            continue
        if best is None or distances[i] < best.distance_mm:
            best = SliceHit(k, i, stack.instance_numbers[i], float(distances[i]))
    return best
