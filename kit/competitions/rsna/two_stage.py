"""`rsna_two_stage`: stage 1 (the localiser) finds the canal and foramen points of each level; stage 2 classifies
crops around them. Both train under runs/<exp>/fold<k>/ (stage 1 in its localiser/ folder) from one command.

Leakage: validation crops come from the fold's own stage-1 OOF points and test crops from the folds' stage-1
predictions, never from labels; training crops are centred on the labelled points and shifted each epoch by about
stage 1's measured error.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Transform
from scipy.optimize import minimize_scalar
from torch.utils.data import Dataset

from kit import paths
from kit.competitions.parts import Staged
from kit.data.cache import cached_dataset
from kit.errors import KitError
from kit.runtime import checkpoint, clock
from kit.schema import Data

from . import crop_model  # noqa: F401 - registers the stage-2 model, level_crop_mil
from .crops import CROP_KINDS, level_gap, study_crops
from .layout import CONDITIONS, LEVELS, SEVERITY_WEIGHTS, TARGETS
from .localiser import OFFSETS_FILE, LocaliserTraining, read_points, sagittal_stack, view_stacks
from .tables import fallback, load_studies, read_labels
from .training import NUM_CLASSES, RsnaTraining

STAGE = "localiser"
SWAPPED = [TARGETS.index(t.replace("left_", "@").replace("right_", "left_").replace("@", "right_")) for t in TARGETS]
FLIPPED_KINDS = [CROP_KINDS.index(k) for k in ("spinal", "right_foramen", "left_foramen", "axial")]


def localiser_config(cfg: dict) -> dict:
    """Stage 1's config: the experiment's data and trainer sections with the localiser section's changes."""
    section = cfg.get(STAGE)
    if not isinstance(section, dict) or "model" not in section:
        raise KitError(f"config: the two-stage experiment needs a {STAGE} section with a model")
    return {"name": cfg["name"], "competition": cfg["competition"], "stage": STAGE,
            "data": {**cfg["data"], **section.get("data", {})}, "model": dict(section["model"]),
            "loss": {"name": "heatmap", **section.get("loss", {})},
            "trainer": {**cfg["trainer"], **section.get("trainer", {})}}  # fmt: skip


class CropInput(Transform):  # a MONAI Transform: PersistentDataset caches only what Transforms compute
    """A study and its 15 level points (LPS) -> its cached crops (levels, kinds, slices, P, P) and level gap."""

    def __init__(self, size: int, slices: int, scales: list[float]):
        self.size, self.slices, self.scales = size, slices, scales

    def __call__(self, item: dict) -> dict:
        with clock.stage("decode"):
            views = {view: [sagittal_stack(item, view)] for view in ("sag_t2", "sag_t1")}
            views["axial_t2"] = view_stacks(item, "axial_t2")
        points = np.asarray(item["points"], dtype=np.float64)
        with clock.stage("crops"):
            crops = study_crops(views, points, self.size, self.slices, self.scales)
        return {"study_id": item["study_id"], "crops": crops, "gap": level_gap(points[: len(LEVELS)])}


class CropAugment:
    """Training only: each crop shifted by a Gaussian of stage 1's error (in its pixels), a left-right mirror that
    swaps the left and right labels, and an intensity scale."""

    def __init__(self, seed: int, error_mm: float, scales: list[float], crop: int):
        self.error_mm, self.scales, self.crop = error_mm, scales, crop
        self.set_random_state(seed)

    def set_random_state(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, crops: np.ndarray, labels: np.ndarray, gap: float) -> tuple[np.ndarray, np.ndarray]:
        margin = (crops.shape[-1] - self.crop) // 2
        out = np.empty((*crops.shape[:3], self.crop, self.crop), dtype=np.float32)
        for kind, scale in enumerate(self.scales):
            sigma = self.error_mm / (scale * gap / self.crop)
            for level in range(crops.shape[0]):
                dy, dx = np.clip(np.round(self.rng.normal(0.0, sigma, 2)), -margin, margin).astype(int)
                y, x = margin + dy, margin + dx
                out[level, kind] = crops[level, kind, :, y : y + self.crop, x : x + self.crop]
        if self.rng.random() < 0.5:
            out = out[:, FLIPPED_KINDS]
            out[:, :3] = out[:, :3, ::-1]  # sagittal slices run right to left: a mirror reverses them
            out[:, 3] = out[:, 3, :, :, ::-1]  # axial columns run towards the patient's left
            labels = labels[SWAPPED]
        return np.ascontiguousarray(out) * self.rng.uniform(0.85, 1.15), labels


class LevelCrops(Dataset):
    def __init__(self, cached, labels: dict | None, crop: int, augment: CropAugment | None = None):
        self.cached, self.labels, self.crop, self.augment = cached, labels, crop, augment

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int) -> dict:
        item = self.cached[index]
        study = int(item["study_id"])
        labels = np.array(self.labels[study]) if self.labels is not None else np.full(len(TARGETS), -1)
        crops = np.asarray(item["crops"], dtype=np.float32)
        if self.augment is not None:
            crops, labels = self.augment(crops, labels, float(item["gap"]))
        else:
            margin = (crops.shape[-1] - self.crop) // 2
            crops = crops[..., margin : margin + self.crop, margin : margin + self.crop]
        image = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
        return {"image": image, "target": torch.as_tensor(labels, dtype=torch.long), "id": study}


class TwoStageTraining(RsnaTraining, Staged):
    final_stage = "stage 2"  # what the timings of a prediction call the last model's own time
    """Stage 2's side of fold training; formats, metric and stacking are RSNA's."""

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        data = cfg["data"]
        self.crop, self.slices = int(data["crop"]), int(data["crop_slices"])
        self.scales = [float(s) for s in data["crop_scales"]]
        if len(self.scales) != len(CROP_KINDS):
            raise KitError(f"config: data.crop_scales needs {len(CROP_KINDS)} numbers ({', '.join(CROP_KINDS)})")
        self.cached_size = int(round(self.crop * (1 + 2 * Data.check(data).crop_margin)))
        self.in_channels = 1
        self._studies = {split: load_studies(self.data_dir, split) for split in ("train", "test")}
        self.labels = {s.study_id: s.labels for s in self._studies["train"]}
        self.heatmap = None
        self.fold: int | None = None  # set by start_fold

    def fold_dir(self) -> Path:
        if self.fold is None:
            raise KitError("rsna_two_stage: no fold given for the validation crops (they come from its stage 1)")
        return paths.fold_dir(self.cfg["name"], self.fold) / STAGE

    def start_fold(self, fold: int) -> list[dict]:
        self.fold = fold
        return [localiser_config(self.cfg)]

    def localiser(self) -> LocaliserTraining:
        return LocaliserTraining(localiser_config(self.cfg), self.data_dir)

    def labelled_points(self, ids: list[int]) -> dict[int, np.ndarray]:
        return self.localiser().labelled(ids)

    def predicted_points(self, ids: list[int]) -> dict[int, np.ndarray]:
        """The fold's stage-1 OOF points for its validation studies."""
        path = self.fold_dir() / LocaliserTraining.oof_file
        if not path.exists():
            raise KitError(f"{path}: missing; train stage 1 of the fold first (task train-fold exp=... fold=k)")
        points = read_points(path)
        absent = [i for i in ids if i not in points]
        if absent:
            raise KitError(f"{path}: no stage-1 points for study {absent[0]}, which is not in this fold's validation")
        return points

    def test_points(self, ids: list[int]) -> dict[int, np.ndarray]:
        """Every finished fold's stage-1 points for the test studies, averaged in patient millimetres."""
        from kit.runtime.inference import best_model, predict

        root = paths.runs_root() / self.cfg["name"]
        folds = sorted(p.parent for p in root.glob(f"fold*/{STAGE}/summary.json"))
        if not folds:
            raise KitError(f"{root}: no finished stage 1 (task train-fold exp={self.cfg['name']} fold=0 first)")
        stage_cfg, localiser = localiser_config(self.cfg), self.localiser()
        loader = torch.utils.data.DataLoader(localiser.dataset(ids, "test"), stage_cfg["trainer"]["batch_size"])
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        total = 0.0
        for fold in folds:
            localiser.offsets = json.loads((fold / OFFSETS_FILE).read_text())
            order, logits, _ = predict(best_model(stage_cfg, localiser, fold, device), loader, stage_cfg, device)
            total = total + localiser.points(order, localiser.probabilities(logits))
        return dict(zip(ids, total / len(folds), strict=True))

    def stage_error_mm(self) -> float:
        """Stage 1's median error on this fold's validation studies (0 before it has one, e.g. in a benchmark)."""
        if self.fold is None:
            return 0.0
        summary = self.fold_dir() / "summary.json"
        return float(json.loads(summary.read_text())["error_mm"]) if summary.exists() else 0.0

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> LevelCrops:
        if split == "test":
            with clock.stage("stage 1"):
                points = self.test_points(ids)
        elif augment_seed is not None:
            points = self.labelled_points(ids)
        else:
            points = self.predicted_points(ids)
        by_id = {s.study_id: s for s in self._studies[split]}
        items = [{"study_id": i, "series": {v: [str(p) for p in f] for v, f in by_id[i].series.items()},
                  "points": np.round(with_canal(points[i]), 2).tolist(), "test": split == "test"}
                 for i in ids]  # fmt: skip
        if split == "test":
            self._test_items = {item["study_id"]: item for item in items}
            for item in items:
                if not item["series"]:
                    fallback(
                        item["study_id"], "no series left to read; its rows are train.csv's label frequencies", False
                    )
        config = {"competition": "rsna", "stage": "crops", "size": self.cached_size, "slices": self.slices,
                  "scales": self.scales, "version": 2}  # fmt: skip
        transform = CropInput(self.cached_size, self.slices, self.scales)
        cached = cached_dataset(items, transform, paths.cache_root() / "rsna_crops", config)
        augment = None
        if augment_seed is not None:
            augment = CropAugment(augment_seed, self.stage_error_mm(), self.scales, self.crop)
        return LevelCrops(cached, self.labels if split == "train" else None, self.crop, augment)

    def after_fold(self, out: Path) -> dict:
        """Temperature scaling, one temperature per condition, fitted on the fold's OOF by the metric's weighted log
        loss; written into model_best.pt (the model divides its logits by it) and applied to oof.csv."""
        ids, probs = self.load_predictions(out / self.oof_file)
        labels = self.label_frame(ids).to_numpy()
        log_p = np.log(np.clip(probs, 1e-7, 1.0))
        temperature = np.ones(len(CONDITIONS))
        for c in range(len(CONDITIONS)):
            cols = slice(c * len(LEVELS), (c + 1) * len(LEVELS))
            logits, target = log_p[:, cols].reshape(-1, NUM_CLASSES), labels[:, cols].reshape(-1)
            known = target >= 0
            if known.any():
                temperature[c] = fit_temperature(logits[known], target[known])
        scaled = np.repeat(temperature, len(LEVELS))[None, :, None]
        calibrated = torch.from_numpy(log_p / scaled).softmax(dim=-1).numpy()
        before, after = self.evaluate(ids, probs)["score"], self.evaluate(ids, calibrated)["score"]
        best = checkpoint.load(out / "model_best.pt")
        best["model"]["temperature"] = best["model"]["temperature"] * torch.from_numpy(temperature).float()
        checkpoint.save(out / "model_best.pt", best)
        self.save_predictions(out / self.oof_file, ids, calibrated)
        return {"score": after, "score_uncalibrated": before, "temperature": [round(float(t), 4) for t in temperature]}

    def with_prior(self, ids: list[int], probs: np.ndarray) -> np.ndarray:
        """Test studies without any series to read take the label frequencies of every study train.csv lists."""
        blank = [k for k, i in enumerate(ids) if not getattr(self, "_test_items", {}).get(i, {"series": 1})["series"]]
        if not blank:
            return probs
        labels = read_labels(self.data_dir).to_numpy()
        counts = np.stack([(labels == c).sum(axis=0) for c in range(NUM_CLASSES)], axis=-1) + 1.0
        probs = np.array(probs, copy=True)
        probs[blank] = counts / counts.sum(axis=-1, keepdims=True)
        return probs

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        return super().save_predictions(path, ids, self.with_prior(ids, probs))

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """The submission, and beside it <stem>_stage1_<study>.png: the first test study's stage-1 points and crops."""
        written = super().write_submission(path, ids, self.with_prior(ids, probs))
        item = getattr(self, "_test_items", {}).get(ids[0]) if ids else None
        if item is not None:
            from .stage_picture import stage_one_picture

            views = {view: [sagittal_stack(item, view)] for view in ("sag_t2", "sag_t1")}
            views["axial_t2"] = view_stacks(item, "axial_t2")
            picture = Path(path).with_name(f"{Path(path).stem}_stage1_{ids[0]}.png")
            stage_one_picture(picture, ids[0], views, np.asarray(item["points"], dtype=np.float64), 64, self.scales)
        return written

    def explain(self, model, out: Path, ids: list[int], probs: np.ndarray, studies: int = 3) -> list[Path]:
        raise KitError("kit explain draws attention maps of single-stage models; rsna_two_stage has none")


def with_canal(points: np.ndarray) -> np.ndarray:
    """A level without its canal point (no Sagittal T2) takes the midpoint of its two foramina, which still picks
    the axial slices through that disc."""
    points = np.array(points, dtype=np.float64)
    levels = len(LEVELS)
    midpoint = (points[levels : 2 * levels] + points[2 * levels :]) / 2
    missing = ~np.isfinite(points[:levels]).all(axis=1)
    points[:levels][missing] = midpoint[missing]
    return points


def fit_temperature(logits: np.ndarray, target: np.ndarray) -> float:
    """The temperature in [0.25, 4] minimising the weighted (1/2/4) log loss of softmax(logits / T)."""
    weights = np.asarray(SEVERITY_WEIGHTS)[target]
    rows = np.arange(len(target))

    def loss(t: float) -> float:
        z = logits / t
        z = z - z.max(axis=1, keepdims=True)
        log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-(weights * log_softmax[rows, target]).sum() / weights.sum())

    return float(minimize_scalar(loss, bounds=(0.25, 4.0), method="bounded").x)
