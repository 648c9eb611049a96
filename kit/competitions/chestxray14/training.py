"""Multi-label fold training for ChestX-ray14: 14 sigmoid outputs, BCE with per-finding positive weights or the fused
sigmoid focal loss, per-finding AUROC and their mean, a ROC plot and F1-optimal thresholds per fold, and stacking
with one row per image × finding (the finding is a feature of one shared binary meta-model)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import precision_recall_curve, roc_auc_score, roc_curve
from torch import nn
from torch.utils.data import Dataset

from kit.competitions.imageclass.layouts import load_image
from kit.competitions.imageclass.training import MEAN_STD, augmentation, mean_std
from kit.competitions.parts import Explaining, FoldReport, FoldTraining, Stacking
from kit.errors import DataError, KitError
from kit.io import atomic_path, write_text_atomic

from .table import FINDINGS, read_dataset

ID = "Image Index"


def auroc_scores(labels: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """AUROC per finding and their mean; a finding with one class only is NaN (left out of the mean, warned)."""
    scores, undefined = {}, []
    for k, finding in enumerate(FINDINGS):
        y = labels[:, k]
        if y.min() == y.max():
            scores[f"auroc_{finding}"] = float("nan")
            undefined.append(finding)
        else:
            scores[f"auroc_{finding}"] = float(roc_auc_score(y, probs[:, k]))
    if undefined:
        warnings.warn(
            f"AUROC undefined (one class only) for {', '.join(undefined)}; left out of the mean", stacklevel=2
        )
    defined = [v for v in scores.values() if not np.isnan(v)]
    if not defined:
        raise KitError("AUROC is undefined for every finding: no finding has both positive and negative images")
    return {"mean_auroc": float(np.mean(defined)), **scores}


class Radiographs(Dataset):
    def __init__(self, files: list[Path], labels: np.ndarray, ids: list[int], size: int, augment=None,
                 mean_std: tuple = MEAN_STD[3]):  # fmt: skip
        self.files, self.labels, self.ids, self.size, self.augment = files, labels, ids, size, augment
        mean, std = mean_std
        self.mean, self.std = torch.tensor(mean)[:, None, None], torch.tensor(std)[:, None, None]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        image = torch.from_numpy(load_image(self.files[index], self.size, 3).copy()).permute(2, 0, 1).float() / 255.0
        if self.augment is not None:
            image = torch.as_tensor(np.asarray(self.augment({"image": image})["image"]), dtype=torch.float32)
        target = torch.from_numpy(self.labels[index].astype(np.float32))
        return {"image": (image - self.mean) / self.std, "target": target, "id": self.ids[index]}


class ChestTraining(FoldTraining, FoldReport, Explaining, Stacking):
    """Sample ids: positions in train_val_list.txt, then test_list.txt's."""

    loss_kind = "chestxray14"
    metric_name = "mean_auroc"
    metric_mode = "max"
    oof_file = "oof.csv"
    rows_per_sample = len(FINDINGS)
    meta_classes = 2
    meta_params = {"learning_rate": 0.05, "n_estimators": 200, "num_leaves": 15, "min_child_samples": 20}
    meta_inner_cv = True

    def __init__(self, cfg: dict, data_dir: Path):
        self.cfg, self.data_dir = cfg, Path(data_dir)
        self.train, self.test = read_dataset(self.data_dir)
        self.in_channels, self.num_outputs = 3, len(FINDINGS)
        self.size = int(cfg["data"]["size"])
        self.n_train = len(self.train.images)
        self.names = self.train.images + self.test.images
        self.files = self.train.files + self.test.files
        self.labels = np.concatenate([self.train.labels, self.test.labels])

    def ids(self, split: str) -> list[int]:
        return list(range(self.n_train)) if split == "train" else list(range(self.n_train, len(self.names)))

    def dataset(self, ids: list[int], split: str, augment_seed: int | None = None) -> Radiographs:
        augment = augmentation(augment_seed) if augment_seed is not None else None
        return Radiographs(
            [self.files[i] for i in ids], self.labels[ids], ids, self.size, augment, mean_std(self.cfg, 3)
        )

    def loss(self) -> nn.Module:
        spec = dict(self.cfg["loss"])
        pos_weight = spec.pop("pos_weight", None)
        if pos_weight not in (None, "balanced"):
            raise KitError(f"loss.pos_weight={pos_weight!r}; expected balanced or null")
        if pos_weight and spec.get("name") != "bce":
            raise KitError("loss.pos_weight applies to the bce loss only (the focal loss weighs by loss.alpha)")
        if pos_weight:
            positives = self.train.labels.sum(axis=0).astype(np.float64)
            negatives = len(self.train.labels) - positives
            spec["pos_weight"] = torch.tensor(negatives / np.maximum(positives, 1), dtype=torch.float32)
        return self.loss_from(spec)

    def test_labelled(self) -> bool:
        return len(self.test.images) > 0

    @staticmethod
    def probabilities(logits: torch.Tensor) -> np.ndarray:
        return logits.float().sigmoid().cpu().numpy()

    def evaluate(self, ids: list[int], probs: np.ndarray) -> dict[str, float]:
        return auroc_scores(self.labels[np.asarray(ids, dtype=np.int64)], np.asarray(probs))

    def prior(self, ids: list[int]) -> np.ndarray:
        return (self.labels[ids].sum(axis=0) + 1.0) / (len(ids) + 2.0)

    def save_predictions(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        """Image Index, then (labelled train_val rows) the true labels as y_<finding>, then one probability per
        finding."""
        frame = pd.DataFrame({ID: [self.names[i] for i in ids]})
        if all(i < self.n_train for i in ids):
            for k, finding in enumerate(FINDINGS):
                frame[f"y_{finding}"] = self.labels[ids, k]
        frame[list(FINDINGS)] = np.asarray(probs, dtype=np.float64)
        with atomic_path(Path(path)) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        return Path(path)

    def load_predictions(self, path: Path) -> tuple[list[int], np.ndarray]:
        frame = pd.read_csv(path, dtype={ID: str})
        missing = [c for c in [ID, *FINDINGS] if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: no column(s) {', '.join(missing)}")
        lookup = {name: i for i, name in enumerate(self.names)}
        unknown = [n for n in frame[ID] if n not in lookup]
        if unknown:
            raise DataError(f"{path}: {ID} {unknown[0]!r} is not in {self.data_dir} ({len(unknown)} such)")
        return [lookup[n] for n in frame[ID]], frame[list(FINDINGS)].to_numpy(np.float32)

    def write_submission(self, path: Path, ids: list[int], probs: np.ndarray) -> Path:
        frame = pd.DataFrame({ID: [self.names[i] for i in ids]})
        frame[list(FINDINGS)] = np.asarray(probs, dtype=np.float64)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(Path(path)) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        return Path(path)

    def report_fold(self, out: Path, ids: list[int], probs: np.ndarray) -> None:
        """roc.png (one curve per finding) and thresholds.json (each finding's F1-optimal threshold on this fold)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels, probs = self.labels[ids], np.asarray(probs)
        figure, axis = plt.subplots(figsize=(7, 7))
        thresholds = {}
        for k, finding in enumerate(FINDINGS):
            if labels[:, k].min() == labels[:, k].max():
                continue
            fpr, tpr, _ = roc_curve(labels[:, k], probs[:, k])
            axis.plot(fpr, tpr, lw=1, label=f"{finding} {roc_auc_score(labels[:, k], probs[:, k]):.3f}")
            precision, recall, cuts = precision_recall_curve(labels[:, k], probs[:, k])
            f1 = 2 * precision[:-1] * recall[:-1] / np.maximum(precision[:-1] + recall[:-1], 1e-12)
            best = int(np.argmax(f1))
            thresholds[finding] = {"threshold": float(cuts[best]), "f1": float(f1[best])}
        axis.plot([0, 1], [0, 1], "k:", lw=0.8)
        axis.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC per finding (validation)")
        axis.legend(fontsize=7, loc="lower right")
        figure.savefig(out / "roc.png", dpi=90, bbox_inches="tight")
        plt.close(figure)
        write_text_atomic(out / "thresholds.json", json.dumps(thresholds, indent=1))

    def explain(
        self, model: nn.Module, out: Path, ids: list[int], probs: np.ndarray, per_finding: int = 2
    ) -> list[Path]:
        """One PNG per finding with positives in the fold: its Grad-CAM on the most confident true positives and
        false positives (negatives scored highest)."""
        from kit.report.gradcam import grad_cams, overlay
        from kit.report.panels import save_panels

        ids, probs = np.asarray(ids), np.asarray(probs)
        labels = self.labels[ids]
        written = []
        for k, finding in enumerate(FINDINGS):
            order = np.argsort(-probs[:, k], kind="stable")
            chosen = [(r, True) for r in order if labels[r, k]][:per_finding]
            chosen += [(r, False) for r in order if not labels[r, k]][:per_finding]
            if not any(right for _, right in chosen):
                continue
            picked = [int(ids[r]) for r, _ in chosen]
            dataset = self.dataset(picked, "train")
            batch = torch.stack([dataset[j]["image"] for j in range(len(picked))])
            cams = grad_cams(model, batch, [k] * len(picked))
            panels = [
                (overlay(load_image(self.files[i], self.size, 3), cam),
                 f"{'positive' if right else 'NEGATIVE'} {self.names[i]} p={probs[r, k]:.2f}")
                for i, cam, (r, right) in zip(picked, cams, chosen, strict=True)
            ]  # fmt: skip
            written.append(save_panels(out / f"gradcam_{k:02d}_{finding}.png", panels, finding))
        return written

    def meta_features(self, probs_by_model: list[np.ndarray], model_names: list[str]) -> pd.DataFrame:
        """One row per image × finding: the finding, each model's probability of it and its mean over findings."""
        n = len(probs_by_model[0])
        columns = {"finding": np.tile(np.arange(len(FINDINGS)), n)}
        for name, probs in zip(model_names, probs_by_model, strict=True):
            probs = np.asarray(probs, dtype=np.float32)
            columns[f"{name}__p"] = probs.reshape(-1)
            columns[f"{name}__image_mean"] = np.repeat(probs.mean(axis=1), len(FINDINGS))
        frame = pd.DataFrame(columns)
        frame["finding"] = frame["finding"].astype("category")
        return frame

    def meta_targets(self, ids: list[int]) -> np.ndarray:
        return self.labels[ids].reshape(-1).astype(np.int64)

    def to_meta(self, probs: np.ndarray) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64).reshape(-1)
        return np.stack([1 - p, p], axis=1)

    def from_meta(self, row_probs: np.ndarray, n_samples: int) -> np.ndarray:
        return np.asarray(row_probs)[:, 1].reshape(n_samples, len(FINDINGS))
