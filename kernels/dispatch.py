"""Which path an op takes. On a CUDA GPU that Triton runs on (compute capability >= 7.0), the fused kernel only where
kernels/dispatch.json, measured on that GPU by `task bench-kernels`, shows it faster than the best PyTorch path for
that op and shape class; a GPU without a measured table takes DEFAULTS. CPU tensors under TRITON_INTERPRET=1 take the
kernels (that is how CI tests them). KIT_DISABLE_TRITON=1 takes the reference everywhere; KIT_FORCE_TRITON=1 the
kernels wherever Triton runs (benchmarks)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import is_fake

log = logging.getLogger("kernels")

TRITON_MIN_CAPABILITY = (7, 0)  # Triton's GPU compiler refuses older devices (Kaggle's P100 is 6.0)
TABLE_FILE = Path(__file__).with_name("dispatch.json")
# Without a measured table: SE lost end to end on the H100 (two launches and a host-side MLP per call), focal won
# 1.8-15x over torch.compile and stores one logits-sized buffer (kernels/BENCHMARKS.md).
DEFAULTS = {"se": "reference", "focal": "triton"}
SE_SMALL_ELEMENTS = 2**16  # channels x pixels of one sample: an SE-ResNet's late stages and the Mars U-Net's deep ones


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if interpreting():
    # In Triton's interpreter torch.library.wrap_triton hands back the kernel untraced (it has no JIT metadata), so
    # torch.compile cannot see through a triton_op there: keep each op whole in the graph (as a GPU export does),
    # and run it eagerly inside the compiled graph. On a GPU the ops decompose and Inductor sees the kernels.
    import torch._functorch.config

    torch._functorch.config.decompose_custom_triton_ops = False


def launch(kernel, grid, *args, **kwargs) -> None:
    """kernel[grid](*args, **kwargs) through torch.library.wrap_triton, which torch.compile traces inside a triton_op.
    Under the interpreter a trace on fake tensors (compile's shape propagation) launches nothing: the op's outputs
    are only allocated there, and computed when the compiled graph runs."""
    if interpreting() and any(isinstance(a, torch.Tensor) and is_fake(a) for a in args):
        return
    torch.library.wrap_triton(kernel)[grid](*args, **kwargs)


def triton_disabled() -> bool:
    return os.environ.get("KIT_DISABLE_TRITON", "0") not in ("", "0")


def triton_forced() -> bool:
    return os.environ.get("KIT_FORCE_TRITON", "0") not in ("", "0")


def shape_class(op: str, shape) -> str:
    """The rows of the dispatch table an input falls in: SE by one sample's size, focal as one class."""
    if op == "se":
        return "small" if int(shape[1]) * int(shape[2]) * int(shape[3]) <= SE_SMALL_ELEMENTS else "large"
    return "all"


def read_table() -> dict:
    """GPU name -> op -> shape class -> "triton" or "reference"."""
    return _read_table(TABLE_FILE)


@functools.cache
def _read_table(path: Path) -> dict:
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("gpus", {})


def table_path(gpu: str, op: str, shape_kind: str) -> tuple[str, str]:
    """("triton" or "reference", why) for an op on a named GPU."""
    measured = read_table().get(gpu, {}).get(op, {}).get(shape_kind)
    if measured in ("triton", "reference"):
        return measured, f"measured on this GPU ({TABLE_FILE.name})"
    return DEFAULTS[op], f"no measured table for this GPU ({TABLE_FILE.name}): the default"


@functools.cache
def _cuda_decision(index: int, disabled: bool) -> tuple[bool, str]:
    name = torch.cuda.get_device_name(index)
    capability = torch.cuda.get_device_capability(index)
    if disabled:
        return False, f"{name}: fused ops take the PyTorch reference (KIT_DISABLE_TRITON=1)"
    if tuple(capability) < TRITON_MIN_CAPABILITY:
        return False, (
            f"{name} (compute capability {capability[0]}.{capability[1]}): fused ops take the PyTorch reference; "
            f"Triton needs {TRITON_MIN_CAPABILITY[0]}.{TRITON_MIN_CAPABILITY[1]} or newer"
        )
    return True, f"{name} (compute capability {capability[0]}.{capability[1]}): fused ops take the Triton kernels"


def describe(device: torch.device) -> str:
    """One line saying which path the fused ops take on a device (the runner prints it once per run)."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        runs, line = _cuda_decision(index, triton_disabled())
        if not runs or triton_forced():
            return line + (" (KIT_FORCE_TRITON=1)" if runs else "")
        name = torch.cuda.get_device_name(index)
        paths = []
        for op, kinds in (("se", ("small", "large")), ("focal", ("all",))):
            chosen = {kind: table_path(name, op, kind) for kind in kinds}
            shown = ", ".join(f"{kind} {path}" if len(kinds) > 1 else path for kind, (path, _) in chosen.items())
            paths.append(f"{op}: {shown} ({next(iter(chosen.values()))[1]})")
        return f"{name}: fused ops by measured speed; " + "; ".join(paths)
    if device.type == "cpu" and interpreting() and not triton_disabled():
        return "cpu: fused ops run the Triton kernels in Triton's interpreter (TRITON_INTERPRET=1)"
    return f"{device.type}: fused ops take the PyTorch reference"


_reference_only = False


@contextlib.contextmanager
def reference_math():
    """Inside, every fused op takes the PyTorch reference: an export (torch.export, ONNX) then holds plain aten ops,
    neither Triton nor the kit's custom ops, so it loads where the kit is not installed."""
    global _reference_only
    before, _reference_only = _reference_only, True
    try:
        yield
    finally:
        _reference_only = before


def use_triton(tensor: torch.Tensor, op: str) -> bool:
    """Whether `op` ("se" or "focal") on this input takes the Triton kernel."""
    if triton_disabled() or _reference_only:
        return False
    if tensor.is_cuda:
        if not _cuda_decision(tensor.device.index, False)[0]:
            return False
        if triton_forced():
            return True
        gpu = torch.cuda.get_device_name(tensor.device.index)
        return table_path(gpu, op, shape_class(op, tensor.shape))[0] == "triton"
    return tensor.device.type == "cpu" and interpreting()
