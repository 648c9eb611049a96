"""Benchmark the fused Triton kernels against eager PyTorch and torch.compile of the reference (CUDA only).

python -m benchmarks.bench_kernels [--out DIR] [--ops se focal] [--dtypes bf16 fp32]

Each row: op, shape, dtype, mode (forward, backward, forward+backward), implementation, the median ms of
triton.testing.do_bench, the achieved GB/s over the bytes the op must at least move, that as a share of the GPU's
measured device-to-device copy bandwidth, and the peak memory allocated beyond the inputs. Writes bench.csv and
bench.md under --out; kernels/BENCHMARKS.md holds the measured tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import torch
import torch._functorch.config as functorch_config

from kernels.dispatch import TABLE_FILE, shape_class
from kernels.focal import focal_loss, focal_loss_reference
from kernels.se import squeeze_excite, squeeze_excite_reference

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MODES = ("forward", "backward", "forward+backward")
ROTATE_BYTES = 512 * 2**20  # rotate among input sets larger than L2 together, so no run times the cache


@dataclass
class Case:
    op: str
    shape: tuple[int, ...]
    make_inputs: callable  # (device, dtype) -> list of tensors, the first being the differentiable activation
    implementations: dict  # name -> callable(*inputs) -> output
    min_bytes: dict  # mode -> bytes the op must at least move


def se_case(shape):
    n, c, h, w = shape
    hidden = max(1, c // 16)

    def make(device, dtype):
        x = torch.randn(shape, device=device, dtype=dtype).requires_grad_()
        weights = [torch.randn(s, device=device) * 0.1 for s in [(hidden, c), (hidden,), (c, hidden), (c,)]]
        return [x, *(t.requires_grad_() for t in weights)]

    reference = squeeze_excite_reference
    return Case(
        "se", shape, make,
        {"triton": squeeze_excite, "eager": reference, "compile": torch.compile(reference)},
        {"forward": 2, "backward": 3, "forward+backward": 5},  # × x's bytes: x→y; dy, x→dx
    )  # fmt: skip


def focal_case(shape):
    def make(device, dtype):
        logits = torch.randn(shape, device=device, dtype=dtype).requires_grad_()
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device=device)
        return [logits, target]

    return Case(
        "focal", shape, make,
        {"triton": focal_loss, "eager": focal_loss_reference, "compile": torch.compile(focal_loss_reference)},
        {"forward": 1, "backward": 1, "forward+backward": 2},  # × the logits' bytes (targets added below)
    )  # fmt: skip


SHAPES = {
    "se": [
        (32, 64, 128, 128),
        (32, 256, 32, 32),
        (64, 512, 16, 16),
        (64, 128, 128, 128),
        (64, 256, 8, 8),
        (64, 512, 7, 7),
        (32, 64, 32, 32),
    ],  # the last three: small maps (shape class "small")
    "focal": [(64, 5, 64, 128), (16, 5, 512, 512), (256, 75), (32, 19, 512, 512)],
}
CASES = {"se": se_case, "focal": focal_case}


def copy_bandwidth(device) -> float:
    """GB/s of a large device-to-device copy, counting bytes read plus bytes written."""
    import triton.testing

    src = torch.randn(256 * 2**20, device=device)
    dst = torch.empty_like(src)
    ms = triton.testing.do_bench(lambda: dst.copy_(src), return_mode="median")
    return 2 * src.numel() * src.element_size() / ms / 1e6


def bench_one(case: Case, impl, dtype, mode, device):
    import triton.testing

    probe = case.make_inputs(device, dtype)
    set_bytes = sum(t.numel() * t.element_size() for t in probe)
    sets = [probe] + [case.make_inputs(device, dtype) for _ in range(min(7, math.ceil(ROTATE_BYTES / set_bytes)) - 1)]
    cycle = itertools.cycle(sets)
    differentiable = [t for s in sets for t in s if t.requires_grad]

    def forward():
        return impl(*next(cycle))

    if mode == "forward":
        fn = forward
    elif mode == "forward+backward":

        def fn():
            out = forward()
            out.backward(torch.ones_like(out))

    else:
        outputs = {id(s[0]): impl(*s) for s in sets}
        seeds = {k: torch.randn_like(v) for k, v in outputs.items()}

        def fn():
            key = id(next(cycle)[0])
            outputs[key].backward(seeds[key], retain_graph=True)

    ms = triton.testing.do_bench(fn, grad_to_none=differentiable, return_mode="median")
    kernel_ms, kernels = device_time(fn, differentiable)

    torch.cuda.synchronize()
    for t in differentiable:
        t.grad = None
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = impl(*probe)
    out.backward(torch.ones_like(out))
    torch.cuda.synchronize()
    peak_extra = torch.cuda.max_memory_allocated() - base
    activation = probe[0]
    act_bytes = activation.numel() * activation.element_size()
    moved = case.min_bytes[mode] * act_bytes
    if case.op == "focal" and mode != "backward":
        moved += probe[1].numel() * probe[1].element_size()
    return ms, kernel_ms, kernels, moved, peak_extra / act_bytes


def device_time(fn, differentiable, calls: int = 20) -> tuple[float, str]:
    """Milliseconds per call that the GPU spends in kernels (torch.profiler), and the costliest kernels. Beside the
    wall time of do_bench this separates launch overhead, which the host pays, from the kernels' own speed."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            for t in differentiable:
                t.grad = None
            fn()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
    total_us = sum(e.self_device_time_total for e in events)
    top = sorted(events, key=lambda e: -e.self_device_time_total)[:3]
    names = "; ".join(f"{e.key[:40]} {e.self_device_time_total / calls:.0f}us" for e in top)
    return total_us / calls / 1e3, names


def run(ops, dtypes, out_dir: Path) -> pd.DataFrame:
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.bench_kernels needs a CUDA GPU: the Triton kernels are timed on the device")
    device = torch.device("cuda")
    os.environ["KIT_FORCE_TRITON"] = "1"  # "triton" times the kernels whatever the dispatch table says
    # the "backward" mode replays one graph (retain_graph), which compiled backwards with donated buffers refuse
    functorch_config.donated_buffer = False
    copy_gbs = copy_bandwidth(device)
    rows = []
    for op in ops:
        for shape in SHAPES[op]:
            case = CASES[op](shape)
            for dtype_name, mode, (impl_name, impl) in itertools.product(dtypes, MODES, case.implementations.items()):
                ms, kernel_ms, kernels, moved, peak = bench_one(case, impl, DTYPES[dtype_name], mode, device)
                gbs, kernel_gbs = moved / ms / 1e6, moved / kernel_ms / 1e6
                rows.append(
                    dict(op=op, shape="x".join(map(str, shape)), dtype=dtype_name, mode=mode, impl=impl_name,
                         ms=ms, kernel_ms=kernel_ms, gb_per_s=gbs, copy_fraction=gbs / copy_gbs,
                         kernel_copy_fraction=kernel_gbs / copy_gbs, peak_extra_over_input=peak, kernels=kernels)
                )  # fmt: skip
                print(
                    f"{op} {shape} {dtype_name} {mode:17s} {impl_name:8s} {ms:8.3f} ms (kernels {kernel_ms:7.3f}) "
                    f"{gbs:6.0f} GB/s  {kernels}"
                )
    frame = pd.DataFrame(rows)
    frame = frame.merge(speedups(frame), on=["op", "shape", "dtype", "mode"], how="left")
    out_dir.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out_dir / "bench.csv", index=False)
    header = (
        f"{torch.cuda.get_device_name()} · copy bandwidth {copy_gbs:.0f} GB/s · torch {torch.__version__} · "
        f"{date.today().isoformat()}\n\n"
    )
    (out_dir / "bench.md").write_text(header + markdown_table(frame))
    write_table(TABLE_FILE, torch.cuda.get_device_name(), decide(frame), f"task bench-kernels, {date.today()}")
    return frame


def decide(frame: pd.DataFrame) -> dict[str, dict[str, str]]:
    """op -> shape class -> "triton" where the kernel's forward+backward wall time (host launches included) beats
    the best PyTorch path (eager or torch.compile) in every measured shape and dtype of the class, else
    "reference": a path that loses anywhere in a class is not taken there."""
    timed = frame[frame["mode"] == "forward+backward"]
    wide = timed.pivot_table(index=["op", "shape", "dtype"], columns="impl", values="ms").reset_index()
    shapes = [tuple(map(int, shape.split("x"))) for shape in wide["shape"]]
    wide["kind"] = [shape_class(op, shape) for op, shape in zip(wide["op"], shapes, strict=True)]
    wide["wins"] = wide["triton"] < wide[["eager", "compile"]].min(axis=1)
    table: dict[str, dict[str, str]] = {}
    for (op, kind), rows in wide.groupby(["op", "kind"]):
        table.setdefault(op, {})[kind] = "triton" if rows["wins"].all() else "reference"
    return table


def write_table(path: Path, gpu: str, decided: dict, source: str) -> None:
    """Merge one GPU's decisions into the dispatch table that ships with the package."""
    record = json.loads(path.read_text()) if path.exists() else {"gpus": {}}
    record["gpus"][gpu] = {**decided, "source": source}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)


def markdown_table(frame: pd.DataFrame) -> str:
    cells = frame.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def speedups(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (op, shape, dtype, mode): the Triton kernel's speed-up over eager and over torch.compile."""
    index = ["op", "shape", "dtype", "mode"]
    wide = frame.pivot_table(index=index, columns="impl", values="ms")
    ratios = {"triton_vs_eager": wide["eager"] / wide["triton"], "triton_vs_compile": wide["compile"] / wide["triton"]}
    if "kernel_ms" in frame:
        kernels = frame.pivot_table(index=index, columns="impl", values="kernel_ms")
        ratios["kernels_vs_eager"] = kernels["eager"] / kernels["triton"]
        ratios["kernels_vs_compile"] = kernels["compile"] / kernels["triton"]
    return pd.DataFrame(ratios).reset_index()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-kernels"))
    parser.add_argument("--ops", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    args = parser.parse_args(argv)
    frame = run(args.ops, args.dtypes, args.out)
    best = frame[(frame["impl"] == "triton") & (frame["mode"] == "forward+backward")]
    pd.set_option("display.width", 200)
    columns = ["op", "shape", "dtype", "ms", "kernel_ms", "triton_vs_eager", "triton_vs_compile", "kernels_vs_eager",
               "kernels_vs_compile", "kernel_copy_fraction", "peak_extra_over_input"]  # fmt: skip
    print(best[columns].to_string())


if __name__ == "__main__":
    main()
