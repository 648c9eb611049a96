"""Mixed precision by device: bf16 where it is native, fp16 with a gradient scaler on older GPUs, fp32 on the CPU
(bf16 there on request, where the CPU has it natively: about 2x faster convolutions through oneDNN).

`torch.cuda.is_bf16_supported()` is true on a T4 (compute capability 7.5), where bf16 is emulated and slow, so the
choice goes by compute capability instead: bf16 needs 8.0 (Ampere) or newer.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from kit.errors import KitError

CHOICES = ("auto", "bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_BF16 = (8, 0)


def cpu_has_native_bf16() -> bool:
    """oneDNN's own test for bf16 convolutions and matmuls on this CPU (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve(setting: str, device: torch.device) -> str:
    """'auto' → bf16 on compute capability >= 8.0, fp16 on older GPUs, fp32 on the CPU; explicit settings are
    checked against the device."""
    if setting not in CHOICES:
        raise KitError(f"trainer.precision={setting!r}: expected one of {', '.join(CHOICES)}")
    if device.type != "cuda":
        if setting == "bf16" and cpu_has_native_bf16():
            return "bf16"
        if setting in ("bf16", "fp16"):
            raise KitError(
                f"trainer.precision={setting}: this {device} has no native {setting} (bf16 needs AVX512-BF16 or AMX); "
                "use fp32 or auto"
            )
        return "fp32"
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.get_device_capability(device) >= NATIVE_BF16 else "fp16"


@dataclass
class Precision:
    """The resolved mode, its autocast context and, for fp16, the gradient scaler (a no-op otherwise)."""

    mode: str
    device: torch.device
    scaler: torch.amp.GradScaler

    @classmethod
    def for_device(cls, setting: str, device: torch.device) -> Precision:
        mode = resolve(setting, device)
        return cls(mode, device, torch.amp.GradScaler(device.type, enabled=mode == "fp16"))

    def autocast(self):
        if self.mode in DTYPES:
            return torch.autocast(self.device.type, dtype=DTYPES[self.mode])
        return nullcontext()

    def describe(self) -> str:
        if self.device.type != "cuda":
            return f"precision {self.mode} on {self.device}"
        name = torch.cuda.get_device_name(self.device)
        major, minor = torch.cuda.get_device_capability(self.device)
        scaled = " with a gradient scaler" if self.mode == "fp16" else ""
        return f"precision {self.mode}{scaled} on {name} (compute capability {major}.{minor})"
