"""Reading DICOM series: slices in spatial order, rescaled pixels, geometry, and a printable summary."""

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

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])

    @property
    def plane(self) -> str:
        return PLANES[int(np.argmax(np.abs(self.normal)))]

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices along the normal; the thickness for a single slice."""
        along = self.positions @ self.normal
        steps = np.diff(along)
        steps = steps[np.isfinite(steps)]
        if len(steps):
            return float(np.median(np.abs(steps)))
        return self.thickness

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


def read_series(folder: Path) -> Series:
    """A series folder as a volume; slices of a different size than most are resized to the common size."""
    slices = [read_slice(p) for p in dicom_files(folder)]
    first = slices[0]
    orientation = first.orientation if first.orientation is not None else np.array([1.0, 0, 0, 0, 1.0, 0])
    normal = np.cross(orientation[:3], orientation[3:])
    order = _spatial_order(slices, normal)
    ordered = [slices[i] for i in order]
    shape = Counter(s.pixels.shape for s in ordered).most_common(1)[0][0]
    positions = np.array([s.position if s.position is not None else np.full(3, np.nan) for s in ordered])
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
    )


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
        ("transfer syntax", ", ".join(series.transfer_syntaxes)),
        ("intensity", f"{series.pixels.min():g} .. {series.pixels.max():g}"),
    ]
