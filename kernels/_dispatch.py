"""Which path an op takes: Triton where Triton runs (CUDA devices of compute capability >= 7.0, or CPU tensors under
TRITON_INTERPRET=1), unless KIT_DISABLE_TRITON=1; else the plain PyTorch reference."""

from __future__ import annotations

import contextlib
import functools
import logging
import os

import torch
from torch._subclasses.fake_tensor import is_fake

log = logging.getLogger("kernels")

TRITON_MIN_CAPABILITY = (7, 0)  # Triton's GPU compiler refuses older devices (Kaggle's P100 is 6.0)


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
        return _cuda_decision(device.index if device.index is not None else torch.cuda.current_device(),
                              triton_disabled())[1]  # fmt: skip
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


def use_triton(tensor: torch.Tensor) -> bool:
    if triton_disabled() or _reference_only:
        return False
    if tensor.is_cuda:
        return _cuda_decision(tensor.device.index, False)[0]
    return tensor.device.type == "cpu" and interpreting()
