"""timm's SE blocks on the kit's fused SE op. A timm `SEModule` whose function is exactly the op's (mean pool, 1×1
convolution with bias, ReLU, 1×1 convolution with bias, sigmoid; no norm, no max-pool: SE-ResNet, SE-ResNeXt) is
replaced by `FusedSE`, which runs `kernels.se.squeeze_excite` on the same parameters: the Triton kernel where the
measured dispatch table says it wins, the PyTorch reference elsewhere. Parameter names stay: timm checkpoints load."""

from __future__ import annotations

import torch
from timm.layers import SEModule
from timm.layers.activations import Sigmoid
from torch import nn

from kernels.se import squeeze_excite


class FusedSE(nn.Module):
    def __init__(self, se: SEModule):
        super().__init__()
        self.fc1, self.fc2 = se.fc1, se.fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squeeze_excite(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)


def fusable(module: nn.Module) -> bool:
    return (
        type(module) is SEModule
        and not module.add_maxpool
        and isinstance(module.bn, nn.Identity)
        and type(module.act) is nn.ReLU
        and type(module.gate) in (nn.Sigmoid, Sigmoid)
        and module.fc1.bias is not None
        and module.fc2.bias is not None
    )


def fuse_timm_se(model: nn.Module) -> int:
    """Replace every fusable SE block of a timm model in place; returns how many were replaced."""
    targets = [(name, module) for name, module in model.named_modules() if fusable(module)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, FusedSE(module))
    return len(targets)
