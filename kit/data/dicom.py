"""Reading DICOM series: a folder split into stacks (series UID × orientation), slices in spatial order, rescaled
pixels, each stack's own geometry (gaps reported, never averaged away; pixel <-> patient coordinates), and a printable
summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from pydicom.pixels import apply_rescale
from scipy import ndimage

from kit.errors import DataError

PLANES = ("sagittal", "coronal", "axial")  # by the axis (x, y, z) the slice normal points along
ANGLE_TOLERANCE_DEG = 5.0  # slices of one series whose normals differ by less are one stack
SAME_POSITION_MM = 0.01  # closer than this along the normal: the same position (a mosaic or a repeat)
GAP_FACTOR = 1.5  # a step this many times the stack's median step is a gap
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class DicomSlice:
    path: Path
    pixels: np.ndarray  # (rows, columns) float32 after RescaleSlope/Intercept
    position: np.ndarray | None  # ImagePositionPatient
    orientation: np.ndarray | None  # ImageOrientationPatient (row direction, column direction)
    pixel_spacing: tuple[float, float]  # (between rows, between columns) in mm
    thickness: float | None
    instance_number: int | None
    description: str
    transfer_syntax: str
    series_uid: str = ""


@dataclass
class Series:
    folder: Path
    pixels: np.ndarray  # (slices, rows, columns) float32, slices in spatial order
    positions: np.ndarray  # (slices, 3) ImagePositionPatient in that order; NaN where absent
    orientation: np.ndarray  # (6,)
    pixel_spacing: tuple[float, float]
    thickness: float | None
    instance_numbers: list[int | None]
    description: str
    transfer_syntaxes: list[str] = field(default_factory=list)
    series_uid: str = ""

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    @property
    def plane(self) -> str:
        return PLANES[int(np.argmax(np.abs(self.normal)))]

    @property
    def tilt(self) -> float:
        """Degrees between the slices' normal and the patient axis of their plane (an axial stack angled along a
        disc reads 5–25°)."""
        normal = self.normal / max(float(np.linalg.norm(self.normal)), 1e-12)
        return float(np.degrees(np.arccos(np.clip(np.abs(normal).max(), 0.0, 1.0))))

    @property
    def steps(self) -> np.ndarray:
        """Distance from each slice to the next along the normal, mm (finite ones)."""
        steps = np.abs(np.diff(self.positions @ self.normal))
        return steps[np.isfinite(steps)]

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices along the normal; the thickness for a single slice."""
        return float(np.median(self.steps)) if len(self.steps) else self.thickness

    @property
    def gaps(self) -> list[tuple[int, float]]:
        """(slice index a gap follows, its size in mm) wherever a step exceeds GAP_FACTOR × the median step."""
        spacing = self.slice_spacing
        if not spacing or len(self.steps) != len(self.positions) - 1:
            return []
        return [(i, float(step)) for i, step in enumerate(self.steps) if step > GAP_FACTOR * spacing]

    def voxel_to_lps(self, index: float, row: float, column: float) -> np.ndarray:
        """Patient (LPS) millimetres of a point of the stack: slice `index` (fractional between slices, along their
        own positions, so gaps are kept), `row` and `column` in pixels."""
        along = np.arange(len(self.positions))
        position = np.array([np.interp(index, along, self.positions[:, axis]) for axis in range(3)])
        if len(self.positions) > 1 and not 0 <= index <= len(self.positions) - 1:  # beyond an end: its last step
            end = 0 if index < 0 else len(self.positions) - 1
            step = self.positions[1] - self.positions[0] if end == 0 else self.positions[-1] - self.positions[-2]
            position = self.positions[end] + (index - end) * step
        return (
            position
            + column * self.pixel_spacing[1] * self.orientation[:3]
            + row * self.pixel_spacing[0] * (self.orientation[3:])
        )

    def lps_to_voxel(self, point: np.ndarray) -> np.ndarray:
        """(slice index, row, column) of a patient (LPS) point: the inverse of voxel_to_lps."""
        along = self.positions @ self.normal
        depth = float(np.asarray(point) @ self.normal)
        if len(along) == 1:
            index = 0.0
        elif depth < along[0] or depth > along[-1]:
            end = 0 if depth < along[0] else len(along) - 1
            step = along[1] - along[0] if end == 0 else along[-1] - along[-2]
            index = end + (depth - along[end]) / step
        else:
            index = float(np.interp(depth, along, np.arange(len(along))))
        offset = np.asarray(point) - self.voxel_to_lps(index, 0.0, 0.0)
        return np.array([index, offset @ self.orientation[3:] / self.pixel_spacing[0],
                         offset @ self.orientation[:3] / self.pixel_spacing[1]])  # fmt: skip

    def affine_ras(self) -> np.ndarray:
        """Voxel (slice, row, column) -> RAS millimetres, as MONAI and nibabel expect."""
        row_dir, col_dir = self.orientation[:3], self.orientation[3:]
        affine = np.eye(4)
        affine[:3, 0] = self.normal * (self.slice_spacing or 1.0)
        affine[:3, 1] = col_dir * self.pixel_spacing[0]
        affine[:3, 2] = row_dir * self.pixel_spacing[1]
        origin = self.positions[0] if np.isfinite(self.positions[0]).all() else np.zeros(3)
        affine[:3, 3] = origin
        return _LPS_TO_RAS @ affine

    def pixel_to_ras(self, instance_number: int, x: float, y: float) -> np.ndarray | None:
        """RAS millimetres of pixel (x = column, y = row) on the slice with this InstanceNumber, at that slice's own
        position (not the affine's evenly spaced one); None when the series has no such slice."""
        if instance_number not in self.instance_numbers:
            return None
        position = self.positions[self.instance_numbers.index(instance_number)]
        lps = (
            position
            + x * self.pixel_spacing[1] * self.orientation[:3]
            + y * self.pixel_spacing[0] * self.orientation[3:]
        )
        return _LPS_TO_RAS[:3, :3] @ lps


def _number(value, default=None):
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def read_slice(path: Path) -> DicomSlice:
    """One DICOM file; a non-DICOM, truncated or undecodable file is a DataError naming it."""
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
        pixels = apply_rescale(ds.pixel_array, ds).astype(np.float32)
    except pydicom.errors.InvalidDicomError as exc:
        raise DataError(f"{path}: not a DICOM file ({exc})") from exc
    except Exception as exc:  # pydicom raises many types for truncated or corrupt files; all mean the same here
        raise DataError(f"{path}: unreadable DICOM ({type(exc).__name__}: {exc})") from exc
    if pixels.ndim != 2:
        raise DataError(f"{path}: expected one grayscale frame, got pixel data of shape {pixels.shape}")
    spacing = ds.get("PixelSpacing") or [1.0, 1.0]
    position = ds.get("ImagePositionPatient")
    orientation = ds.get("ImageOrientationPatient")
    number = ds.get("InstanceNumber")
    return DicomSlice(
        path=path,
        pixels=pixels,
        position=np.array([float(v) for v in position]) if position else None,
        orientation=np.array([float(v) for v in orientation]) if orientation else None,
        pixel_spacing=(float(spacing[0]), float(spacing[1])),
        thickness=_number(ds.get("SliceThickness")),
        instance_number=int(number) if number not in (None, "") else None,
        description=str(ds.get("SeriesDescription", "")),
        transfer_syntax=ds.file_meta.TransferSyntaxUID.name if "TransferSyntaxUID" in ds.file_meta else "unknown",
        series_uid=str(ds.get("SeriesInstanceUID", "")),
    )


def dicom_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: series folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".dcm")
    if not files:
        raise DataError(f"{folder}: series folder holds no DICOM (.dcm) files")
    return files


def _spatial_order(slices: list[DicomSlice], normal: np.ndarray) -> list[int]:
    """Order by position along the slice normal; InstanceNumber only breaks ties or stands in for absent geometry."""

    def key(i: int):
        s = slices[i]
        along = float(s.position @ normal) if s.position is not None else 0.0
        return along, s.instance_number if s.instance_number is not None else i

    return sorted(range(len(slices)), key=key)


def _to_shape(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if pixels.shape == shape:
        return pixels
    resized = F.interpolate(torch.from_numpy(pixels)[None, None], size=shape, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def _unit_normal(orientation: np.ndarray | None) -> np.ndarray | None:
    if orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def _same_direction(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return float(a @ b) >= np.cos(np.radians(ANGLE_TOLERANCE_DEG))


def _stack_groups(slices: list[DicomSlice]) -> list[list[DicomSlice]]:
    """Slices grouped by SeriesInstanceUID and orientation (normals within ANGLE_TOLERANCE_DEG)."""
    groups: list[tuple[str, np.ndarray | None, list[DicomSlice]]] = []
    for s in slices:
        normal = _unit_normal(s.orientation)
        for uid, group_normal, members in groups:
            if uid == s.series_uid and _same_direction(normal, group_normal):
                members.append(s)
                break
        else:
            groups.append((s.series_uid, normal, [s]))
    return [members for _, _, members in groups]


def _stack(folder: Path, slices: list[DicomSlice], single_images: bool) -> Series:
    first = slices[0]
    located = all(s.position is not None and s.orientation is not None for s in slices)
    if len(slices) > 1 and not located and not single_images:
        uid = first.series_uid or "(no UID)"
        raise DataError(f"{folder}: {len(slices)} slices of series {uid} lack ImagePositionPatient or "
                        "ImageOrientationPatient, so their order and spacing are unknown")  # fmt: skip
    orientation = first.orientation if first.orientation is not None else np.array([1.0, 0, 0, 0, 1.0, 0])
    normal = np.cross(orientation[:3], orientation[3:])
    ordered = [slices[i] for i in _spatial_order(slices, normal)]
    positions = np.array([s.position if s.position is not None else np.full(3, np.nan) for s in ordered])
    if located and len(ordered) > 1 and not single_images:
        shared = int((np.abs(np.diff(positions @ normal)) < SAME_POSITION_MM).sum()) + 1
        if shared > 1:
            uid = first.series_uid or "(no UID)"
            raise DataError(f"{folder}: {shared} of {len(ordered)} slices of series {uid} share one position "
                            "(a mosaic or a repeated acquisition), not a stack of slices")  # fmt: skip
    shape = Counter(s.pixels.shape for s in ordered).most_common(1)[0][0]
    return Series(
        folder=Path(folder),
        pixels=np.stack([_to_shape(s.pixels, shape) for s in ordered]),
        positions=positions,
        orientation=orientation,
        pixel_spacing=first.pixel_spacing,
        thickness=first.thickness,
        instance_numbers=[s.instance_number for s in ordered],
        description=first.description,
        transfer_syntaxes=sorted({s.transfer_syntax for s in ordered}),
        series_uid=first.series_uid,
    )


def read_stacks(folder: Path, single_images: bool = False) -> list[Series]:
    """A folder's stacks: its slices split by SeriesInstanceUID and orientation, each ordered along its own normal
    with its own geometry. Slices that share a position, or several without position tags, are an error naming the
    folder unless `single_images` (then they are kept in InstanceNumber order as they are)."""
    slices = [read_slice(p) for p in dicom_files(folder)]
    stacks = [_stack(Path(folder), group, single_images) for group in _stack_groups(slices)]
    return sorted(stacks, key=lambda s: (s.series_uid, float(np.nan_to_num(s.positions[0] @ s.normal))))


def read_view(folder: Path, single_images: bool = False) -> list[Series]:
    """A series folder's stacks, which must all be of one plane (e.g. an axial series acquired as angled stacks, one
    per disc): stacks of different planes are an error naming the folder (read them with read_stacks)."""
    stacks = read_stacks(folder, single_images)
    if len({s.plane for s in stacks}) > 1:
        found = "; ".join(f"{s.plane} {len(s.pixels)} slices (series {s.series_uid or '(no UID)'})" for s in stacks)
        raise DataError(f"{folder}: holds {len(stacks)} stacks of different orientations ({found}); one series folder "
                        "should hold one view")  # fmt: skip
    return stacks


def read_series(folder: Path, single_images: bool = False) -> Series:
    """A series folder as one volume: its stacks of one plane merged onto the first one's grid. Slices of a
    different size than most are resized to the common size."""
    return merge_series(read_view(folder, single_images))


def _onto_grid(series: Series, ref: Series) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every slice of `series` resampled onto `ref`'s in-plane pixel grid, moved along `ref`'s normal to the slice's
    own depth: stacks of one view often differ in field of view, matrix and pixel spacing, so resizing one to the
    other's shape would misplace its anatomy. Returns the pixels and the new slices' positions (LPS)."""
    geometry = [ref.positions[0], *series.positions]
    if not np.isfinite(np.asarray(geometry)).all():  # no geometry to align by: resize as the best guess
        return [_to_shape(p, ref.pixels.shape[1:]) for p in series.pixels], list(series.positions)
    origin, normal = ref.positions[0], ref.normal
    row_ref, col_ref = ref.orientation[:3], ref.orientation[3:]
    row, col = series.orientation[:3], series.orientation[3:]
    # output index (r, c) -> input index (y, x) = matrix @ (r, c) + offset, for scipy's affine_transform
    steps = np.array([[ref.pixel_spacing[0] * col_ref @ col, ref.pixel_spacing[1] * row_ref @ col],
                      [ref.pixel_spacing[0] * col_ref @ row, ref.pixel_spacing[1] * row_ref @ row]])  # fmt: skip
    matrix = steps / np.array([[series.pixel_spacing[0]], [series.pixel_spacing[1]]])
    pixels, positions = [], []
    for image, position in zip(series.pixels, series.positions, strict=True):
        moved = origin + ((position - origin) @ normal) * normal
        d = moved - position
        offset = np.array([d @ col / series.pixel_spacing[0], d @ row / series.pixel_spacing[1]])
        pixels.append(ndimage.affine_transform(image, matrix, offset, output_shape=ref.pixels.shape[1:], order=1))
        positions.append(moved)
    return pixels, positions


def merge_series(series: list[Series]) -> Series:
    """Several series of one view (e.g. two Axial T2 stacks) as one on the first one's pixel grid, slices ordered
    along its normal."""
    if len(series) == 1:
        return series[0]
    ref = series[0]
    pixels, positions, numbers = list(ref.pixels), list(ref.positions), list(ref.instance_numbers)
    for s in series[1:]:
        moved_pixels, moved_positions = _onto_grid(s, ref)
        pixels.extend(moved_pixels)
        positions.extend(moved_positions)
        numbers.extend(s.instance_numbers)
    along = np.array([p @ ref.normal if np.isfinite(p).all() else np.inf for p in positions])
    order = np.argsort(along, kind="stable")
    return Series(
        folder=ref.folder,
        pixels=np.stack([pixels[i] for i in order]),
        positions=np.array([positions[i] for i in order]),
        orientation=ref.orientation,
        pixel_spacing=ref.pixel_spacing,
        thickness=ref.thickness,
        instance_numbers=[numbers[i] for i in order],
        description=ref.description,
        transfer_syntaxes=sorted({t for s in series for t in s.transfer_syntaxes}),
        series_uid=ref.series_uid,
    )


def describe(series: Series) -> list[tuple[str, str]]:
    """What `kit inspect` prints, as (field, value) pairs."""
    rows, columns = series.pixels.shape[1:]
    spacing = series.slice_spacing
    orientation = ", ".join(f"{v:g}" for v in series.orientation)
    return [
        ("series", str(series.folder)),
        ("description", series.description or "(none)"),
        ("slices", str(series.pixels.shape[0])),
        ("rows x columns", f"{rows} x {columns}"),
        ("pixel spacing", f"{series.pixel_spacing[0]:g} x {series.pixel_spacing[1]:g} mm"),
        ("slice spacing", f"{spacing:g} mm" if spacing is not None else "unknown"),
        ("slice thickness", f"{series.thickness:g} mm" if series.thickness is not None else "unknown"),
        ("orientation", f"{series.plane} [{orientation}]"),
        ("tilt", f"{series.tilt:.1f}° from the patient's {series.plane} plane"),
        ("gaps", ", ".join(f"{mm:g} mm after slice {i + 1}" for i, mm in series.gaps) or "none"),
        ("series uid", series.series_uid or "(none)"),
        ("transfer syntax", ", ".join(series.transfer_syntaxes)),
        ("intensity", f"{series.pixels.min():g} .. {series.pixels.max():g}"),
    ]
