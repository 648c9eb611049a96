"""What fold training needs from RSNA: studies as 2.5D tensors, the loss, the metric, the OOF and submission formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.transforms import Compose, RandAffined, RandGaussianNoised, RandScaleIntensityd
from torch import nn
from torch.utils.data import Dataset

from kernels.focal import focal_loss
from kit import paths
from kit.competitions.parts import Explaining, FoldTraining, Oracle, Stacking
from kit.data.cache import cached_dataset
from kit.data.heatmaps import gaussian_heatmaps, spatial_softmax_loss
from kit.data.transforms import study_preprocess
from kit.errors import KitError
from kit.io import atomic_path
from kit.losses import register_loss

from . import metric, submission
from .layout import (
    CONDITIONS,
    LEVELS,
    MISSING,
    ORACLE_CSV,
    SEVERITY_COLUMNS,
    SEVERITY_WEIGHTS,
    TARGETS,
    VIEW_OF_CONDITION,
)
from .tables import absent_studies, landmark_points, load_studies

VIEW_ORDER = ("sag_t1", "sag_t2", "axial_t2")
AXCODES = {"sag_t1": "RIP", "sag_t2": "RIP", "axial_t2": "SPL"}  # sagittal: slices R→L, rows S→I, columns A→P
NUM_CLASSES = len(SEVERITY_COLUMNS)
SPINAL = [TARGETS.index(f"{CONDITIONS[0]}_{level}") for level in LEVELS]


class StudyStacks(Dataset):
    """Cached preprocessed studies as {'image': (3·slices, H, W) float32, 'target', 'id': study_id}: the target is
    the (25,) long labels, or with `heatmap` {'labels', 'heatmap': (channels, H, W)} whose Gaussians sit on the
    labelled points projected into their views (heatmap['views'], all resampled to the same H×W); a channel without a
    point, e.g. every channel of a test study, stays zero and the heatmap loss leaves it out."""

    def __init__(self, cached, labels: dict[int, np.ndarray] | None, augment=None, heatmap: dict | None = None):
        self.cached, self.labels, self.augment, self.heatmap = cached, labels, augment, heatmap

    def __len__(self) -> int:
        return len(self.cached)

    def __getitem__(self, index: int) -> dict:
        item = self.cached[index]
        sample = {
            "image": torch.cat([torch.as_tensor(np.asarray(item[v]), dtype=torch.float32)[0] for v in VIEW_ORDER])
        }
        if self.heatmap is not None:
            projected = item.get("points", {})
            points = np.concatenate(
                [np.zeros((0, 4))] + [projected.get(v, np.zeros((0, 4))) for v in self.heatmap["views"]]
            )
            maps = gaussian_heatmaps(points, self.heatmap["channels"], sample["image"].shape[1:], self.heatmap["sigma"])
            sample["heatmap"] = torch.from_numpy(maps)
        if self.augment is not None:
            sample = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in self.augment(sample).items()}
        study_id = int(item["study_id"])
        labels = self.labels[study_id] if self.labels is not None else np.full(len(TARGETS), MISSING)
        target = torch.tensor(labels, dtype=torch.long)
        if self.heatmap is not None:
            target = {"labels": target, "heatmap": sample["heatmap"]}
        return {"image": sample["image"], "target": target, "id": study_id}


def augmentation(seed: int) -> Compose:
    """Label-preserving only: no left-right flip, which would swap left and right conditions. Heatmaps, where
    present, move with the image; intensity changes touch the image alone."""
    augment = Compose(
        [
            RandAffined(
                keys=["image", "heatmap"], prob=0.7, rotate_range=0.08, translate_range=(5, 5),
                scale_range=(0.08, 0.08), padding_mode="zeros", allow_missing_keys=True,
            ),
            RandScaleIntensityd(keys="image", factors=0.15, prob=0.5),
            RandGaussianNoised(keys="image", prob=0.3, std=0.02),
        ]
    )  # fmt: skip
    augment.set_random_state(seed=seed)
    return augment


@register_loss("rsna", "weighted_ce")
class WeightedCrossEntropy(nn.Module):
    """Cross-entropy per condition×level with the metric's weights (1/2/4), unlabelled targets ignored, plus an
    optional any-severe-spinal term (binary log loss of the highest spinal severe probability)."""

    def __init__(self, any_severe_weight: float = 0.0, gamma: float | None = None):
        super().__init__()
        if gamma is not None:
            raise KitError("loss.gamma applies to the focal loss only (loss.name=focal); set loss.gamma=null")
        self.register_buffer("class_weight", torch.tensor(SEVERITY_WEIGHTS))
        self.any_severe_weight = any_severe_weight

    def per_target(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labelled = target != MISSING
        weight = self.class_weight[target.clamp(min=0)] * labelled
        ce = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
        return (ce * weight).sum() / weight.sum().clamp(min=1.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float().view(-1, len(TARGETS), NUM_CLASSES)
        loss = self.per_target(logits.reshape(-1, NUM_CLASSES), target.reshape(-1))
        if self.any_severe_weight:
            spinal_target = target[:, SPINAL]
            known = (spinal_target != MISSING).any(dim=1)
            label = (spinal_target == 2).any(dim=1).float()
            severe = logits[:, SPINAL].softmax(dim=-1)[..., 2].amax(dim=1).clamp(1e-6, 1 - 1e-6)
            bce = F.binary_cross_entropy(severe, label, weight=torch.where(label > 0, 4.0, 1.0), reduction="none")
            loss = loss + self.any_severe_weight * (bce * known).sum() / known.sum().clamp(min=1)
        return loss


@register_loss("rsna", "focal")
class SeverityFocalLoss(WeightedCrossEntropy):
    """Softmax focal loss per condition×level (kernels.focal) with alpha = the metric's weights (1/2/4), averaged
    over labelled targets; the same optional any-severe-spinal term."""

    def __init__(self, any_severe_weight: float = 0.0, gamma: float | None = None):
        super().__init__(any_severe_weight)
        self.gamma = 2.0 if gamma is None else gamma

    def per_target(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.class_weight, ignore_index=MISSING)


class WithHeatmapLoss(nn.Module):
    """The severity loss on out['logits'] plus `weight` × the level heatmaps' spatial-softmax cross-entropy, for
    models that also return out['heatmap']."""

    def __init__(self, severity: nn.Module, weight: float):
        super().__init__()
        self.severity, self.weight = severity, weight

    def forward(self, out: dict, target: dict) -> torch.Tensor:
        loss = self.severity(out["logits"], target["labels"])
        if self.weight:
            loss = loss + self.weight * spatial_softmax_loss(out["heatmap"], target["heatmap"])
        return loss


# model.heatmaps -> the conditions whose labelled points it predicts: the five levels on the midline (Sagittal T2),
# or every condition × level on its own view (foramina on Sagittal T1, lateral recesses on Axial T2).
HEATMAP_CONDITIONS = {len(LEVELS): CONDITIONS[:1], len(TARGETS): CONDITIONS}


def heatmap_spec(cfg: dict) -> dict | None:
    """What the landmark-heatmap head needs from the config, checked: None when the model has no heatmap head."""
    channels = cfg["model"].get("heatmaps") or 0
    weight = cfg["loss"].get("heatmap_weight") or 0.0
    if not channels:
        if weight:
            raise KitError("loss.heatmap_weight needs a model with a heatmap head: set model.heatmaps=5 or 25")
        return None
    if channels not in HEATMAP_CONDITIONS:
        raise KitError(
            f"model.heatmaps={channels}: the heatmap head predicts the {len(LEVELS)} spinal level positions (5) or "
            f"every condition × level ({len(TARGETS)})"
        )
    if not weight and not cfg["model"].get("level_attention"):
        raise KitError("model.heatmaps without loss.heatmap_weight (or model.level_attention) would train nothing")
    conditions = HEATMAP_CONDITIONS[channels]
    return {
        "conditions": conditions,
        "views": tuple(dict.fromkeys(VIEW_OF_CONDITION[c] for c in conditions)),
        "channels": channels,
        "sigma": float(cfg["loss"].get("heatmap_sigma") or 2.0),
    }


class RsnaTraining(FoldTraining, Explaining, Stacking, Oracle):
    """The competition's side of fold training, built from an experiment config."""

    loss_kind = "rsna"
    metric_name = "score"
    metric_mode = "min"
    oof_file = "oof.csv"
    num_outputs = len(TARGETS) * NUM_CLASSES

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        data = cfg["data"]
        self.size = {view: (data["slices"], data["size"], data["size"]) for view in VIEW_ORDER}
        self.in_channels = len(VIEW_ORDER) * data["slices"]
        self._studies = {split: load_studies(self.data_dir, split) for split in ("train", "test")}
        self.labels = {s.study_id: s.labels for s in self._studies["train"]}
        self.heatmap = heatmap_spec(cfg)
        self._points: dict[int, list] | None = None

    def loss(self) -> nn.Module:
        spec = dict(self.cfg["loss"])
        weight = spec.pop("heatmap_weight", 0.0) or 0.0
        spec.pop("heatmap_sigma", None)
        severity = self.loss_from(spec)
        return WithHeatmapLoss(severity, weight) if self.heatmap else severity

    def landmark_points(self, split: str) -> dict[int, dict[str, list]]:
        """The heatmap conditions' labelled points per training study and view (train_label_coordinates.csv, read
        once)."""
        if split != "train" or self.heatmap is None:
            return {}
        if self._points is None:
            self._points = landmark_points(self.data_dir, self.heatmap["conditions"])
        return self._points

    def samples_absent(self, missing: list, total: int) -> None:
        absent_studies(self.cfg, self.data_dir, missing, total)

    def ids(self, split: str) -> list[int]:
        return [s.study_id for s in self._studies[split]]

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> StudyStacks:
        by_id = {s.study_id: s for s in self._studies[split]}
        points = self.landmark_points(split)
        items = [{"study_id": i, "series": {v: [str(p) for p in f] for v, f in by_id[i].series.items()}} for i in ids]
        for item in items:
            if item["study_id"] in points:
                item["points"] = points[item["study_id"]]
        config = {"competition": "rsna", "size": self.size, "axcodes": AXCODES, "version": 3}
        transform = study_preprocess(VIEW_ORDER, self.size, AXCODES)
        cached = cached_dataset(items, transform, paths.cache_root() / "rsna", config)
        augment = augmentation(augment_seed) if augment_seed is not None else None
        return StudyStacks(cached, self.labels if split == "train" else None, augment, self.heatmap)

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().view(-1, len(TARGETS), NUM_CLASSES).softmax(dim=-1).cpu().numpy()

    def label_frame(self, ids: list[int]) -> pd.DataFrame:
        return pd.DataFrame(np.stack([self.labels[i] for i in ids]), index=ids, columns=list(TARGETS))

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        solution = submission.solution_frame(self.label_frame(ids))
        return metric.score_parts(solution, submission.submission_frame(ids, probs))

    def prior(self, ids: list[int]) -> np.ndarray:
        """Class frequencies per target over `ids` (add-one smoothed): the prior-frequency baseline's prediction."""
        labels = self.label_frame(ids).to_numpy()
        counts = np.stack([(labels == c).sum(axis=0) for c in range(NUM_CLASSES)], axis=-1) + 1.0
        return counts / counts.sum(axis=-1, keepdims=True)

    def oracle(self, ids: list[int]) -> np.ndarray | None:
        """oracle.csv's true probabilities (kit synth writes it) of the labelled cells of `ids`; unlabelled cells,
        which the metric skips, get a third each."""
        path = self.data_dir / ORACLE_CSV
        if not path.exists():
            return None
        frame = pd.read_csv(path).set_index("row_id")
        labelled = self.label_frame(ids).to_numpy().reshape(-1) != MISSING
        wanted = pd.Index(submission.row_ids(ids))
        absent = wanted[labelled].difference(frame.index)
        if len(absent):
            raise KitError(f"{path}: no row for {len(absent)} labelled cell(s) of train.csv, e.g. {absent[0]}")
        probs = frame.reindex(wanted)[list(SEVERITY_COLUMNS)].fillna(1 / NUM_CLASSES).to_numpy()
        return probs.reshape(len(ids), len(TARGETS), NUM_CLASSES)

    @staticmethod
    def prediction_frame(ids: list[int], probs: np.ndarray) -> pd.DataFrame:
        return submission.submission_frame(ids, probs)

    @staticmethod
    def read_predictions(frame: pd.DataFrame) -> tuple[list[int], np.ndarray]:
        """The inverse of prediction_frame: study ids and (studies, 25, 3) probabilities."""
        ids = list(dict.fromkeys(int(submission.split_row_id(r)[0]) for r in frame["row_id"]))
        rows = frame.set_index("row_id").loc[submission.row_ids(ids), list(SEVERITY_COLUMNS)]
        return ids, rows.to_numpy().reshape(len(ids), len(TARGETS), NUM_CLASSES)

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        with atomic_path(path) as tmp:
            self.prediction_frame(ids, probs).to_csv(tmp, index=False)
        return path

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        return self.read_predictions(pd.read_csv(path))

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        return submission.write_submission(path, submission.submission_frame(ids, probs), submission.row_ids(ids))

    def explain(self, model: nn.Module, out: Path, ids: list[int], probs: np.ndarray, studies: int = 3) -> list[Path]:
        """Per validation study (those with the most severe labels first): each condition × level's attention map
        (or landmark heatmap) over the middle slice of the condition's view, with the predicted severity."""
        from kit.report.panels import save_panels

        order = sorted(range(len(ids)), key=lambda k: -int((self.labels[ids[k]] == 2).sum()))[:studies]
        picked = [ids[k] for k in order]
        dataset = self.dataset(picked, "train")
        slices = self.size[VIEW_ORDER[0]][0]
        written = []
        for k, study in zip(order, picked, strict=True):
            image = dataset[picked.index(study)]["image"]
            with torch.no_grad():
                output = model(image[None])
            if not isinstance(output, dict) or "heatmap" not in output:
                raise KitError("explain for RSNA draws the attention or heatmap maps: the model has neither "
                               "(model.level_attention or model.heatmaps)")  # fmt: skip
            maps = output["heatmap"][0].float()
            maps = maps.flatten(1).softmax(dim=1).view_as(maps).numpy()
            conditions = CONDITIONS if len(maps) == len(TARGETS) else CONDITIONS[:1]
            panels = []
            for c, condition in enumerate(conditions):
                view = VIEW_ORDER.index(VIEW_OF_CONDITION[condition])
                background = image[view * slices + slices // 2].numpy()
                background = (background - background.min()) / max(float(np.ptp(background)), 1e-6)
                for j, level in enumerate(LEVELS):
                    heat = maps[c * len(LEVELS) + j]
                    heat = heat / max(float(heat.max()), 1e-12)
                    rgb = np.stack([background] * 3, axis=-1) * 0.65
                    rgb[..., 0] = np.clip(rgb[..., 0] + heat, 0, 1)
                    target = TARGETS.index(f"{condition}_{level}")
                    severity = SEVERITY_COLUMNS[int(np.asarray(probs[k])[target].argmax())]
                    truth = int(self.labels[study][target])
                    truth = SEVERITY_COLUMNS[truth] if truth >= 0 else "unlabelled"
                    panels.append(
                        ((rgb * 255).astype(np.uint8), f"{condition[:14]} {level}\n{severity} (true {truth})")
                    )
            written.append(save_panels(out / f"attention_study{study}.png", panels, f"study {study}", len(LEVELS)))
        return written

    rows_per_sample = len(TARGETS)
    meta_classes = NUM_CLASSES
    meta_params = {"learning_rate": 0.02, "n_estimators": 400, "num_leaves": 3, "min_child_samples": 60}
    meta_inner_cv = True  # a few thousand rows: the number of trees is chosen per fold, not fixed

    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame:
        """Per condition×level row: each model's three probabilities there, at the level above and below, on the
        other side of the same condition, and the study's mean probabilities and highest severe probability."""
        columns = {}
        grid_shape = (len(CONDITIONS), len(LEVELS))
        condition, level = np.meshgrid(np.arange(grid_shape[0]), np.arange(grid_shape[1]), indexing="ij")
        n = len(probs_by_model[0])
        columns["condition"] = np.tile(condition.ravel(), n)
        columns["level"] = np.tile(level.ravel(), n)
        other_side = [CONDITIONS.index(opposite_side(c)) if opposite_side(c) else -1 for c in CONDITIONS]
        for name, probs in zip(model_names, probs_by_model, strict=True):
            grid = np.asarray(probs, dtype=np.float32).reshape(n, *grid_shape, NUM_CLASSES)
            padded = np.full((n, grid_shape[0], grid_shape[1] + 2, NUM_CLASSES), np.nan, dtype=np.float32)
            padded[:, :, 1:-1] = grid
            other = np.where(np.array(other_side)[None, :, None, None] >= 0, grid[:, np.maximum(other_side, 0)], np.nan)
            views = {"": grid, "above_": padded[:, :, :-2], "below_": padded[:, :, 2:], "other_side_": other}
            for prefix, view in views.items():
                for k, severity in enumerate(SEVERITY_COLUMNS):
                    columns[f"{name}__{prefix}{severity}"] = view[..., k].reshape(-1)
            for k, severity in enumerate(SEVERITY_COLUMNS):
                study_mean = grid[..., k].mean(axis=(1, 2))
                columns[f"{name}__study_mean_{severity}"] = np.repeat(study_mean, len(TARGETS))
            columns[f"{name}__study_max_severe"] = np.repeat(grid[..., 2].max(axis=(1, 2)), len(TARGETS))
        return pd.DataFrame(columns)

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        return self.label_frame(ids).to_numpy().reshape(-1)

    def meta_weights(self, targets: np.ndarray) -> np.ndarray:
        return np.asarray(SEVERITY_WEIGHTS)[targets]

    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        return np.asarray(probs).reshape(-1, NUM_CLASSES)

    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        return row_probs.reshape(n_samples, len(TARGETS), NUM_CLASSES)


def opposite_side(condition: str) -> str | None:
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if condition.startswith(side):
            return other + condition[len(side) :]
    return None
