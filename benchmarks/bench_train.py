"""Training throughput of an experiment, split so a user sees what bounds a run: the data loader alone, the model
alone (one real batch replayed: forward, backward, optimiser step) and both together (real training steps).

    python -m benchmarks.bench_train --exp EXP [--batches 20] [--matrix] [key=value ...]   (task bench-train)

Writes runs/bench-train/bench.csv (one row per run, appended) and bench.md beside it; --matrix: matrix.csv, .md.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import date

import pandas as pd
import torch

from kernels import dispatch
from kit import paths
from kit.cli import DEFAULT_EXPERIMENT, user_error
from kit.config import apply_overrides, check_config, check_name, load_experiment
from kit.errors import KitError
from kit.io import atomic_path, write_text_atomic
from kit.runtime.devices import to_device
from kit.runtime.inference import build_model, memory_format
from kit.runtime.precision import Precision
from kit.schema import trainer as settings
from kit.train.distributed import Context
from kit.train.loaders import make_loader
from kit.train.prepare import prepare, seed_everything
from kit.train.step import Stepper


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(run, batches: int, batch_size: int, device: torch.device, warmup: int) -> float:
    """Samples per second of `run(i)` over `batches` calls after `warmup` untimed ones."""
    for i in range(warmup):
        run(i)
    _synchronize(device)
    started = time.perf_counter()
    for i in range(batches):
        run(warmup + i)
    _synchronize(device)
    return batches * batch_size / (time.perf_counter() - started)


def bench_train(cfg: dict, batches: int = 20, warmup: int = 3, overrides: tuple[str, ...] = ()) -> dict:
    trainer = cfg["trainer"]
    ctx = Context(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    device = ctx.device
    _, training, folds = prepare(cfg, ctx)
    seed_everything(trainer["seed"])
    train_ids = folds.index[folds != 0].tolist()
    dataset = training.dataset(train_ids, "train", augment_seed=trainer["seed"] if trainer["augment"] else None)
    batch_size = trainer["batch_size"]
    loader = make_loader(dataset, batch_size, trainer, device, shuffle=True, drop_last=True)
    if len(loader) < 1:
        raise KitError(f"trainer.batch_size={batch_size}: fold 0 has only {len(dataset)} training samples")

    def batch_stream():
        return itertools.chain.from_iterable(itertools.repeat(loader))

    precision = Precision.for_device(settings(trainer).precision, device)
    model = build_model(cfg, training).to(device).to(memory_format=memory_format(cfg))
    forward = torch.compile(model) if settings(trainer).compile else model
    loss_fn = training.loss().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=trainer["lr"], weight_decay=trainer["weight_decay"])
    stepper = Stepper(model, optimizer, None, precision, trainer["grad_clip"], settings(trainer).accumulate)
    model.train()

    def train_step(batch) -> None:
        image = to_device(batch["image"], device, memory_format(cfg))
        with precision.autocast():
            loss = loss_fn(forward(image), to_device(batch["target"], device))
        stepper.backward(loss)
        stepper.step()

    for _ in loader:  # one untimed epoch: caches fill (decoded DICOM) and workers start, as after a run's first epoch
        pass
    stream = batch_stream()
    loader_rate = _rate(lambda i: next(stream), batches, batch_size, device, warmup)
    fixed = next(iter(loader))
    fixed = {"image": to_device(fixed["image"], device), "target": to_device(fixed["target"], device)}
    model_rate = _rate(lambda i: train_step(fixed), batches, batch_size, device, warmup)
    stream = batch_stream()
    both_rate = _rate(lambda i: train_step(next(stream)), batches, batch_size, device, warmup)
    bound = "data loader" if loader_rate < model_rate else "model"
    return {
        "date": date.today().isoformat(),
        "exp": cfg["name"],
        "overrides": " ".join(overrides),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "precision": precision.mode,
        "compile": settings(trainer).compile,
        "fused_ops": dispatch.describe(device).split(": ", 1)[-1],
        "batch_size": batch_size,
        "workers": loader.num_workers,
        "loader_samples_per_s": loader_rate,
        "model_samples_per_s": model_rate,
        "train_samples_per_s": both_rate,
        "bound_by": bound,
    }


def record(rows: dict | list[dict], name: str = "bench") -> pd.DataFrame:
    """Append the row(s) to runs/bench-train/<name>.csv and rewrite <name>.md from all rows."""
    out = paths.runs_root() / "bench-train"
    out.mkdir(parents=True, exist_ok=True)
    csv = out / f"{name}.csv"
    new = pd.DataFrame([rows] if isinstance(rows, dict) else rows)
    frame = pd.concat([pd.read_csv(csv, keep_default_na=False), new]) if csv.exists() else new
    with atomic_path(csv) as tmp:
        frame.to_csv(tmp, index=False)
    cells = frame.astype(object).map(lambda v: f"{v:.1f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(r) + " |" for r in cells.itertuples(index=False)]
    write_text_atomic(out / f"{name}.md", "\n".join(lines) + "\n")
    return frame


def experiment(args) -> dict:
    cfg = apply_overrides(load_experiment(args.exp), args.overrides)
    check_name(cfg["name"])
    return check_config(cfg)


def run(args) -> None:
    if args.batches < 1:
        raise KitError(f"--batches {args.batches}: time at least 1 batch")
    if args.matrix:
        from benchmarks.bench_matrix import bench_matrix, decide

        rows = bench_matrix(experiment(args), batches=args.batches)
        record(rows, "matrix")
        for r in rows:
            measured = f"{r['ms_per_step']:9.1f} ms/step {r['samples_per_s']:8.1f} samples/s {r['peak_mb']:8.0f} MB"
            shown = f"skipped: {r['skipped']}" if r["skipped"] else measured
            print(f"{r['mode']:<19} kernels {r['kernels']:<3} {shown}")
        print("\n".join(decide(rows)))
        print("rows appended to runs/bench-train/matrix.csv")
        return
    row = bench_train(experiment(args), batches=args.batches, overrides=tuple(args.overrides))
    frame = record(row)
    print(
        f"{row['exp']} on {row['device']} ({row['precision']}, compile {row['compile']}, {row['fused_ops']}), batch"
        f" {row['batch_size']}, {row['workers']} workers"
    )
    for part in ("loader", "model", "train"):
        print(f"{part + ' samples/s':<18} {row[f'{part}_samples_per_s']:10.1f}")
    print(f"bound by the {row['bound_by']}; {len(frame)} rows in runs/bench-train/bench.csv")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp", default=DEFAULT_EXPERIMENT, help="experiment name (kit/experiments/) or YAML path")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    parser.add_argument("--matrix", action="store_true", help="eager / compile / compile + CUDA graphs, each with the "
                        "fused kernels on and off: ms per step, peak memory, and where the kernels pay")  # fmt: skip
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args(argv)
    try:
        run(args)
    except Exception as exc:  # noqa: BLE001 - a KitError is one line, as from the kit's own commands
        cause = user_error(exc)
        if cause is None:
            raise
        print(f"error: {cause.args[0] if cause.args else cause}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
