"""Which path an op takes: Triton on CUDA tensors or, under TRITON_INTERPRET=1, on CPU tensors; else the reference."""

from __future__ import annotations

import os

import torch


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(tensor: torch.Tensor) -> bool:
    return tensor.is_cuda or (tensor.device.type == "cpu" and interpreting())


def next_power_of_2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
