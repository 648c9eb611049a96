"""A model over data: built from a config, its best weights loaded, predicted over a loader (with TTA), and the
probabilities of several folds averaged (PyTorch or ONNX Runtime)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kit.errors import KitError
from kit.models.registry import create_model
from kit.runtime import checkpoint, tta
from kit.runtime.devices import to_device
from kit.runtime.precision import Precision
from kit.schema import trainer as settings

BACKENDS = ("torch", "onnxruntime")


def build_model(cfg: dict, training, pretrained: bool = True) -> torch.nn.Module:
    """The config's model; `pretrained=False` (inference: the fold's checkpoint replaces every weight) skips
    reading the pretrained file, so predict and notebooks need only the fine-tuned checkpoints."""
    dropped = {"name", "weights"} | (set() if pretrained else {"pretrained", "encoder_weights"})
    spec = {k: v for k, v in cfg["model"].items() if k not in dropped}
    return create_model(cfg["model"]["name"], training.in_channels, training.num_outputs, **spec)


def memory_format(cfg: dict):
    return torch.channels_last if cfg["trainer"]["channels_last"] else torch.contiguous_format


@torch.no_grad()
def predict(model, loader, cfg: dict, device: torch.device, loss_fn=None) -> tuple[list[int], torch.Tensor, float]:
    """Logits over a loader, in its order, and the mean loss where targets are known."""
    model.eval()
    ids, logits, total, count = [], [], 0.0, 0
    precision = Precision.for_device(settings(cfg["trainer"]).precision, device)
    views = tta.mode_of(settings(cfg["trainer"]).tta)
    for batch in loader:
        image = to_device(batch["image"], device, memory_format(cfg))
        with precision.autocast():
            out = tta.averaged(model, image, views)
        if loss_fn is not None:
            total += float(loss_fn(out, to_device(batch["target"], device))) * len(image)
            count += len(image)
        ids.extend(int(i) for i in batch["id"])
        logits.append(tta.logits_of(out).float().cpu())
    return ids, torch.cat(logits), total / max(count, 1)


def best_model(cfg: dict, training, fold: Path, device: torch.device) -> torch.nn.Module:
    """A fold's best weights in the config's model, in eval mode and the run's memory format."""
    model = build_model(cfg, training, pretrained=False).to(device)
    checkpoint.load_weights(model, checkpoint.load(fold / "model_best.pt")["model"], fold / "model_best.pt")
    return model.to(memory_format=memory_format(cfg)).eval()


def fold_average(cfg: dict, training, folds: list[Path], dataset, ids: list[int], backend: str = "torch") -> np.ndarray:
    """The probabilities of every fold's best model over a dataset (with the config's TTA), averaged; backend
    onnxruntime runs each fold's exported model.onnx instead."""
    if backend not in BACKENDS:
        raise KitError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    device = torch.device("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu")
    loader = DataLoader(dataset, cfg["trainer"]["batch_size"])
    total = None
    for fold in folds:
        if backend == "onnxruntime":
            from kit.runtime.onnx_model import MODEL_FILE, OnnxModel

            model = OnnxModel(fold / MODEL_FILE)
        else:
            model = best_model(cfg, training, fold, device)
        order, logits, _ = predict(model, loader, cfg, device)
        assert order == list(ids), "the loader keeps the dataset's order"
        probs = training.probabilities(logits)
        total = probs if total is None else total + probs
    return total / len(folds)
