"""`kit synth rsna`: a synthetic competition in the exact Kaggle layout, rendered from the spine phantom.

Every study gets Sagittal T1, Sagittal T2/STIR and Axial T2 series (some two axial stacks), with real geometry
tags, varying slice counts and image sizes, rescale slope/intercept, and instance numbers that need not start at 1
nor follow spatial order. Some test studies lack a series. The real data's traps are there too: axial series acquired
as angled stacks, one per disc, inside one series folder; now and then a second Sagittal T1 series; a few series
missing a slice or two inside the stack. `size="real"` writes real-sized series (sagittal 15-20 slices of 384-512 px,
axial 20-50 slices) for scale checks. The labels are drawn from known probabilities (readers.py), written beside
train.csv as oracle.csv, one row per labelled train row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from tqdm import tqdm

from kit.errors import KitError
from kit.io import atomic_folder

from .layout import (
    CONDITION_TITLES,
    CONDITIONS,
    COORDINATES_CSV,
    LEVEL_TITLES,
    LEVELS,
    ORACLE_CSV,
    SAMPLE_SUBMISSION_CSV,
    SERIES_CSVS,
    SEVERITY_COLUMNS,
    SEVERITY_LABELS,
    TARGETS,
    TRAIN_CSV,
    VIEW_OF_CONDITION,
    row_id,
)
from .phantom import LEVEL_W, Phantom, Pose, landmark
from .readers import StudyTruth, draw_study

DESCRIPTIONS = {"sag_t1": "Sagittal T1", "sag_t2": "Sagittal T2/STIR", "axial_t2": "Axial T2"}


@dataclass(frozen=True)
class Geometry:
    sagittal_slices: tuple[int, int]  # [low, high) slices per sagittal series
    sagittal_pixels: tuple[int, ...]
    axial_pixels: tuple[int, ...]
    axial_per_level: tuple[int, int]  # [low, high) axial slices per disc level


GEOMETRIES = {
    "default": Geometry((14, 19), (128, 144, 160, 176), (112, 128, 144), (3, 4)),
    "real": Geometry((15, 21), (384, 448, 512), (320, 384, 448, 512), (4, 11)),
}
# Trap shares, as seen in the real training data.
ANGLED_AXIAL = 0.3  # axial series acquired as one angled stack per disc, in one series folder
SECOND_SAGITTAL = 0.05  # a second Sagittal T1 series (7 of 1975 real studies have one; more here to be seen)
MISSING_SLICES = 0.1  # a series missing one or two slices inside the stack
# The disc planes' angle to the spine's axial plane per level (lordosis), degrees.
LEVEL_ANGLE = {"l1_l2": -14.0, "l2_l3": -6.0, "l3_l4": 2.0, "l4_l5": 10.0, "l5_s1": 18.0}


@dataclass
class Plane:
    """One slice: where its top-left pixel is, which way rows and columns run, and its pixel grid."""

    position: np.ndarray
    row_dir: np.ndarray  # direction in which the column index grows (DICOM's first orientation triplet)
    col_dir: np.ndarray  # direction in which the row index grows
    spacing: float
    shape: tuple[int, int]

    def points(self) -> np.ndarray:
        rows, cols = np.meshgrid(np.arange(self.shape[0]), np.arange(self.shape[1]), indexing="ij")
        offsets = cols[..., None] * self.row_dir + rows[..., None] * self.col_dir
        return self.position + self.spacing * offsets

    def pixel_of(self, world: np.ndarray) -> tuple[float, float]:
        """(x = column, y = row) of a world point projected on the plane, as train_label_coordinates.csv has it."""
        d = world - self.position
        return float(d @ self.row_dir / self.spacing), float(d @ self.col_dir / self.spacing)

    def distance(self, world: np.ndarray) -> float:
        return abs(float((world - self.position) @ np.cross(self.row_dir, self.col_dir)))


def sagittal_planes(pose: Pose, rng: np.random.Generator, geometry: Geometry = GEOMETRIES["default"]) -> list[Plane]:
    n = int(rng.integers(*geometry.sagittal_slices))
    gap = float(rng.uniform(3.4, 4.2)) * pose.scale
    size = int(rng.choice(geometry.sagittal_pixels))
    spacing = float(rng.uniform(190.0, 215.0)) * pose.scale / size
    row_dir, col_dir = np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, -1.0])  # columns run posterior, rows inferior
    centre = pose.to_world(np.array([0.0, 20.0, 0.0]))
    planes = []
    for i in range(n):
        x = centre[0] + (i - (n - 1) / 2) * gap
        middle = np.array([x, centre[1], centre[2]])
        corner = middle - spacing * (size / 2) * (row_dir + col_dir)
        planes.append(Plane(corner, row_dir, col_dir, spacing, (size, size)))
    return planes


def tilt_about_x(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def axial_planes(pose: Pose, levels: list[str], rng: np.random.Generator, angled: bool = False,
                 geometry: Geometry = GEOMETRIES["default"]) -> list[Plane]:  # fmt: skip
    """Slices perpendicular to the spine through each of `levels`, a few per disc, as MR technologists angle them;
    `angled`: each disc's slices tilted along that disc (its own stack, as real axial series often are)."""
    size = int(rng.choice(geometry.axial_pixels))
    spacing = float(rng.uniform(125.0, 145.0)) * pose.scale / size
    gap = float(rng.uniform(3.5, 4.5))
    per_level = int(rng.integers(*geometry.axial_per_level))
    planes = []
    for level in levels:
        rotation = pose.rotation @ tilt_about_x(LEVEL_ANGLE[level] + rng.normal(0.0, 1.0)) if angled else pose.rotation
        row_dir = rotation @ np.array([1.0, 0.0, 0.0])  # columns run to the patient's left
        col_dir = rotation @ np.array([0.0, 1.0, 0.0])  # rows run posterior
        normal = rotation @ np.array([0.0, 0.0, 1.0])
        centre = pose.to_world(np.array([0.0, 12.0, LEVEL_W[level]]))
        for offset in (np.arange(per_level) - (per_level - 1) / 2) * gap:
            middle = centre + offset * pose.scale * normal
            corner = middle - spacing * (size / 2) * (row_dir + col_dir)
            planes.append(Plane(corner, row_dir, col_dir, spacing, (size, size)))
    return planes


def instance_numbers(n: int, rng: np.random.Generator) -> np.ndarray:
    """Instance numbers per spatial position: in order, reversed, offset, or shuffled, as scanners write them."""
    start = int(rng.choice([1, 1, 4, 17]))
    numbers = np.arange(start, start + n)
    scheme = rng.choice(["ordered", "reversed", "shuffled"], p=[0.4, 0.3, 0.3])
    if scheme == "reversed":
        return numbers[::-1].copy()
    if scheme == "shuffled":
        return rng.permutation(numbers)
    return numbers


def render(planes: list[Plane], phantom: Phantom, pose: Pose, view: str, rng: np.random.Generator) -> np.ndarray:
    gain = float(rng.uniform(600.0, 1400.0))
    noise = float(rng.uniform(0.015, 0.04))
    slices = []
    for plane in planes:
        signal = phantom.intensity(pose.to_local(plane.points()), view)
        real = signal + rng.normal(0.0, noise, signal.shape)
        imag = rng.normal(0.0, noise, signal.shape)
        slices.append(gain * np.sqrt(real**2 + imag**2))  # Rician magnitude noise, as MR images have
    return np.stack(slices).astype(np.float32)


def write_slice(path: Path, pixels: np.ndarray, plane: Plane, meta: dict) -> None:
    slope, intercept = meta["slope"], meta["intercept"]
    stored = np.clip(np.round((pixels - intercept) / slope), 0, 65535).astype(np.uint16)
    file_meta = FileMetaDataset()
    file_meta.MediaStorageSOPClassUID = MRImageStorage
    # derived from the slice's ids (themselves from the seed), so that one seed always writes the same bytes
    ids = [str(meta[key]) for key in ("study_id", "series_id", "instance_number")]
    file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=ids)
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = file_meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientID = str(meta["study_id"])
    ds.StudyInstanceUID = str(meta["study_id"])
    ds.SeriesInstanceUID = str(meta["series_id"])
    ds.SeriesDescription = meta["description"]
    ds.InstanceNumber = int(meta["instance_number"])
    ds.ImagePositionPatient = [round(float(v), 4) for v in plane.position]
    ds.ImageOrientationPatient = [round(float(v), 6) for v in (*plane.row_dir, *plane.col_dir)]
    ds.PixelSpacing = [round(plane.spacing, 6), round(plane.spacing, 6)]
    ds.SliceThickness = round(meta["thickness"], 3)
    ds.SpacingBetweenSlices = round(meta["gap"], 3)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)


class StudyWriter:
    def __init__(self, root: Path, split: str, rng: np.random.Generator, geometry: Geometry = GEOMETRIES["default"]):
        self.root, self.split, self.rng, self.geometry = root, split, rng, geometry
        self.used_ids: set[int] = set()

    def new_id(self, low: int, high: int) -> int:
        while True:
            value = int(self.rng.integers(low, high))
            if value not in self.used_ids:
                self.used_ids.add(value)
                return value

    def write_series(self, study_id: int, view: str, planes: list[Plane], phantom: Phantom, pose: Pose) -> dict:
        series_id = self.new_id(10_000_000, 4_000_000_000)
        folder = self.root / f"{self.split}_images" / str(study_id) / str(series_id)
        folder.mkdir(parents=True)
        if len(planes) > 4 and self.rng.random() < MISSING_SLICES:  # one or two slices lost inside the stack
            landmarks = [pose.to_world(landmark(c, level)) for c in CONDITIONS if VIEW_OF_CONDITION[c] == view
                         for level in LEVELS]  # fmt: skip
            read = {min(range(len(planes)), key=lambda i, w=w: planes[i].distance(w)) for w in landmarks}
            spare = [i for i in range(1, len(planes) - 1) if i not in read]  # a label's slice is never the lost one
            if spare:
                lost = set(self.rng.choice(spare, size=min(len(spare), int(self.rng.integers(1, 3))), replace=False))
                planes = [p for i, p in enumerate(planes) if i not in lost]
        pixels = render(planes, phantom, pose, view, self.rng)
        numbers = instance_numbers(len(planes), self.rng)
        gap = float(np.linalg.norm(planes[1].position - planes[0].position)) if len(planes) > 1 else 4.0
        meta = {
            "study_id": study_id,
            "series_id": series_id,
            "description": DESCRIPTIONS[view],
            "slope": float(self.rng.choice([1.0, 0.5, 2.0])),
            "intercept": float(self.rng.choice([0.0, -100.0])),
            "thickness": min(gap, 3.5),
            "gap": gap,
        }
        for plane, image, number in zip(planes, pixels, numbers, strict=True):
            write_slice(folder / f"{number}.dcm", image, plane, {**meta, "instance_number": number})
        return {"series_id": series_id, "planes": planes, "numbers": numbers, "view": view}

    def write_study(self, truth: StudyTruth, views: tuple[str, ...], two_axial: bool = False) -> tuple[int, list[dict]]:
        rng = self.rng
        study_id = self.new_id(1_000_000, 4_300_000_000)
        pose = Pose(
            center=np.array([rng.uniform(-8, 8), rng.uniform(-10, 10), rng.uniform(-12, 12)]),
            scale=float(rng.uniform(0.9, 1.1)),
            tilt=float(np.deg2rad(rng.uniform(-9, 9))),
        )
        phantom = Phantom.from_narrowing(truth.narrowing)
        series, geometry = [], self.geometry
        angled = rng.random() < ANGLED_AXIAL
        for view in views:
            if view != "axial_t2":
                copies = 2 if view == "sag_t1" and rng.random() < SECOND_SAGITTAL else 1
                for _ in range(copies):
                    planes = sagittal_planes(pose, rng, geometry)
                    series.append(self.write_series(study_id, view, planes, phantom, pose))
                continue
            parts = [list(LEVELS[:3]), list(LEVELS[2:])] if two_axial else [list(LEVELS)]  # two: overlapping at L3/L4
            for levels in parts:
                planes = axial_planes(pose, levels, rng, angled, geometry)
                series.append(self.write_series(study_id, view, planes, phantom, pose))
        for s in series:
            s["pose"] = pose
        return study_id, series


def coordinates(study_id: int, series: list[dict], labelled: np.ndarray) -> list[dict]:
    """One train_label_coordinates.csv row per labelled cell: the landmark on the slice nearest to it."""
    rows = []
    for c, condition in enumerate(CONDITIONS):
        view = VIEW_OF_CONDITION[condition]
        for k, level in enumerate(LEVELS):
            if not labelled[c, k]:
                continue
            candidates = [s for s in series if s["view"] == view]
            world = candidates[0]["pose"].to_world(landmark(condition, level))
            best = min(
                ((s, i) for s in candidates for i in range(len(s["planes"]))),
                key=lambda si: si[0]["planes"][si[1]].distance(world),
            )
            s, i = best
            x, y = s["planes"][i].pixel_of(world)
            rows.append(
                {
                    "study_id": study_id,
                    "series_id": s["series_id"],
                    "instance_number": int(s["numbers"][i]),
                    "condition": CONDITION_TITLES[condition],
                    "level": LEVEL_TITLES[level],
                    "x": round(x, 3),
                    "y": round(y, 3),
                }
            )
    return rows


def generate(out: Path, studies: int = 80, test_studies: int = 3, seed: int = 0, force: bool = False,
             size: str = "default") -> Path:  # fmt: skip
    """Write a synthetic competition to `out`; an existing folder is replaced only with `force`, and only once the
    new one is complete."""
    out = Path(out)
    if size not in GEOMETRIES:
        raise KitError(f"--size {size}: expected one of {', '.join(GEOMETRIES)}")
    if out.exists() and not force:
        raise KitError(f"{out} already exists; pass --force to replace it")
    if studies < 2:
        raise KitError(f"--train must be at least 2 studies, got {studies}")
    with atomic_folder(out) as staging:  # made with the umask's modes, in place only once complete
        _generate_into(staging, studies, test_studies, np.random.default_rng(seed), GEOMETRIES[size])
    return out


def _generate_into(root: Path, studies: int, test_studies: int, rng: np.random.Generator, geometry: Geometry) -> None:
    all_views = ("sag_t1", "sag_t2", "axial_t2")
    label_rows, oracle_rows, coordinate_rows, series_rows = [], [], {}, {"train": [], "test": []}
    train = StudyWriter(root, "train", rng, geometry)
    for i in tqdm(range(studies), desc="synth rsna train", unit="study", leave=False):
        truth = draw_study(rng)
        labelled = np.ones_like(truth.severities, dtype=bool)
        if i == 1 or rng.random() < 0.1:  # about 10% of studies miss a few labels; study 1 always does
            labelled.flat[rng.choice(labelled.size, size=int(rng.integers(1, 4)), replace=False)] = False
        study_id, series = train.write_study(truth, all_views, two_axial=i == 0 or rng.random() < 0.2)
        codes = np.where(labelled, truth.severities, -1).reshape(-1)
        oracle_rows.extend(
            {"row_id": row_id(study_id, t), **dict(zip(SEVERITY_COLUMNS, p, strict=True))}
            for t, p, c in zip(TARGETS, truth.probabilities.reshape(len(TARGETS), -1), codes, strict=True)
            if c >= 0
        )
        label_rows.append(
            {
                "study_id": study_id,
                **{t: SEVERITY_LABELS[c] if c >= 0 else None for t, c in zip(TARGETS, codes, strict=True)},
            }
        )
        coordinate_rows[study_id] = coordinates(study_id, series, labelled)
        series_rows["train"].extend(
            {"study_id": study_id, "series_id": s["series_id"], "series_description": DESCRIPTIONS[s["view"]]}
            for s in series
        )

    test = StudyWriter(root, "test", rng, geometry)
    test.used_ids = train.used_ids
    for i in range(test_studies):
        views = all_views
        if i >= 1 and (i == 1 or rng.random() < 0.5):  # the hidden test set has studies missing a series
            views = tuple(v for v in all_views if v != all_views[i % 3])
        study_id, series = test.write_study(draw_study(rng), views, two_axial=rng.random() < 0.2)
        series_rows["test"].extend(
            {"study_id": study_id, "series_id": s["series_id"], "series_description": DESCRIPTIONS[s["view"]]}
            for s in series
        )

    pd.DataFrame(label_rows, columns=["study_id", *TARGETS]).to_csv(root / TRAIN_CSV, index=False)
    pd.DataFrame(oracle_rows, columns=["row_id", *SEVERITY_COLUMNS]).to_csv(root / ORACLE_CSV, index=False)
    pd.DataFrame([r for rows in coordinate_rows.values() for r in rows]).to_csv(root / COORDINATES_CSV, index=False)
    for split, rows in series_rows.items():
        pd.DataFrame(rows, columns=["study_id", "series_id", "series_description"]).to_csv(
            root / SERIES_CSVS[split], index=False
        )
    test_ids = list(dict.fromkeys(r["study_id"] for r in series_rows["test"]))
    sample = pd.DataFrame(
        [{"row_id": f"{s}_{t}", **{c: 1 / 3 for c in SEVERITY_COLUMNS}} for s in test_ids for t in TARGETS]
    )
    sample.to_csv(root / SAMPLE_SUBMISSION_CSV, index=False)
