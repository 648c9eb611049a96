"""`kit bench-train --matrix`: one training step of an experiment under eager, torch.compile and torch.compile with
CUDA graphs (mode="reduce-overhead"), each with the fused kernels forced on and off: wall time per step including
the host (the step is timed from the host, synchronised), samples/s and peak GPU memory. It decides where the kernels
pay: on only where they are >= 3% faster or use >= 20% less peak memory than the same mode without them.

One real batch is replayed, so the data loader does not enter (plain `bench-train` measures it). A combination that
cannot run here (CUDA graphs or the kernels without a CUDA GPU) is a row saying why, not a number.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import date

import torch

from kernels import dispatch
from kit.runtime.devices import to_device
from kit.runtime.inference import build_model, memory_format
from kit.runtime.precision import Precision
from kit.schema import trainer as settings
from kit.train.distributed import Context
from kit.train.loaders import make_loader
from kit.train.prepare import prepare, seed_everything
from kit.train.step import Stepper

MODES = {"eager": None, "compile": "default", "compile+cudagraphs": "reduce-overhead"}
SPEED_GAIN, MEMORY_GAIN = 0.03, 0.20


@contextlib.contextmanager
def kernels(on: bool):
    """The fused ops forced onto the kernels (on) or the PyTorch reference (off) inside."""
    names = ("KIT_FORCE_TRITON", "KIT_DISABLE_TRITON")
    before = {name: os.environ.get(name) for name in names}
    os.environ["KIT_FORCE_TRITON"], os.environ["KIT_DISABLE_TRITON"] = ("1", "0") if on else ("0", "1")
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def why_not(mode: str, kernels_on: bool, device: torch.device) -> str | None:
    if MODES[mode] == "reduce-overhead" and device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if kernels_on and device.type == "cuda" and tuple(torch.cuda.get_device_capability(device)) < (7, 0):
        return "Triton needs compute capability 7.0 or newer"
    if kernels_on and device.type != "cuda" and not dispatch.interpreting():
        return "the kernels need a CUDA GPU (or TRITON_INTERPRET=1, which times the interpreter, not a kernel)"
    return None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(cfg: dict, training, batch: dict, device: torch.device, mode: str, batches: int, warmup: int) -> dict:
    """ms per optimiser step over `batches` replays of `batch` after `warmup` (compilation and graph capture)."""
    trainer = cfg["trainer"]
    seed_everything(trainer["seed"])
    precision = Precision.for_device(settings(trainer).precision, device)
    model = build_model(cfg, training).to(device).to(memory_format=memory_format(cfg)).train()
    forward = model if MODES[mode] is None else torch.compile(model, mode=MODES[mode])
    loss_fn = training.loss().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=trainer["lr"], weight_decay=trainer["weight_decay"])
    stepper = Stepper(model, optimizer, None, precision, trainer["grad_clip"])

    def step() -> None:
        with precision.autocast():
            loss = loss_fn(forward(batch["image"]), batch["target"])
        stepper.backward(loss)
        stepper.step()

    for _ in range(warmup):
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(batches):
        step()
    _sync(device)
    ms = 1000 * (time.perf_counter() - started) / batches
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    return {"ms_per_step": ms, "samples_per_s": 1000 * len(batch["image"]) / ms, "peak_mb": peak}


def bench_matrix(cfg: dict, batches: int = 20, warmup: int = 5, modes: tuple[str, ...] = tuple(MODES)) -> list[dict]:
    ctx = Context(device=torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    device = ctx.device
    _, training, folds = prepare(cfg, ctx)
    trainer = cfg["trainer"]
    train_ids = folds.index[folds != 0].tolist()
    dataset = training.dataset(train_ids, "train", augment_seed=trainer["seed"] if trainer["augment"] else None)
    loader = make_loader(dataset, trainer["batch_size"], trainer, device, drop_last=True)
    first = next(iter(loader))  # CUDA graphs need static shapes: one full batch, replayed
    batch = {
        "image": to_device(first["image"], device, memory_format(cfg)),
        "target": to_device(first["target"], device),
    }
    rows = []
    for mode in modes:
        for on in (False, True):
            row = {"date": date.today().isoformat(), "exp": cfg["name"], "mode": mode, "kernels": "on" if on else "off",
                   "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                   "batch_size": len(batch["image"])}  # fmt: skip
            reason = why_not(mode, on, device)
            if reason is None:
                torch._dynamo.reset()
                with kernels(on):
                    row.update(time_step(cfg, training, batch, device, mode, batches, warmup))
            rows.append({**row, "skipped": reason or ""})
    return rows


def decide(rows: list[dict]) -> list[str]:
    """Per mode with both measured: whether the kernels stay on (>= 3% faster or >= 20% less peak memory)."""
    lines = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        measured = {r["kernels"]: r for r in rows if r["mode"] == mode and not r["skipped"]}
        if set(measured) != {"on", "off"}:
            lines.append(
                f"{mode}: not decided ({'; '.join(r['skipped'] for r in rows if r['mode'] == mode and r['skipped'])})"
            )
            continue
        on, off = measured["on"], measured["off"]
        speed = off["ms_per_step"] / on["ms_per_step"] - 1
        memory = 1 - on["peak_mb"] / off["peak_mb"] if off["peak_mb"] == off["peak_mb"] and off["peak_mb"] else 0.0
        keep = speed >= SPEED_GAIN or memory >= MEMORY_GAIN
        lines.append(f"{mode}: kernels {'on' if keep else 'off'} ({speed:+.1%} speed, {memory:+.1%} less peak memory)")
    return lines
