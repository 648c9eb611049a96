"""Squeeze-and-Excitation, y = x * sigmoid(W2 · relu(W1 · mean_hw(x) + b1) + b2), as fused Triton passes.

Small samples (channels × pixels <= 65,536): one launch per direction (se_small.py), the MLP inside the kernel.
Large ones: forward, one pass reduces x per channel, the tiny MLP runs in PyTorch, one pass writes y; backward, one
pass reduces grad_y·x per channel, the MLP backward, one pass writes grad_x = grad_y·gate + dmean/HW.
x is (N, C, H, W), contiguous or channels_last, in float32, float16 or bfloat16; accumulation is float32.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import nn

from kernels import se_small
from kernels.dispatch import interpreting, launch, use_triton


def _tile_configs() -> list[triton.Config]:
    """(channels × pixels) tiles: long pixel runs for contiguous x, wide channel runs for channels_last. The
    interpreter gets one config, so the CPU tests do not time every candidate."""
    tiles = [(4, 512, 4), (8, 512, 8), (16, 256, 4), (32, 128, 4), (64, 64, 4), (128, 32, 8), (32, 64, 4)]
    if interpreting():
        tiles = [(8, 512, 4)]  # one big tile: the interpreter pays per program, not per element
    return [triton.Config({"BLOCK_C": c, "BLOCK_HW": hw}, num_warps=w) for c, hw, w in tiles]


def _prune_tiles(configs, named_args, **_):
    """Drop tiles far wider than the tensor along either axis (a 128-channel tile on 5 channels)."""
    c, hw = named_args["C"], named_args["HW"]
    widest_c, widest_hw = max(4, triton.next_power_of_2(c)), max(32, triton.next_power_of_2(hw))
    fitting = [cfg for cfg in configs if cfg.kwargs["BLOCK_C"] <= widest_c and cfg.kwargs["BLOCK_HW"] <= widest_hw]
    return fitting or configs[:1]


SPLIT_ALIGN = 512  # a pixel chunk of the reduction is a multiple of every tile's BLOCK_HW


@triton.autotune(
    configs=_tile_configs(), key=["C", "HW", "PIXELS_CONTIGUOUS"], prune_configs_by={"early_config_prune": _prune_tiles}
)
@triton.jit
def _channel_dot_kernel(
    a_ptr,
    b_ptr,
    partial_ptr,
    C,
    HW,
    chunk,
    splits,
    sa_n,
    sa_c,
    sa_hw,
    sb_n,
    sb_c,
    sb_hw,
    HAS_B: tl.constexpr,
    PIXELS_CONTIGUOUS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_HW: tl.constexpr,
):
    """partial[n, c, k] = sum over the k-th chunk of pixels of a[n, c, hw] (* b[n, c, hw] when HAS_B), in float32
    (float64 for float64 partials). Splitting the pixels keeps the GPU busy when N × C is small."""
    n = tl.program_id(0) // splits
    k = tl.program_id(0) % splits
    n, k = n.to(tl.int64), k.to(tl.int64)
    c = tl.program_id(1).to(tl.int64) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_mask = c < C
    acc_dtype = partial_ptr.dtype.element_ty
    acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=acc_dtype)
    for start in range(k * chunk, tl.minimum(k * chunk + chunk, HW), BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW).to(tl.int64)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        a = tl.load(a_ptr + n * sa_n + c[:, None] * sa_c + hw[None, :] * sa_hw, mask=mask, other=0.0).to(acc_dtype)
        if HAS_B:
            b = tl.load(b_ptr + n * sb_n + c[:, None] * sb_c + hw[None, :] * sb_hw, mask=mask, other=0.0)
            a = a * b.to(acc_dtype)
        acc += a
    tl.store(partial_ptr + (n * C + c) * splits + k, tl.sum(acc, axis=1), mask=c_mask)


@triton.autotune(
    configs=_tile_configs(), key=["C", "HW", "PIXELS_CONTIGUOUS"], prune_configs_by={"early_config_prune": _prune_tiles}
)
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
    PIXELS_CONTIGUOUS: tl.constexpr,
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


def _pixels_contiguous(x: torch.Tensor) -> bool:
    return x.stride(1) != 1 or x.shape[1] == 1


@functools.cache
def _target_programs(device: torch.device) -> int:
    """Enough programs to fill the GPU a few times over; a handful in the interpreter, so its tests split too."""
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 8


def accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def channel_dot(a: torch.Tensor, b: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """scale * sum over H, W of a (or of a * b) -> (N, C) in the accumulation dtype."""
    n, c, h, w = a.shape
    hw = h * w
    wanted = triton.cdiv(_target_programs(a.device), n)
    chunk = triton.cdiv(triton.cdiv(hw, max(1, wanted)), SPLIT_ALIGN) * SPLIT_ALIGN
    splits = triton.cdiv(hw, chunk)
    partial = torch.empty((n, c, splits), device=a.device, dtype=accumulation_dtype(a))
    launch(
        _channel_dot_kernel, lambda meta: (n * splits, triton.cdiv(c, meta["BLOCK_C"])),
        a, a if b is None else b, partial, c, hw, chunk, splits,
        *_strides(a), *_strides(a if b is None else b),
        HAS_B=b is not None, PIXELS_CONTIGUOUS=_pixels_contiguous(a),
    )  # fmt: skip
    return partial.sum(2) * scale if splits > 1 else partial.view(n, c) * scale


def channel_affine(a: torch.Tensor, s: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
    """a * s[:, :, None, None] (+ t[:, :, None, None]) in a's dtype and memory format."""
    n, c, h, w = a.shape
    out = torch.empty_like(a)
    launch(
        _channel_affine_kernel, lambda meta: (triton.cdiv(h * w, meta["BLOCK_HW"]), triton.cdiv(c, meta["BLOCK_C"]), n),
        a, s, s if t is None else t, out, c, h * w,
        *_strides(a), *_strides(out),
        HAS_T=t is not None, PIXELS_CONTIGUOUS=_pixels_contiguous(a),
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


@torch.library.triton_op("kit::se_forward", mutates_args=())
def se_forward(
    x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """y and what the backward needs (mean, z1, hidden, gate). A triton_op: torch.compile traces into it and sees
    the kernels (wrap_triton), so it can fuse around them without a graph break."""
    if se_small.fits(x):
        return se_small.forward(x, w1, b1, w2, b2, accumulation_dtype(x))
    mean = channel_dot(x, scale=1.0 / (x.shape[2] * x.shape[3]))
    z1, hidden, gate = _mlp(mean, w1, b1, w2, b2)
    return channel_affine(x, gate), mean, z1, hidden, gate


@torch.library.triton_op("kit::se_backward", mutates_args=())
def se_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    w1: torch.Tensor,
    w2: torch.Tensor,
    mean: torch.Tensor,
    z1: torch.Tensor,
    hidden: torch.Tensor,
    gate: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    if se_small.fits(x):
        return se_small.backward(grad_y, x, w1, w2, mean, z1, hidden, gate)
    grad_gate = channel_dot(grad_y, x)
    grad_z2 = grad_gate * gate * (1.0 - gate)
    grad_w2, grad_b2 = grad_z2.t() @ hidden, grad_z2.sum(0)
    grad_z1 = (grad_z2 @ w2.to(z1.dtype)) * (z1 > 0)
    grad_w1, grad_b1 = grad_z1.t() @ mean, grad_z1.sum(0)
    grad_mean = grad_z1 @ w1.to(z1.dtype)
    grad_x = channel_affine(grad_y, gate, grad_mean / (x.shape[2] * x.shape[3]))
    return grad_x, grad_w1, grad_b1, grad_w2, grad_b2


def _se_setup(ctx, inputs, output):
    x, w1, b1, w2, b2 = inputs
    _, *saved = output
    ctx.mark_non_differentiable(*saved)
    ctx.save_for_backward(x, w1, w2, *saved)
    ctx.dtypes = (w1.dtype, b1.dtype, w2.dtype, b2.dtype)


def _se_backward(ctx, grad_y, *_saved_outputs_grads):
    x, w1, w2, *saved = ctx.saved_tensors
    grads = se_backward(_flattenable(grad_y), x, w1, w2, *saved)
    return grads[0], *(g.to(dtype) for g, dtype in zip(grads[1:], ctx.dtypes, strict=True))


se_forward.register_autograd(_se_backward, setup_context=_se_setup)


def fused_squeeze_excite(x, w1, b1, w2, b2):
    """The Triton path: x in a layout whose H and W walk as one axis, weights as (R, C) and (C, R)."""
    return se_forward(_flattenable(x), w1, b1, w2, b2)[0]


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
    if use_triton(x, "se"):
        return fused_squeeze_excite(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)
    return squeeze_excite_reference(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)


class SqueezeExcite(nn.Module):
    """Drop-in SE block: global average pool, FC-ReLU-FC-sigmoid, channel-wise rescaling."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1, self.fc2 = nn.Linear(channels, hidden), nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squeeze_excite(x, self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
