"""The image loader on a big class-per-folder tree, as a user's `task train-fold` meets it: a fresh process from
launch to its first training batch, the first time (decoding every file) and again (the decoded cache), then the
loader's images/s over a second epoch against the model's own samples/s.

    python -m benchmarks.bench_loader [--images 20000] [--data DIR] [--size 64] [--exp imagefolder_resnet18]

Without --data it generates the tree (`kit synth imagefolder`: PNG and JPEG, 48-95 px, mixed colour modes) under
runs/bench-loader/; the runs use their own KIT_HOME there, so a user's caches are untouched. Writes
runs/bench-loader/bench.csv and bench.md."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

OUT = Path("runs") / "bench-loader"
STEPS = 8  # timed optimiser steps for the model's samples/s


def child(args) -> dict:
    """One fresh process: the figures of one run, seconds counted from `args.launched` (the parent's clock)."""
    import torch

    from kit.config import apply_overrides, load_experiment
    from kit.train import distributed
    from kit.train.fit import build_fit
    from kit.train.prepare import prepare

    imported = time.time() - args.launched
    overrides = [f"data.dir={args.data}", f"data.size={args.size}", f"trainer.batch_size={args.batch}"]
    cfg = apply_overrides(load_experiment(args.exp), overrides)
    ctx = distributed.setup()
    comp, training, folds = prepare(cfg, ctx)
    indexed = time.time() - args.launched
    fit = build_fit(cfg, 0, ctx, training, folds, None)
    built = time.time() - args.launched
    batches = iter(fit.train_loader)
    batch = next(batches)
    first = time.time() - args.launched
    for _ in batches:  # the rest of epoch 1
        pass
    fit.sampler.set_epoch(1)
    began, seen = time.perf_counter(), 0
    for batch in fit.train_loader:
        seen += len(batch["image"])
    loader = seen / (time.perf_counter() - began)
    fit.model.train()
    image, target = batch["image"].to(memory_format=torch.channels_last), batch["target"]
    for step in range(STEPS + 1):
        if step == 1:
            began = time.perf_counter()
        loss = fit.loss_fn(fit.model(image), target)
        fit.optimizer.zero_grad()
        loss.backward()
        fit.optimizer.step()
    model = STEPS * len(image) / (time.perf_counter() - began)
    return {"imports_s": imported, "indexed_s": indexed, "decoded_and_built_s": built, "first_batch_s": first,
            "loader_images_per_s": loader, "model_samples_per_s": model, "images": len(training.keys),
            "threads": torch.get_num_threads()}  # fmt: skip


def run_child(args, home: Path, data: Path) -> dict:
    env = {**os.environ, "KIT_HOME": str(home)}
    options = ["--data", str(data), "--size", str(args.size), "--exp", args.exp, "--batch", str(args.batch)]
    command = [sys.executable, "-m", "benchmarks.bench_loader", "--child", *options, "--launched", repr(time.time())]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"bench child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--data", type=Path, help="a class-per-folder tree (default: generate one)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--exp", default="imagefolder_resnet18")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return
    if args.data and not args.data.is_dir():
        raise SystemExit(f"error: --data {args.data}: folder not found")
    home = (OUT / "home").absolute()
    data = args.data.absolute() if args.data else (OUT / f"tree-{args.images}").absolute()
    if not args.data and not data.exists():
        from kit.competitions import get_competition

        print(f"generating {args.images} images under {data}", flush=True)
        get_competition("imagefolder").synth(data, train=args.images, test=10, seed=0)
    shutil.rmtree(home / "cache", ignore_errors=True)
    rows = []
    for run in ("first run (decodes)", "second run (cached)"):
        figures = run_child(args, home, data)
        rows.append({"run": run, **{k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}})
        print(json.dumps(rows[-1]), flush=True)
    write(rows, args)


def write(rows: list[dict], args) -> None:
    import pandas as pd
    import torch

    from kit.io import write_text_atomic

    frame = pd.DataFrame(rows)
    frame.insert(0, "date", time.strftime("%Y-%m-%d"))
    frame["torch"], frame["cpus"], frame["size"], frame["exp"] = torch.__version__, os.cpu_count(), args.size, args.exp
    OUT.mkdir(parents=True, exist_ok=True)
    write_text_atomic(OUT / "bench.csv", frame.to_csv(index=False))
    ratio = frame["loader_images_per_s"] / frame["model_samples_per_s"]
    lines = ["| run | imports | indexed | decoded + model built | first batch | loader img/s (epoch 2) | model "
             "samples/s | loader / model |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for (_, row), r in zip(frame.iterrows(), ratio, strict=True):
        lines.append(f"| {row['run']} | {row['imports_s']:.1f} s | {row['indexed_s']:.1f} s | "
                     f"{row['decoded_and_built_s']:.1f} s | {row['first_batch_s']:.1f} s | "
                     f"{row['loader_images_per_s']:.0f} | {row['model_samples_per_s']:.1f} | {r:.0f}× |")  # fmt: skip
    write_text_atomic(OUT / "bench.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
