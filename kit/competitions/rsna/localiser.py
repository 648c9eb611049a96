"""Stage 1 of `rsna_two_stage`: heatmap keypoints of the five canal points on Sagittal T2 and the ten foramina on
Sagittal T1, read back as patient (LPS) millimetres through each series' own geometry.

The model sees a few middle Sagittal T2 slices and a few Sagittal T1 slices spread across the stack, each resized to
size × size; channel c of its heatmaps is target c of the first 15 (canal levels, left foramina, right foramina).
A point's left-right depth is not in a sagittal image: it is the stack's centre plus each group's median offset over
the training labels (offsets.json beside the fold's points.csv).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.transforms import Transform
from torch import nn
from torch.utils.data import Dataset

from kit import paths
from kit.competitions.parts import FoldTraining
from kit.data.cache import cached_dataset
from kit.data.dicom import Series, read_view
from kit.data.heatmaps import gaussian_heatmaps, spatial_softmax_loss
from kit.data.transforms import require_inside, volume_stacks
from kit.errors import DataError, KitError
from kit.io import atomic_path, write_text_atomic
from kit.losses import register_loss
from kit.runtime import clock

from .layout import CONDITIONS, LEVELS
from .levels import point_lps
from .tables import absent_studies, fallback, landmark_points, load_studies

POINT_CONDITIONS = CONDITIONS[:3]  # canal (Sagittal T2), left and right foramina (Sagittal T1)
POINTS = len(POINT_CONDITIONS) * len(LEVELS)
GROUPS = ("canal", "left_foramen", "right_foramen")
VIEW_OF_GROUP = {"canal": "sag_t2", "left_foramen": "sag_t1", "right_foramen": "sag_t1"}
INPUT_SLICES = {"sag_t2": 3, "sag_t1": 5}
OFFSETS_FILE = "offsets.json"


def group_of(channel: int) -> str:
    return GROUPS[channel // len(LEVELS)]


PLANE_OF_VIEW = {"sag_t1": "sagittal", "sag_t2": "sagittal", "axial_t2": "axial"}


def view_stacks(item: dict, view: str, first: bool = False) -> list[Series]:
    """A study's stacks of one view (with `first`, those of its first usable series only). In a test study
    (item["test"]), a series that cannot be read or whose slices are not of the view's plane is left out with one
    log line: the study is predicted from its other views."""
    stacks = []
    for folder in item["series"].get(view, []):
        try:
            found = read_view(Path(folder))
            planes = sorted({s.plane for s in found} - {PLANE_OF_VIEW[view]})
            if planes:
                raise DataError(f"{folder}: {planes[0]} slices, not {PLANE_OF_VIEW[view]} as its description says")
        except (DataError, ValueError, IndexError) as exc:
            if not item.get("test"):
                raise
            fallback(item["study_id"], f"{view} unusable ({exc}), left out")
            continue
        stacks += found
        if first:
            break
    return stacks


def sagittal_stack(item: dict, view: str) -> Series | None:
    """The stack a sagittal view is read from: the largest of its first series (a second series repeats it)."""
    stacks = view_stacks(item, view, first=True)  # a second series repeats the first: never decoded
    return max(volume_stacks(stacks), key=lambda s: len(s.positions)) if stacks else None


def geometry_only(stack: Series | None) -> dict | None:
    """A stack without its pixels (the cache keeps geometry, not a second copy of the images)."""
    if stack is None:
        return None
    return {"series": dataclasses.replace(stack, pixels=np.zeros((len(stack.positions), 0, 0), np.float32)),
            "shape": stack.pixels.shape[1:]}  # fmt: skip


def centre_index(stack: Series) -> float:
    return (len(stack.positions) - 1) / 2


def resize_slices(stack: Series, indices, size: int) -> np.ndarray:
    pixels = torch.from_numpy(np.ascontiguousarray(stack.pixels[list(indices)], dtype=np.float32))[None]
    low, high = np.percentile(stack.pixels, [0.5, 99.5])
    pixels = ((pixels - low) / max(high - low, 1e-6)).clamp(0, 1)
    return F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0].numpy()


def input_slices(stack: Series, view: str) -> list[int]:
    n = len(stack.positions)
    if view == "sag_t2":  # the canal: the middle of the stack
        return [int(np.clip(round(centre_index(stack)) + k - 1, 0, n - 1)) for k in range(INPUT_SLICES[view])]
    return [int(round(f * (n - 1))) for f in np.linspace(0.15, 0.85, INPUT_SLICES[view])]


def to_grid(row: float, col: float, shape, size: int) -> tuple[float, float]:
    """Original pixel (row, column) -> the resized size × size grid (pixel centres kept)."""
    return (row + 0.5) * size / shape[0] - 0.5, (col + 0.5) * size / shape[1] - 0.5


def from_grid(row: float, col: float, shape, size: int) -> tuple[float, float]:
    return (row + 0.5) * shape[0] / size - 0.5, (col + 0.5) * shape[1] / size - 0.5


def labelled_lps(series_folders: dict[str, list], points: dict[str, list]) -> np.ndarray:
    """(15, 3) LPS of the labelled canal and foramen points (NaN where unlabelled), each read on its own series."""
    out = np.full((POINTS, 3), np.nan)
    read: dict[str, list[Series]] = {}
    for view, rows in points.items():
        by_name = {Path(f).name: f for f in series_folders.get(view, [])}
        for channel, series_id, instance, x, y in rows:
            folder = by_name.get(str(int(series_id)))
            if folder is None:
                raise DataError(f"train_label_coordinates.csv: series {int(series_id)} is not a {view} series of its "
                                "study in train_series_descriptions.csv")  # fmt: skip
            if folder not in read:
                read[folder] = read_view(Path(folder))
            stack = next((s for s in read[folder] if int(instance) in s.instance_numbers), None)
            if stack is None:
                raise DataError(f"{folder}: no slice with InstanceNumber {int(instance)} (train_label_coordinates.csv)")
            require_inside(stack, int(instance), x, y)
            out[int(channel)] = point_lps(stack, int(instance), x, y)
    return out


class LocaliserInput(Transform):  # a MONAI Transform: PersistentDataset caches only what Transforms compute
    """A study (series folders, labelled points) -> its cached stage-1 sample: the input image, each sagittal
    stack's geometry, and the labelled points in LPS and in the input grid."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, item: dict) -> dict:
        with clock.stage("decode"):
            stacks = {view: sagittal_stack(item, view) for view in ("sag_t2", "sag_t1")}
            planes = []
            for view, stack in stacks.items():
                if stack is None:
                    planes.append(np.zeros((INPUT_SLICES[view], self.size, self.size), np.float32))
                else:
                    planes.append(resize_slices(stack, input_slices(stack, view), self.size))
        lps = labelled_lps(item["series"], item.get("points", {}))
        grid = np.full((POINTS, 2), np.nan, dtype=np.float32)
        for channel in np.flatnonzero(np.isfinite(lps).all(axis=1)):
            stack = stacks[VIEW_OF_GROUP[group_of(channel)]]
            if stack is not None:
                _, row, col = stack.lps_to_voxel(lps[channel])
                grid[channel] = to_grid(row, col, stack.pixels.shape[1:], self.size)
        return {"study_id": item["study_id"], "image": np.concatenate(planes).astype(np.float16),
                "geometry": {view: geometry_only(s) for view, s in stacks.items()},
                "points_lps": lps, "points_grid": grid}  # fmt: skip


def as_arrays(item: dict) -> dict:
    """A cached sample as NumPy: the cache hands back tensors where the first, computing pass gave arrays."""
    arrays = {k: np.asarray(item[k]) for k in ("image", "points_grid")}
    return {**item, **arrays, "points_lps": np.asarray(item["points_lps"], dtype=np.float64)}


class LocaliserSamples(Dataset):
    def __init__(self, cached, sigma: float, augment=None):
        self.cached, self.sigma, self.augment = cached, sigma, augment

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int) -> dict:
        item = as_arrays(self.cached[index])
        image = torch.as_tensor(item["image"], dtype=torch.float32)
        known = np.flatnonzero(np.isfinite(item["points_grid"]).all(axis=1))
        rows = [[c, 0.0, *item["points_grid"][c]] for c in known]
        heatmap = torch.from_numpy(gaussian_heatmaps(np.asarray(rows).reshape(-1, 4), POINTS, image.shape[1:],
                                                     self.sigma))  # fmt: skip
        if self.augment is not None:
            moved = self.augment({"image": image, "heatmap": heatmap})
            image, heatmap = (torch.as_tensor(np.asarray(moved[k]), dtype=torch.float32) for k in ("image", "heatmap"))
        return {"image": image, "target": heatmap, "id": int(item["study_id"])}


@register_loss("rsna_localiser", "heatmap")
class HeatmapLoss(nn.Module):
    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return spatial_softmax_loss(logits, target)


def soft_argmax(logits: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) heatmap logits -> (N, C, 2) expected (row, column) under each channel's spatial softmax."""
    n, c, h, w = logits.shape
    p = logits.float().flatten(2).softmax(dim=-1).view(n, c, h, w)
    rows = (p.sum(dim=3) * torch.arange(h, dtype=torch.float32)).sum(dim=-1)
    cols = (p.sum(dim=2) * torch.arange(w, dtype=torch.float32)).sum(dim=-1)
    return torch.stack([rows, cols], dim=-1).cpu().numpy()


def decode(grid_points: np.ndarray, geometry: dict, offsets: dict[str, float], size: int) -> np.ndarray:
    """(15, 2) input-grid (row, column) -> (15, 3) LPS: in-plane from the grid, depth from the stack's centre plus
    the group's offset along its normal; NaN where the view is missing."""
    out = np.full((POINTS, 3), np.nan)
    for channel in range(POINTS):
        group = group_of(channel)
        stack = geometry.get(VIEW_OF_GROUP[group])
        if stack is None:
            continue
        row, col = from_grid(*grid_points[channel], stack["shape"], size)
        series = stack["series"]
        out[channel] = series.voxel_to_lps(centre_index(series), row, col) + offsets.get(group, 0.0) * series.normal
    return out


def depth_offsets(items) -> dict[str, float]:
    """Per group, the median distance (mm, along the stack's normal) of its labelled points from the stack's centre."""
    found = {group: [] for group in GROUPS}
    for item in items:
        for channel in np.flatnonzero(np.isfinite(item["points_lps"]).all(axis=1)):
            stack = item["geometry"].get(VIEW_OF_GROUP[group_of(channel)])
            if stack is not None:
                series = stack["series"]
                centre = series.voxel_to_lps(centre_index(series), 0.0, 0.0)
                found[group_of(channel)].append(float((item["points_lps"][channel] - centre) @ series.normal))
    return {group: float(np.median(values)) if values else 0.0 for group, values in found.items()}


def point_errors(predicted: np.ndarray, item: dict) -> pd.DataFrame:
    """Per labelled point: its 3D error in mm and its in-plane error in pixels of the original series."""
    rows = []
    for channel in np.flatnonzero(np.isfinite(item["points_lps"]).all(axis=1) & np.isfinite(predicted).all(axis=1)):
        series = item["geometry"][VIEW_OF_GROUP[group_of(channel)]]["series"]
        truth, guess = series.lps_to_voxel(item["points_lps"][channel]), series.lps_to_voxel(predicted[channel])
        rows.append({"study_id": int(item["study_id"]), "channel": int(channel), "group": group_of(channel),
                     "mm": float(np.linalg.norm(predicted[channel] - item["points_lps"][channel])),
                     "px": float(np.hypot(*(truth[1:] - guess[1:])))})  # fmt: skip
    return pd.DataFrame(rows, columns=["study_id", "channel", "group", "mm", "px"])


class LocaliserTraining(FoldTraining):
    """Stage 1's side of fold training: ranked by the median 3D error (mm) of the validation studies' points."""

    loss_kind = "rsna_localiser"
    metric_name = "error_mm"
    metric_mode = "min"
    oof_file = "points.csv"
    num_outputs = POINTS

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.size = int(cfg["data"]["size"])
        self.in_channels = sum(INPUT_SLICES.values())
        self._studies = {split: load_studies(self.data_dir, split) for split in ("train", "test")}
        self._items: dict[int, dict] = {}
        self.offsets = {group: 0.0 for group in GROUPS}

    def loss(self) -> nn.Module:
        return HeatmapLoss()

    def samples_absent(self, missing: list, total: int) -> None:
        absent_studies(self.cfg, self.data_dir, missing, total)

    def ids(self, split: str) -> list[int]:
        return [s.study_id for s in self._studies[split]]

    def cached(self, ids: list[int], split: str):
        by_id = {s.study_id: s for s in self._studies[split]}
        points = landmark_points(self.data_dir, POINT_CONDITIONS) if split == "train" else {}
        items = [{"study_id": i, "series": {v: [str(p) for p in f] for v, f in by_id[i].series.items()},
                  "points": points.get(i, {}), "test": split == "test"} for i in ids]  # fmt: skip
        config = {"competition": "rsna", "stage": "localiser", "size": self.size, "version": 2}
        cached = cached_dataset(items, LocaliserInput(self.size), paths.cache_root() / "rsna_localiser", config)
        for item in cached:
            self._items[int(item["study_id"])] = as_arrays(item)
        return cached

    def labelled(self, ids: list[int]) -> dict[int, np.ndarray]:
        """(15, 3) LPS of each training study's labelled canal and foramen points (NaN where unlabelled)."""
        self.cached(ids, "train")
        return {i: self._items[i]["points_lps"] for i in ids}

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> LocaliserSamples:
        from .training import augmentation

        cached = self.cached(ids, split)
        if augment_seed is not None:  # the training studies: their labels give each group's depth
            self.offsets = depth_offsets(self._items[i] for i in ids)
        augment = augmentation(augment_seed) if augment_seed is not None else None
        return LocaliserSamples(cached, float(self.cfg["loss"].get("heatmap_sigma") or 2.0), augment)

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return soft_argmax(logits)

    def points(self, ids: list[int], grid: np.ndarray) -> np.ndarray:
        """(studies, 15, 3) LPS of predicted input-grid points."""
        geometry = [self._items[i]["geometry"] for i in ids]
        return np.stack([decode(g, geo, self.offsets, self.size) for g, geo in zip(grid, geometry, strict=True)])

    def errors(self, ids: list[int], grid: np.ndarray) -> pd.DataFrame:
        predicted = self.points(ids, grid)
        frames = [point_errors(p, self._items[i]) for i, p in zip(ids, predicted, strict=True)]
        return pd.concat(frames, ignore_index=True)

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        errors = self.errors(ids, probs)
        if errors.empty:
            raise KitError("the localiser's validation studies have no labelled canal or foramen point")
        scores = {"error_mm": float(errors["mm"].median()), "error_px": float(errors["px"].median())}
        for group, part in errors.groupby("group"):
            scores[f"{group}_mm"] = float(part["mm"].median())
        return scores

    def prior(self, ids: list[int]) -> np.ndarray:
        """Each point's mean input-grid position over the training studies' labels."""
        grid = np.stack([self._items[i]["points_grid"] for i in ids if i in self._items])
        mean = np.nanmean(grid, axis=0)
        return np.where(np.isfinite(mean), mean, self.size / 2)

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        lps = self.points(ids, probs)
        frame = pd.DataFrame(
            [{"study_id": i, "channel": c, "row": g[c, 0], "col": g[c, 1], "L": p[c, 0], "P": p[c, 1], "S": p[c, 2]}
             for i, g, p in zip(ids, probs, lps, strict=True) for c in range(POINTS)]
        )  # fmt: skip
        write_text_atomic(path.parent / OFFSETS_FILE, json.dumps(self.offsets, indent=1))
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        return path

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        frame = pd.read_csv(path).sort_values(["study_id", "channel"], kind="stable")
        ids = list(dict.fromkeys(int(i) for i in frame["study_id"]))
        return ids, frame[["row", "col"]].to_numpy().reshape(len(ids), POINTS, 2)

    def write_submission(self, path: Path, ids: list, probs: np.ndarray) -> Path:
        raise KitError("the localiser is stage 1 of rsna_two_stage; predict with the two-stage experiment")


def read_points(path: Path) -> dict[int, np.ndarray]:
    """A localiser's points.csv as (15, 3) LPS per study."""
    frame = pd.read_csv(path).sort_values(["study_id", "channel"], kind="stable")
    return {int(study): part[["L", "P", "S"]].to_numpy() for study, part in frame.groupby("study_id")}
