"""Squeeze-and-Excitation, y = x * sigmoid(W2 · relu(W1 · mean_hw(x) + b1) + b2), as fused Triton passes.

Forward: one pass reduces x per channel, the tiny MLP runs in PyTorch, one pass writes y.
Backward: one pass reduces grad_y·x per channel, the MLP backward, one pass writes grad_x = grad_y·gate + dmean/HW.
x is (N, C, H, W), contiguous or channels_last, in float32, float16 or bfloat16; accumulation is float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import nn

from kernels._dispatch import next_power_of_2, use_triton


@triton.jit
def _channel_dot_kernel(
    a_ptr,
    b_ptr,
    out_ptr,
    C,
    HW,
    scale,
    sa_n,
    sa_c,
    sa_hw,
    sb_n,
    sb_c,
    sb_hw,
    HAS_B: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    """out[n, c] = scale * sum_hw a[n, c, hw] (* b[n, c, hw] when HAS_B), accumulated in out's dtype."""
    n = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    acc_dtype = out_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=acc_dtype)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW).to(tl.int64)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        a = tl.load(a_ptr + n * sa_n + c[:, None] * sa_c + hw[None, :] * sa_hw, mask=mask, other=0.0).to(acc_dtype)
        if HAS_B:
            b = tl.load(b_ptr + n * sb_n + c[:, None] * sb_c + hw[None, :] * sb_hw, mask=mask, other=0.0)
            a = a * b.to(acc_dtype)
        acc += a
    tl.store(out_ptr + n * C + c, tl.sum(acc, axis=1) * scale, mask=c_mask)


@triton.jit
def _channel_affine_kernel(
    a_ptr,
    s_ptr,
    t_ptr,
    out_ptr,
    C,
    HW,
    sa_n,
    sa_c,
    sa_hw,
    so_n,
    so_c,
    so_hw,
    HAS_T: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    """out[n, c, hw] = a[n, c, hw] * s[n, c] (+ t[n, c] when HAS_T), computed in the dtype of s and t (N, C)."""
    hw = tl.program_id(0).to(tl.int64) * BLOCK_HW + tl.arange(0, BLOCK_HW)
    c = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    n = tl.program_id(2).to(tl.int64)
    c_mask = c < C
    mask = c_mask[:, None] & (hw < HW)[None, :]
    s = tl.load(s_ptr + n * C + c, mask=c_mask, other=0.0)
    a = tl.load(a_ptr + n * sa_n + c[:, None] * sa_c + hw[None, :] * sa_hw, mask=mask, other=0.0).to(s.dtype)
    out = a * s[:, None]
    if HAS_T:
        out += tl.load(t_ptr + n * C + c, mask=c_mask, other=0.0)[:, None]
    tl.store(out_ptr + n * so_n + c[:, None] * so_c + hw[None, :] * so_hw, out.to(out_ptr.dtype.element_ty), mask=mask)


def _strides(x: torch.Tensor) -> tuple[int, int, int]:
    """(n, c, hw) strides of a 4-D tensor whose H and W can be walked as one axis (contiguous or channels_last)."""
    sn, sc, sh, sw = x.stride()
    if sh != sw * x.shape[3] and x.shape[2] > 1:
        raise ValueError(f"H and W of a tensor with strides {x.stride()} cannot be flattened")
    return sn, sc, sw


def _flattenable(x: torch.Tensor) -> torch.Tensor:
    if x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last):
        return x
    return x.contiguous()


def _blocks(x: torch.Tensor) -> tuple[int, int]:
    """Tile (channels × pixels): long pixel runs when pixels are contiguous, wide channel runs for channels_last."""
    _, c, h, w = x.shape
    if x.stride(1) == 1 and c > 1:
        block_c = min(next_power_of_2(c), 64)
        return block_c, max(1, min(next_power_of_2(h * w), 4096 // block_c))
    block_hw = min(next_power_of_2(h * w), 1024)
    return max(1, min(next_power_of_2(c), 4096 // block_hw)), block_hw


def accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def channel_dot(a: torch.Tensor, b: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """scale * sum over H, W of a (or of a * b) -> (N, C) in the accumulation dtype."""
    n, c, h, w = a.shape
    out = torch.empty((n, c), device=a.device, dtype=accumulation_dtype(a))
    block_c, block_hw = _blocks(a)
    grid = (n, triton.cdiv(c, block_c))
    _channel_dot_kernel[grid](
        a, a if b is None else b, out, c, h * w, scale,
        *_strides(a), *_strides(a if b is None else b),
        HAS_B=b is not None, BLOCK_C=block_c, BLOCK_HW=block_hw,
    )  # fmt: skip
    return out


def channel_affine(a: torch.Tensor, s: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """a * s[:, :, None, None] (+ t[:, :, None, None]) in a's dtype and memory format."""
    n, c, h, w = a.shape
    out = torch.empty_like(a)
    block_c, block_hw = _blocks(a)
    grid = (triton.cdiv(h * w, block_hw), triton.cdiv(c, block_c), n)
    _channel_affine_kernel[grid](
        a, s, s if t is None else t, out, c, h * w,
        *_strides(a), *_strides(out),
        HAS_T=t is not None, BLOCK_C=block_c, BLOCK_HW=block_hw,
    )  # fmt: skip
    return out


def _mlp(mean, w1, b1, w2, b2):
    with torch.autocast(device_type=mean.device.type, enabled=False):
        return _mlp_unautocast(mean, w1, b1, w2, b2)


def _mlp_unautocast(mean, w1, b1, w2, b2):
    z1 = F.linear(mean, w1.to(mean.dtype), b1.to(mean.dtype))
    hidden = F.relu(z1)
    gate = torch.sigmoid(F.linear(hidden, w2.to(mean.dtype), b2.to(mean.dtype)))
    return z1, hidden, gate


def se_forward(x, w1, b1, w2, b2):
    mean = channel_dot(x, scale=1.0 / (x.shape[2] * x.shape[3]))
    z1, hidden, gate = _mlp(mean, w1, b1, w2, b2)
    return channel_affine(x, gate), (mean, z1, hidden, gate)


def se_backward(grad_y, x, w1, w2, saved):
    mean, z1, hidden, gate = saved
    grad_gate = channel_dot(grad_y, x)
    grad_z2 = grad_gate * gate * (1.0 - gate)
    grad_w2, grad_b2 = grad_z2.t() @ hidden, grad_z2.sum(0)
    grad_z1 = (grad_z2 @ w2.to(z1.dtype)) * (z1 > 0)
    grad_w1, grad_b1 = grad_z1.t() @ mean, grad_z1.sum(0)
    grad_mean = grad_z1 @ w1.to(z1.dtype)
    grad_x = channel_affine(grad_y, gate, grad_mean / (x.shape[2] * x.shape[3]))
    return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


class SqueezeExciteFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2):
        x = _flattenable(x)
        y, saved = se_forward(x, w1, b1, w2, b2)
        ctx.save_for_backward(x, w1, w2, *saved)
        ctx.dtypes = (w1.dtype, b1.dtype, w2.dtype, b2.dtype)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, w1, w2, *saved = ctx.saved_tensors
        grads = se_backward(_flattenable(grad_y), x, w1, w2, saved)
        return grads[0], *(g.to(dtype) for g, dtype in zip(grads[1:], ctx.dtypes, strict=True))


def squeeze_excite_reference(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias):
    """Plain PyTorch: the same function, accumulated in float32 (float64 for float64 x)."""
    acc = accumulation_dtype(x)
    hidden = F.relu(F.linear(x.to(acc).mean(dim=(2, 3)), fc1_weight.to(acc), fc1_bias.to(acc)))
    gate = torch.sigmoid(F.linear(hidden, fc2_weight.to(acc), fc2_bias.to(acc)))
    return (x.to(acc) * gate[:, :, None, None]).to(x.dtype)


def squeeze_excite(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias):
    """SE gate on x (N, C, H, W); weights (R, C) and (C, R), or their 1×1-convolution forms (R, C, 1, 1)."""
    if x.dim() != 4:
        raise ValueError(f"squeeze_excite expects x of shape (N, C, H, W), got {tuple(x.shape)}")
    fc1_weight, fc2_weight = fc1_weight.flatten(1), fc2_weight.flatten(1)
    if fc1_weight.shape[1] != x.shape[1] or fc2_weight.shape != (x.shape[1], fc1_weight.shape[0]):
        raise ValueError(
            f"squeeze_excite: x has {x.shape[1]} channels but fc1_weight is {tuple(fc1_weight.shape)} "
            f"and fc2_weight is {tuple(fc2_weight.shape)}"
        )
    if use_triton(x):
        return SqueezeExciteFunction.apply(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    return squeeze_excite_reference(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)


class SqueezeExcite(nn.Module):
    """Drop-in SE block: global average pool, FC-ReLU-FC-sigmoid, channel-wise rescaling."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squeeze_excite(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
