"""Every registered model exports to ONNX (dynamic batch, the fused ops as reference math) and matches PyTorch in
onnxruntime to 1e-4 on a real batch of its experiment's synthetic data; parity failures and unexportable models are
one-line errors; predict's onnxruntime backend gives the PyTorch path's submission."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from benchmarks.bench_onnx import experiments_by_model, model_and_batch
from kit.config import apply_overrides, load_experiment
from kit.errors import KitError
from kit.export.onnx import export_model, parity
from kit.models.registry import MODELS, create_model
from tests.test_cli_errors import run_kit

SMALL = {
    "rsna": ["data.size=32", "data.slices=2"],
    "mars": [],
    "rsna_two_stage": ["data.crop=16", "data.crop_slices=2"],
}


def small(experiment: str) -> dict:
    cfg = load_experiment(experiment)
    return apply_overrides(cfg, SMALL.get(experiment, SMALL.get(cfg["competition"], ["data.size=32"])))


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx_home")


@pytest.mark.slow
def test_every_registered_model_exports_with_parity(home, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(home))
    create_model("timm_classifier", 3, 2)  # imports every model module, filling the registry
    chosen = experiments_by_model()
    assert set(MODELS) - set(chosen) <= {"unet"}, "a registered model has no experiment to export it from"
    cases = {name: model_and_batch(small(exp), home / "data") for name, exp in chosen.items()}
    mars_model, mars_batch = cases["dual_unet"]
    cases["unet"] = (create_model("unet", mars_batch.shape[1], 5).eval(), mars_batch)
    for name, (model, batch) in cases.items():
        path = tmp_path / f"{name}.onnx"
        outputs = export_model(model, batch, path)
        differences = parity(model, path, batch)
        assert set(differences) == set(outputs) and max(differences.values()) <= 1e-4, (name, differences)


def test_a_parity_failure_is_an_error(tmp_path):
    model = create_model("simple_cnn", 1, 3, widths=(4, 8)).eval()
    batch = torch.randn(3, 1, 16, 16)
    export_model(model, batch, tmp_path / "m.onnx")
    assert max(parity(model, tmp_path / "m.onnx", batch).values()) < 1e-5
    with torch.no_grad():
        model[-1].bias.add_(0.01)  # the PyTorch model moves on; the exported file does not
    with pytest.raises(KitError, match="ONNX Runtime differs from PyTorch by 1.0.e-02 on output 'output'"):
        parity(model, tmp_path / "m.onnx", batch)


@pytest.mark.slow
def test_export_and_the_onnxruntime_backend_as_a_user_runs_them(kit_here, tmp_path):
    tiny = ["trainer.epochs=1", "trainer.batch_size=16", "data.size=32", "data.folds=3"]
    assert "no finished fold" in kit_here(["export", "--exp", "pneumonia_resnet18", *tiny], tmp_path).stderr
    assert kit_here(["train-fold", "--exp", "pneumonia_resnet18", *tiny], tmp_path).returncode == 0
    assert "no ONNX model" in kit_here(["predict", "--exp", "pneumonia_resnet18", "--backend", "onnxruntime", *tiny],
                                       tmp_path).stderr  # fmt: skip
    exported = kit_here(["export", "--exp", "pneumonia_resnet18", *tiny], tmp_path)
    assert exported.returncode == 0, exported.stderr
    fold = tmp_path / "runs" / "pneumonia_resnet18" / "fold0"
    assert (fold / "model.onnx").exists()
    quantized = run_kit(["export", "--exp", "pneumonia_resnet18", "--quantize", "int8", *tiny], tmp_path)
    assert quantized.returncode == 0, quantized.stderr
    record = json.loads((fold / "onnx_int8.json").read_text())
    assert record["mode"] == "int8" and record["int8"]["mb"] < record["fp32"]["mb"] / 2, "int8 weights"
    assert set(record["int8"]["metrics"]) == set(record["fp32"]["metrics"]) and "auc" in record["metric_change"]
    assert "int8:" in quantized.stdout and "fp32:" in quantized.stdout
    bad = kit_here(["export", "--exp", "pneumonia_resnet18", "--quantize", "int4", *tiny], tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --quantize int4: expected one of int8, int8-dynamic"
    submission = tmp_path / "submissions" / "pneumoniamnist" / "pneumonia_resnet18.csv"
    probs = {}
    for backend, kit in (("torch", kit_here), ("onnxruntime", run_kit)):  # the onnxruntime backend in its own process
        predicted = kit(["predict", "--exp", "pneumonia_resnet18", "--backend", backend, *tiny], tmp_path)
        assert predicted.returncode == 0, predicted.stderr
        probs[backend] = pd.read_csv(tmp_path / "runs" / "pneumonia_resnet18" / "test_pred.csv")
        probs[backend + "_labels"] = pd.read_csv(submission)["label"]
    assert (
        np.abs(probs["torch"][["normal", "pneumonia"]] - probs["onnxruntime"][["normal", "pneumonia"]]).max().max()
        < 1e-4
    )
    assert (probs["torch_labels"] == probs["onnxruntime_labels"]).all()


class DataDependent(torch.nn.Module):
    def forward(self, x):
        return x * 2 if float(x.sum()) > 0 else x - 1  # a Python branch on the data: no static graph


def test_a_model_that_cannot_be_exported_is_named_in_one_error(tmp_path):
    with pytest.raises(KitError, match="DataDependent cannot be exported to ONNX") as caught:
        export_model(DataDependent(), torch.randn(2, 1, 4, 4), tmp_path / "m.onnx")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "m.onnx").exists()
