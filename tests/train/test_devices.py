"""Device decisions (Triton by compute capability, precision by device), the fp16 scaler path, compile, gradient
accumulation and the training bench (benchmarks/bench_train.py), all on the CPU with the device properties mocked
where a GPU is needed."""

import contextlib
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kernels import dispatch
from kit.config import apply_overrides, load_experiment
from kit.errors import KitError
from kit.runtime.precision import Precision, resolve
from kit.train import runner
from kit.train.step import Stepper


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda reports one GPU of the capability the test sets: fake_gpu((6, 0))."""

    def install(capability, name="Fake GPU"):
        dispatch._cuda_decision.cache_clear()
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: name)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    yield install
    dispatch._cuda_decision.cache_clear()


def cuda_tensor(shape=(8, 64, 7, 7)):
    return SimpleNamespace(is_cuda=True, device=SimpleNamespace(type="cuda", index=0), shape=shape)


@pytest.mark.parametrize(
    "capability, name, triton",
    [((6, 0), "Tesla P100-PCIE-16GB", False), ((7, 5), "Tesla T4", True), ((9, 0), "NVIDIA H100", True)],
)
def test_triton_only_where_it_runs(fake_gpu, monkeypatch, capability, name, triton):
    monkeypatch.delenv("KIT_DISABLE_TRITON", raising=False)
    fake_gpu(capability, name)
    assert dispatch.use_triton(cuda_tensor(), "focal") is triton
    line = dispatch.describe(torch.device("cuda", 0))
    assert name in line and ("fused ops by measured speed" in line) is triton
    if not triton:
        assert "compute capability 6.0" in line and "7.0" in line


def test_switch_disables_triton_everywhere(fake_gpu, monkeypatch):
    fake_gpu((9, 0))
    monkeypatch.setenv("KIT_DISABLE_TRITON", "1")
    assert not dispatch.use_triton(cuda_tensor(), "focal")
    assert not dispatch.use_triton(torch.ones(2), "focal")  # the interpreter's CPU path too
    assert "KIT_DISABLE_TRITON=1" in dispatch.describe(torch.device("cuda", 0))


def test_fused_ops_take_the_reference_on_a_p100(fake_gpu, monkeypatch):
    from kernels import focal, se

    fake_gpu((6, 0))
    monkeypatch.setattr(dispatch, "interpreting", lambda: False)
    monkeypatch.setattr(se, "fused_squeeze_excite", lambda *a: pytest.fail("Triton path taken"))
    monkeypatch.setattr(focal, "fused_focal_loss", lambda *a: pytest.fail("Triton path taken"))
    x = torch.randn(2, 4, 3, 3)
    se.SqueezeExcite(4, 2)(x)
    focal.focal_loss(torch.randn(4, 3), torch.tensor([0, 1, 2, 1]))


@pytest.mark.parametrize(
    "setting, capability, expected",
    [("auto", (6, 0), "fp16"), ("auto", (7, 5), "fp16"), ("auto", (8, 0), "bf16"), ("auto", (9, 0), "bf16"),
     ("fp32", (9, 0), "fp32"), ("fp16", (9, 0), "fp16")],
)  # fmt: skip
def test_precision_by_compute_capability(fake_gpu, setting, capability, expected):
    fake_gpu(capability)
    assert resolve(setting, torch.device("cuda", 0)) == expected
    with pytest.warns(UserWarning) if expected == "fp16" else warnings.catch_warnings():  # no CUDA: scaler disables
        assert Precision.for_device(setting, torch.device("cuda", 0)).mode == expected


def test_precision_on_the_cpu_and_bad_settings(monkeypatch):
    from kit.runtime import precision

    cpu = torch.device("cpu")
    assert resolve("auto", cpu) == "fp32"
    with pytest.raises(KitError, match="trainer.precision=fp16: this cpu has no native fp16"):
        resolve("fp16", cpu)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve("bf16", cpu) == "bf16" and resolve("auto", cpu) == "fp32"  # bf16 on the CPU only on request
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(KitError, match="bf16 needs AVX512-BF16 or AMX"):
        resolve("bf16", cpu)
    with pytest.raises(KitError, match="expected one of auto, bf16, fp16, fp32"):
        resolve("half", cpu)


def fp16_on_cpu(*_):
    """PyTorch runs fp16 autocast and the gradient scaler on the CPU too: the GPU-only fp16 path, tested here."""
    return Precision("fp16", torch.device("cpu"), torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**12))


def test_fp16_scaler_skips_overflowing_steps_and_trains():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = fp16_on_cpu()
    stepper = Stepper(model, optimizer, None, precision, grad_clip=10.0)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    before = model.weight.detach().clone()
    with precision.autocast():
        loss = torch.nn.functional.mse_loss(model(x), y) * float("inf")  # an overflow: the step must be skipped
    stepper.backward(loss)
    stepper.step()
    assert torch.equal(model.weight, before) and precision.scaler.get_scale() == 2.0**11
    losses = []
    for _ in range(30):
        with precision.autocast():
            loss = torch.nn.functional.mse_loss(model(x), y)
        stepper.backward(loss)
        stepper.step()
        losses.append(float(loss))
    assert losses[-1] < 0.7 * losses[0]


@pytest.fixture
def tiny_mars(mars_dir):
    cfg = apply_overrides(
        load_experiment("mars_smp_unet"),
        [f"data.dir={mars_dir}", "data.folds=3", "trainer.epochs=1", "trainer.batch_size=8",
         "model.decoder_se_reduction=null"],
    )  # fmt: skip
    return cfg


class ScaledFp32(Precision):
    """The fp16 run's gradient scaler without fp16 arithmetic, which the CPU runs too slowly for a fold."""

    def autocast(self):
        return contextlib.nullcontext()


@pytest.mark.slow
def test_fp16_scaler_state_is_saved_and_restored_on_resume(tiny_mars, kit_home, monkeypatch):
    monkeypatch.setattr(Precision, "for_device", staticmethod(lambda *a: ScaledFp32(*vars(fp16_on_cpu()).values())))
    runner.train_fold(tiny_mars, fold=0)
    last = kit_home / "runs" / tiny_mars["name"] / "fold0" / "model_last.pt"
    saved = torch.load(last, weights_only=False)
    assert saved["scaler"]["scale"] > 0
    saved["scaler"]["scale"] = 1234.0
    torch.save(saved, last)
    restored = []
    original = torch.amp.GradScaler.load_state_dict
    monkeypatch.setattr(
        torch.amp.GradScaler, "load_state_dict", lambda self, s: restored.append(s["scale"]) or original(self, s)
    )
    longer = apply_overrides(tiny_mars, ["trainer.epochs=2"])
    with pytest.raises(KitError, match=r"--resume with a changed config: trainer.epochs \(1 -> 2\); add --force"):
        runner.train_fold(longer, fold=0, resume=True)
    runner.train_fold(longer, fold=0, resume=True, force=True)
    assert restored == [1234.0]


@pytest.mark.slow
def test_compiled_model_trains_a_fold(kit_home):
    """trainer.compile: the fold's forward goes through torch.compile. A small CNN: inductor compiles each graph on
    this CPU for seconds, and the compiled fused ops are tested in tests/kernels/test_compile.py."""
    overrides = ["data.folds=2", "data.size=32", "trainer.epochs=1", "trainer.batch_size=16", "trainer.compile=true"]
    cfg = apply_overrides(load_experiment("tinyimagenet_cnn"), overrides)
    cfg["model"]["widths"] = [8, 16]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    summary = runner.train_fold(cfg, fold=0)
    assert summary["epochs_run"] == 1 and 0.0 <= summary[summary["metric"]] <= 1.0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert (kit_home / "runs" / "tinyimagenet_cnn" / "fold0" / "model_best.pt").exists()


@pytest.mark.slow
def test_gradient_accumulation_steps_once_per_group(tiny_mars, monkeypatch):
    steps = []
    original = Stepper.step
    monkeypatch.setattr(Stepper, "step", lambda self: steps.append(1) or original(self))
    runner.train_fold(apply_overrides(tiny_mars, ["trainer.accumulate=3"]), fold=0)
    batches = len(steps)
    steps.clear()
    runner.train_fold(apply_overrides(tiny_mars, ["trainer.accumulate=1", "name=plain"]), fold=0)
    assert batches == int(np.ceil(len(steps) / 3)) and len(steps) > 3
    with pytest.raises(KitError, match="trainer.accumulate=0"):
        runner.train_fold(apply_overrides(tiny_mars, ["trainer.accumulate=0"]), fold=0)


def test_a_non_finite_loss_stops_naming_epoch_and_batch(tiny_mars, monkeypatch):
    from kit.competitions.mars import training as mars_training

    original = mars_training.MarsTraining.loss

    class Poisoned(torch.nn.Module):
        def __init__(self, loss):
            super().__init__()
            self.loss = loss

        def forward(self, out, target):
            return self.loss(out, target) * float("nan")

    def poisoned_loss(self):
        return Poisoned(original(self))

    monkeypatch.setattr(mars_training.MarsTraining, "loss", poisoned_loss)
    with pytest.raises(KitError, match=r"fold 0 epoch 0 batch 0: the training loss is nan"):
        runner.train_fold(tiny_mars, fold=0)


@pytest.mark.slow
def test_bench_train_measures_loader_model_and_both(tiny_mars, kit_home, capsys):
    import pandas as pd

    from benchmarks.bench_train import main

    assert main(["--exp", "mars_dual_unet", "--batches", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --batches 0: time at least 1 batch"
    overrides = [f"data.dir={tiny_mars['data']['dir']}", "data.folds=3", "trainer.batch_size=8"]
    assert main(["--exp", "mars_smp_unet", "--batches", "2", *overrides]) == 0
    out = capsys.readouterr().out
    assert "loader samples/s" in out and "bound by the" in out
    frame = pd.read_csv(kit_home / "runs" / "bench-train" / "bench.csv")
    row = frame.iloc[-1]
    assert row["device"] == "cpu" and row["precision"] == "fp32"
    assert min(row["loader_samples_per_s"], row["model_samples_per_s"], row["train_samples_per_s"]) > 0
    assert (kit_home / "runs" / "bench-train" / "bench.md").read_text().count("\n") == 3


@pytest.mark.slow
def test_the_bench_matrix_times_each_mode_with_kernels_on_and_off_and_says_why_it_skips(tiny_mars, monkeypatch):
    from benchmarks import bench_matrix

    rows = bench_matrix.bench_matrix(tiny_mars, batches=1, warmup=1, modes=("eager", "compile+cudagraphs"))
    table = {(r["mode"], r["kernels"]): r for r in rows}
    assert set(table) == {(m, k) for m in ("eager", "compile+cudagraphs") for k in ("on", "off")}
    for kernels in ("on", "off"):  # the interpreter runs the kernels on the CPU here
        assert not table["eager", kernels]["skipped"] and table["eager", kernels]["ms_per_step"] > 0
        assert table["compile+cudagraphs", kernels]["skipped"] == "CUDA graphs need a CUDA GPU"
    lines = bench_matrix.decide(rows)
    assert lines[0].startswith("eager: kernels ") and "speed" in lines[0]
    assert lines[1] == "compile+cudagraphs: not decided (CUDA graphs need a CUDA GPU; CUDA graphs need a CUDA GPU)"
    monkeypatch.setattr(bench_matrix.dispatch, "interpreting", lambda: False)
    assert "need a CUDA GPU" in bench_matrix.why_not("eager", True, torch.device("cpu"))
    assert bench_matrix.why_not("eager", False, torch.device("cpu")) is None


@pytest.mark.slow
def test_the_bench_matrix_times_two_stage_crops_before_any_stage_1(rsna_dir, kit_home):
    from benchmarks import bench_matrix

    overrides = [f"data.dir={rsna_dir}", "trainer.batch_size=2", "data.crop=16", "model.encoder=seresnet18"]
    cfg = apply_overrides(load_experiment("rsna_two_stage"), overrides)
    rows = bench_matrix.bench_matrix(cfg, batches=1, warmup=0, modes=("eager",))
    assert [r["kernels"] for r in rows] == ["off", "on"] and all(not r["skipped"] for r in rows)
    assert all(r["ms_per_step"] > 0 and r["batch_size"] == 2 for r in rows)
    assert not (kit_home / "runs" / "rsna_two_stage").exists(), "training crops come from the labelled points"


def test_the_matrix_keeps_kernels_on_only_for_speed_or_memory():
    from benchmarks.bench_matrix import decide

    def rows(on_ms, on_mb):
        off = {"mode": "compile", "kernels": "off", "skipped": "", "ms_per_step": 100.0, "peak_mb": 1000.0}
        return [off, {**off, "kernels": "on", "ms_per_step": on_ms, "peak_mb": on_mb}]

    assert decide(rows(96.0, 1000.0))[0].startswith("compile: kernels on")  # 4% faster
    assert decide(rows(99.0, 1000.0))[0].startswith("compile: kernels off")  # 1%: not worth it
    assert decide(rows(101.0, 750.0))[0].startswith("compile: kernels on")  # 25% less memory
