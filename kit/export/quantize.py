"""`kit export --quantize int8|int8-dynamic`: onnxruntime's int8 quantization of a fold's model.onnx, with what it
costs and buys on that fold's validation set: the competition's metrics for fp32 and int8 ONNX, and the CPU time of a
batch of 16 for each. Written to runs/<exp>/fold<k>/onnx_int8.json beside model.int8.onnx.

`int8` is static (QDQ, per-channel weights, activations calibrated on validation images): onnxruntime runs it as
int8 convolutions. `int8-dynamic` quantizes weights only and turns convolutions into ConvInteger, which onnxruntime's
CPU kernels run slower than fp32 (measured: docs/experiments.md); it is there for models dominated by MatMul/Gemm."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kit.errors import KitError
from kit.io import write_text_atomic
from kit.runtime.onnx_model import MODEL_FILE, OnnxModel

INT8_FILE = "model.int8.onnx"
MODES = ("int8", "int8-dynamic")


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def quantize_model(source: Path, target: Path, mode: str = "int8", calibration: list[np.ndarray] = ()) -> Path:
    """`calibration`: input batches (static mode) whose activation ranges set the int8 scales."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,  # fmt: skip
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter({"image": batch} for batch in calibration)

        def get_next(self):
            return next(self.batches, None)

    if mode not in MODES:
        raise KitError(f"--quantize {mode}: expected one of {', '.join(MODES)}")
    prepared = target.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if mode == "int8-dynamic":
            quantize_dynamic(str(prepared), str(target), weight_type=QuantType.QInt8)
        else:
            quantize_static(str(prepared), str(target), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
    finally:
        prepared.unlink(missing_ok=True)
    return target


def validation_metrics(model, cfg: dict, training, ids: list) -> dict[str, float]:
    from kit.runtime.inference import predict

    loader = DataLoader(training.dataset(ids, "train"), cfg["trainer"]["batch_size"])
    order, logits, _ = predict(model, loader, cfg, torch.device("cpu"))
    return training.evaluate(order, training.probabilities(logits))


def quantize_fold(run, fold: int, mode: str = "int8", repeats: int = 10) -> tuple[Path, dict]:
    from kit.runtime.onnx_model import require_current_export
    from kit.train.outputs import trained_fold

    folder, trained, training, folds = trained_fold(run, fold)
    require_current_export(folder, run.name, fold)
    ids = folds.index[folds == fold].tolist()
    dataset = training.dataset(ids[:64], "train")
    images = torch.stack([dataset[k]["image"] for k in range(len(dataset))]).float()
    calibration = [images[start : start + 16].numpy() for start in range(0, len(images), 16)]
    path = quantize_model(folder / MODEL_FILE, folder / INT8_FILE, mode, calibration)
    batch = images[:16]
    record = {"mode": mode, "validation_samples": len(ids), "calibration_samples": len(images), "batch": len(batch),
              "data": run.data_record()}  # fmt: skip
    for name, file in (("fp32", MODEL_FILE), ("int8", INT8_FILE)):
        model = OnnxModel(folder / file)
        record[name] = {
            "metrics": validation_metrics(model, trained, training, ids),
            "ms_per_batch": round(median_ms(lambda m=model: m(batch), repeats), 2),
            "mb": round((folder / file).stat().st_size / 1e6, 2),
        }
    record["speedup"] = round(record["fp32"]["ms_per_batch"] / record["int8"]["ms_per_batch"], 2)
    record["metric_change"] = {k: float(np.round(v - record["fp32"]["metrics"][k], 5))
                               for k, v in record["int8"]["metrics"].items()}  # fmt: skip
    write_text_atomic(folder / "onnx_int8.json", json.dumps(record, indent=1))
    return path, record
