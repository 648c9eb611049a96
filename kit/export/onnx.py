"""ONNX export of a trained fold (torch.onnx's dynamo exporter, dynamic batch, the fused ops as their reference math)
with a parity check in onnxruntime on a real validation batch (the stand-in itself is kit.runtime.onnx_model)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kernels.dispatch import reference_math
from kit.errors import KitError
from kit.io import atomic_path, sha256, write_text_atomic
from kit.runtime.onnx_model import MODEL_FILE, PARITY_FILE, session

TOLERANCE = 1e-4


class Flat(nn.Module):
    """The model's outputs as a tuple (a dict's values in key order), so every output gets a name in the graph."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        return tuple(out[k] for k in sorted(out)) if isinstance(out, dict) else (out,)


def output_names(model: nn.Module, batch: torch.Tensor) -> list[str]:
    with torch.no_grad():
        out = model(batch[:1])
    return sorted(out) if isinstance(out, dict) else ["output"]


def export_model(model: nn.Module, batch: torch.Tensor, path: Path, opset: int = 18) -> list[str]:
    """Write the model (eval mode, CPU) as ONNX with a dynamic batch axis; returns its output names."""
    model = model.eval().to(memory_format=torch.contiguous_format)
    names = output_names(model, batch)
    example = batch[:2] if len(batch) >= 2 else batch.repeat(2, 1, 1, 1)
    try:
        with reference_math(), torch.no_grad():
            program = torch.onnx.export(
                Flat(model).eval(), (example,), dynamo=True, opset_version=opset, input_names=["image"],
                output_names=names, dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), verbose=False,
            )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types; the user needs the model named
        reason = " ".join(str(exc).split())[:400]
        raise KitError(f"{type(model).__name__} cannot be exported to ONNX: {type(exc).__name__}: {reason}") from exc
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        program.save(str(tmp))
    return names


def parity(model: nn.Module, path: Path, batch: torch.Tensor, tolerance: float = TOLERANCE) -> dict[str, float]:
    """Max |ONNX Runtime - PyTorch| per output on the batch; above `tolerance` anywhere is an error."""
    names = output_names(model, batch)
    with torch.no_grad():
        expected = Flat(model.eval())(batch)
    got = session(path).run(None, {"image": batch.contiguous().numpy()})
    differences = {n: float(np.abs(g - e.float().numpy()).max()) for n, g, e in zip(names, got, expected, strict=True)}
    worst = max(differences, key=differences.get)
    if differences[worst] > tolerance:
        raise KitError(
            f"{path}: ONNX Runtime differs from PyTorch by {differences[worst]:.2e} on output {worst!r} "
            f"(tolerance {tolerance:.0e}); the export is not used"
        )
    return differences


def written_opset(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def max_opset() -> int:
    from torch.onnx import _constants

    return _constants.ONNX_MAX_OPSET


def export_fold(run, fold: int, opset: int = 18) -> tuple[Path, dict]:
    """runs/<exp>/fold<k>/model.onnx from the fold's best weights, checked against PyTorch on validation images;
    onnx_parity.json records the opset written and the weights' SHA-256 (a later retrain makes the export stale)."""
    from kit.runtime.inference import best_model
    from kit.train.outputs import trained_fold

    if not 17 <= opset <= max_opset():
        raise KitError(f"--opset {opset}: the exporter writes opsets 17 to {max_opset()}")
    folder, trained, training, folds = trained_fold(run, fold)
    model = best_model(trained, training, folder, torch.device("cpu")).to(memory_format=torch.contiguous_format)
    val_ids = folds.index[folds == fold].tolist()[:8]
    dataset = training.dataset(val_ids, "train")  # validation samples are labelled ones
    batch = torch.stack([dataset[k]["image"] for k in range(len(dataset))]).float()
    started = time.perf_counter()
    path = folder / MODEL_FILE
    names = export_model(model, batch, path, opset)
    differences = parity(model, path, batch)
    record = {"outputs": names, "max_abs_difference": differences, "batch": len(batch), "opset": written_opset(path),
              "export_s": round(time.perf_counter() - started, 1), "tolerance": TOLERANCE,
              "weights_sha256": sha256(folder / "model_best.pt")}  # fmt: skip
    write_text_atomic(folder / PARITY_FILE, json.dumps(record, indent=1))
    return path, record
