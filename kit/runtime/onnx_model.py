"""ONNX Runtime in place of the PyTorch model at prediction time, and whether a fold's export is current."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kit.errors import KitError
from kit.io import sha256

MODEL_FILE = "model.onnx"
PARITY_FILE = "onnx_parity.json"


def session(path: Path, threads: int | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """Called like the PyTorch model by kit.runtime.inference.predict: a tensor in, a tensor (or dict) out."""

    def __init__(self, path: Path):
        if not Path(path).exists():
            raise KitError(f"{path}: no ONNX model (task export exp=... fold=k first)")
        self.session = session(path)
        self.names = [o.name for o in self.session.get_outputs()]

    def eval(self) -> OnnxModel:
        return self

    def __call__(self, x: torch.Tensor):
        outputs = self.session.run(None, {"image": x.float().contiguous().cpu().numpy()})
        tensors = {n: torch.from_numpy(o) for n, o in zip(self.names, outputs, strict=True)}
        return tensors["output"] if self.names == ["output"] else tensors


def export_is_current(folder: Path) -> bool:
    """model.onnx was exported from the fold's current model_best.pt."""

    record_path = folder / PARITY_FILE
    if not (folder / MODEL_FILE).exists() or not record_path.exists():
        return False
    recorded = json.loads(record_path.read_text()).get("weights_sha256")
    return recorded == sha256(folder / "model_best.pt")


def require_current_export(folder: Path, name: str, fold: int) -> None:
    if not (folder / MODEL_FILE).exists():
        raise KitError(f"{folder / MODEL_FILE}: no ONNX model (task export exp={name} fold={fold} first)")
    if not export_is_current(folder):
        raise KitError(
            f"{folder / MODEL_FILE}: exported from other weights than the fold's model_best.pt (retrained since); "
            f"export it again: task export exp={name} fold={fold}"
        )
