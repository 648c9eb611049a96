"""`task bench-onnx`: PyTorch eager against ONNX Runtime on the CPU, per registered model at its experiment's input
size, batch 1 and 16: median ms per batch, the ratio, the thread settings. Writes runs/bench-onnx/bench.csv and
bench.md."""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
import torch

from benchmarks.bench_kernels import markdown_table
from kit import paths
from kit.competitions import competition_of
from kit.competitions.parts import Staged
from kit.config import experiment_names, load_experiment
from kit.export.onnx import export_model, parity, session
from kit.export.quantize import median_ms
from kit.io import write_text_atomic
from kit.runtime.inference import build_model


def experiments_by_model() -> dict[str, str]:
    """The first experiment (alphabetically) that uses each model."""
    chosen = {}
    for name in sorted(experiment_names()):
        chosen.setdefault(load_experiment(name)["model"]["name"], name)
    return chosen


def model_and_batch(cfg: dict, data_root: Path) -> tuple[torch.nn.Module, torch.Tensor]:
    """The experiment's model (random weights, eval) and up to 3 real samples of a small synthetic dataset."""
    comp = competition_of(cfg)
    data = data_root / comp.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not data.exists():
            comp.synth(data, 4 if comp.name == "rsna" else 12, 2 if comp.name == "rsna" else 4, seed=0)
        training = comp.training(cfg, data)
        ids = training.ids("train")[:3]
        if isinstance(training, Staged):  # no earlier stage trained here: samples built from the labels suffice
            training.start_fold(0)
            dataset = training.dataset(ids, "train", augment_seed=0)
        else:
            dataset = training.dataset(ids, "train")
        batch = torch.stack([dataset[k]["image"] for k in range(len(ids))]).float()
    torch.manual_seed(0)
    return build_model(cfg, training).eval(), batch


def bench(batches=(1, 16), repeats: int = 20, threads: int | None = None) -> pd.DataFrame:
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for model_name, experiment in experiments_by_model().items():
            model, sample = model_and_batch(load_experiment(experiment), Path(scratch) / "data")
            path = Path(scratch) / f"{model_name}.onnx"
            export_model(model, sample, path)
            worst = max(parity(model, path, sample).values())
            runner = session(path, threads)
            for batch_size in batches:
                x = sample[:1].repeat(batch_size, *([1] * (sample.ndim - 1))).contiguous()
                with torch.no_grad():
                    eager = median_ms(functools.partial(model, x), repeats)
                onnx = median_ms(functools.partial(runner.run, None, {"image": x.numpy()}), repeats)
                rows.append({
                    "model": model_name, "experiment": experiment, "input": "×".join(map(str, x.shape[1:])),
                    "batch": batch_size, "eager_ms": round(eager, 2), "onnxruntime_ms": round(onnx, 2),
                    "speedup": round(eager / onnx, 2), "max_abs_diff": worst, "threads": threads,
                })  # fmt: skip
                print(f"{model_name:<18} batch {batch_size:>2}: eager {eager:8.1f} ms, onnxruntime {onnx:8.1f} ms, "
                      f"{eager / onnx:.2f}×", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    for option, value in (("--repeats", args.repeats), ("--threads", args.threads)):
        if value is not None and value < 1:
            print(f"error: {option} {value}: give at least 1", file=sys.stderr)
            return 2
    frame = bench(repeats=args.repeats, threads=args.threads)
    out = paths.runs_root() / "bench-onnx"
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "bench.csv", frame.to_csv(index=False))
    write_text_atomic(out / "bench.md", markdown_table(frame))
    print(f"wrote {out / 'bench.csv'} and bench.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
