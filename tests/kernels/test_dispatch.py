"""Per-shape dispatch that never loses: the measured table decides on a GPU, defaults where none was measured,
all on the CPU with the device properties mocked."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from benchmarks import bench_kernels as bench
from kernels import dispatch

H100_CSV = dispatch.TABLE_FILE.with_name("bench-h100-2026-11-22.csv")


@pytest.fixture
def gpu(monkeypatch, tmp_path):
    """One mocked GPU of compute capability 9.0 and a dispatch table in tmp_path."""
    monkeypatch.delenv("KIT_DISABLE_TRITON", raising=False)
    monkeypatch.delenv("KIT_FORCE_TRITON", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Mock GPU")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(dispatch, "TABLE_FILE", tmp_path / "dispatch.json")
    dispatch._cuda_decision.cache_clear()
    dispatch._read_table.cache_clear()
    yield tmp_path / "dispatch.json"
    dispatch._cuda_decision.cache_clear()
    dispatch._read_table.cache_clear()


def on_gpu(shape):
    return SimpleNamespace(is_cuda=True, device=SimpleNamespace(type="cuda", index=0), shape=shape)


SMALL, LARGE = (64, 512, 7, 7), (32, 64, 128, 128)


def test_without_a_table_se_takes_the_reference_and_focal_the_kernel(gpu):
    assert not dispatch.use_triton(on_gpu(SMALL), "se") and not dispatch.use_triton(on_gpu(LARGE), "se")
    assert dispatch.use_triton(on_gpu((16, 5, 512, 512)), "focal")
    line = dispatch.describe(torch.device("cuda", 0))
    assert "se: small reference, large reference (no measured table for this GPU" in line
    assert "focal: triton" in line


def test_a_measured_table_decides_per_shape_class(gpu, monkeypatch):
    bench.write_table(gpu, "Mock GPU", {"se": {"small": "triton", "large": "reference"}, "focal": {"all": "reference"}},
                      "test")  # fmt: skip
    assert dispatch.use_triton(on_gpu(SMALL), "se") and not dispatch.use_triton(on_gpu(LARGE), "se")
    assert not dispatch.use_triton(on_gpu((16, 5, 64, 64)), "focal")
    assert "se: small triton, large reference (measured on this GPU" in dispatch.describe(torch.device("cuda", 0))
    monkeypatch.setenv("KIT_FORCE_TRITON", "1")
    assert dispatch.use_triton(on_gpu(LARGE), "se") and dispatch.use_triton(on_gpu((4, 5)), "focal")


def test_another_gpus_table_is_not_this_ones(gpu, monkeypatch):
    bench.write_table(gpu, "Other GPU", {"se": {"small": "triton", "large": "triton"}}, "test")
    assert not dispatch.use_triton(on_gpu(SMALL), "se")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 0))
    dispatch._cuda_decision.cache_clear()
    assert not dispatch.use_triton(on_gpu((16, 5, 64, 64)), "focal"), "a P100 never takes Triton"


def rows(op, shape, ms):
    return [dict(op=op, shape=shape, dtype=d, mode="forward+backward", impl=i, ms=m) for d in ("bf16", "fp32")
            for i, m in ms.items()]  # fmt: skip


def test_a_kernel_that_loses_anywhere_in_a_class_is_not_taken_there():
    frame = pd.DataFrame(
        rows("se", "64x512x7x7", {"triton": 0.1, "eager": 0.3, "compile": 0.2})
        + rows("se", "64x256x8x8", {"triton": 0.1, "eager": 0.3, "compile": 0.2})
        + rows("se", "32x64x128x128", {"triton": 1.0, "eager": 2.0, "compile": 1.5})
        + rows("se", "64x128x128x128", {"triton": 1.6, "eager": 2.8, "compile": 1.5})
        + rows("focal", "64x5x64x128", {"triton": 0.4, "eager": 1.0, "compile": 0.7})
    )
    assert bench.decide(frame) == {"se": {"small": "triton", "large": "reference"}, "focal": {"all": "triton"}}


@pytest.mark.skipif(not H100_CSV.exists(), reason="the H100 measurements are not in this checkout")
def test_the_shipped_table_is_what_the_h100_measurements_decide():
    shipped = json.loads(dispatch.TABLE_FILE.read_text())["gpus"]["NVIDIA H100 80GB HBM3"]
    decided = bench.decide(pd.read_csv(H100_CSV))
    assert {op: shipped[op] for op in decided} == decided
    assert decided["se"] == {"large": "reference"} and decided["focal"] == {"all": "triton"}
