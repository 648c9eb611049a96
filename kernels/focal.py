"""Focal losses with the loss and its gradient computed in one pass over the logits.

Softmax (multi-class) focal loss: loss_i = -alpha[y_i] * (1 - p_i)**gamma * log p_i, shaped as F.cross_entropy.
Sigmoid focal loss: torchvision.ops.sigmoid_focal_loss semantics (binary and multi-label).

When the logits need a gradient the forward kernel writes it beside the loss, already scaled for the reduction; the
backward only multiplies it by grad_output when that is not 1. Nothing else of the logits' size is kept.
A target outside [0, C) that is not ignore_index makes the loss NaN on the Triton path (no host synchronisation);
the reference path raises.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch import nn

from kernels.dispatch import interpreting, launch, use_triton

REDUCTIONS = ("none", "mean", "sum")


@triton.jit
def _focal_weight(q, gamma, GAMMA_ZERO: tl.constexpr):
    """q**gamma for q in [0, 1], with 0**gamma = 0 for gamma > 0."""
    if GAMMA_ZERO:
        return tl.full(q.shape, 1.0, q.dtype)
    return tl.where(q > 0, tl.exp(gamma * tl.log(tl.maximum(q, 1e-30))), 0.0)


def _warp_configs() -> list[triton.Config]:
    """The tile is fixed by the class count (the loss buffer's shape depends on it); the warps per tile are tuned.
    The interpreter gets one config, so the CPU tests do not time every candidate."""
    return [triton.Config({}, num_warps=w) for w in ([4] if interpreting() else [2, 4, 8, 16])]


@triton.autotune(configs=_warp_configs(), key=["C", "S", "COMPUTE_GRAD"])
@triton.jit
def _softmax_focal_kernel(
    logits_ptr,
    target_ptr,
    alpha_ptr,
    loss_ptr,
    grad_ptr,
    grad_scale_ptr,
    C,
    S,
    gamma,
    ignore_index,
    sl_n,
    sl_c,
    sl_s,
    st_n,
    st_s,
    sg_n,
    sg_c,
    sg_s,
    HAS_ALPHA: tl.constexpr,
    GAMMA_ZERO: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    PARTIAL_SUMS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """One (n, block of positions) tile of logits viewed as (N, C, S): loss (per element or a partial sum) and grad."""
    pid_s = tl.program_id(0).to(tl.int64)
    n = tl.program_id(1).to(tl.int64)
    acc_dtype = grad_scale_ptr.dtype.element_ty
    s = pid_s * BLOCK_S + tl.arange(0, BLOCK_S)
    c = tl.arange(0, BLOCK_C)
    s_mask = s < S
    mask = (c < C)[:, None] & s_mask[None, :]
    z = tl.load(logits_ptr + n * sl_n + c[:, None] * sl_c + s[None, :] * sl_s, mask=mask, other=0.0)
    z = tl.where((c < C)[:, None], z.to(acc_dtype), -float("inf"))  # positions past S stay finite, unlike classes
    y = tl.load(target_ptr + n * st_n + s * st_s, mask=s_mask, other=ignore_index).to(tl.int64)
    valid = s_mask & (y != ignore_index)
    bad = valid & ((y < 0) | (y >= C))

    z_max = tl.max(z, axis=0)
    e = tl.exp(z - z_max[None, :])
    total = tl.sum(e, axis=0)
    is_y = c[:, None] == y[None, :]
    e_y = tl.sum(tl.where(is_y, e, 0.0), axis=0)
    z_y = tl.sum(tl.where(is_y, z, 0.0), axis=0)
    log_p = z_y - z_max - tl.log(total)
    p = e_y / total
    q = (total - e_y) / total  # 1 - p without cancellation when p is close to 1
    weight = _focal_weight(q, gamma, GAMMA_ZERO)
    a = tl.load(alpha_ptr + tl.where(valid & ~bad, y, 0)).to(acc_dtype) if HAS_ALPHA else 1.0
    loss = tl.where(valid, -a * weight * log_p, 0.0)
    loss = tl.where(bad, float("nan"), loss)

    if COMPUTE_GRAD:
        # d loss / d z_j = a (gamma q**gamma p log(p) / q - q**gamma) ([j == y] - p_j); log(p) / q -> -1 as q -> 0
        ratio = tl.where(q > 0, log_p / tl.maximum(q, 1e-30), -1.0)
        factor = a * (gamma * weight * p * ratio - weight)
        factor = tl.where(valid, factor * tl.load(grad_scale_ptr), 0.0)
        grad = factor[None, :] * (tl.where(is_y, 1.0, 0.0) - e / total[None, :])
        grad_ptrs = grad_ptr + n * sg_n + c[:, None] * sg_c + s[None, :] * sg_s
        tl.store(grad_ptrs, grad.to(grad_ptr.dtype.element_ty), mask=mask)

    if PARTIAL_SUMS:
        tl.store(loss_ptr + n * tl.num_programs(0) + pid_s, tl.sum(loss, axis=0))
    else:
        tl.store(loss_ptr + n * S + s, loss, mask=s_mask)


@triton.autotune(configs=_warp_configs(), key=["numel", "COMPUTE_GRAD"])
@triton.jit
def _sigmoid_focal_kernel(
    logits_ptr,
    target_ptr,
    loss_ptr,
    grad_ptr,
    numel,
    alpha,
    gamma,
    grad_scale,
    HAS_ALPHA: tl.constexpr,
    GAMMA_ZERO: tl.constexpr,
    COMPUTE_GRAD: tl.constexpr,
    PARTIAL_SUMS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    offsets = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < numel
    acc_dtype = loss_ptr.dtype.element_ty
    x = tl.load(logits_ptr + offsets, mask=mask, other=0.0).to(acc_dtype)
    t = tl.load(target_ptr + offsets, mask=mask, other=0.0).to(acc_dtype)
    p = tl.sigmoid(x)
    one_minus_p = tl.sigmoid(-x)
    ce = tl.maximum(x, 0.0) - x * t + tl.log(1.0 + tl.exp(-tl.abs(x)))
    m = p * (1.0 - t) + one_minus_p * t  # 1 - p_t
    weight = _focal_weight(m, gamma, GAMMA_ZERO)
    a = alpha * t + (1.0 - alpha) * (1.0 - t) if HAS_ALPHA else 1.0
    loss = tl.where(mask, a * weight * ce, 0.0)
    if COMPUTE_GRAD:
        # d/dx [m**gamma * ce] = gamma * m**(gamma - 1) * dm/dx * ce + m**gamma * (p - t), dm/dx = -p (1 - p) (2t - 1)
        dm = -p * one_minus_p * (2.0 * t - 1.0)
        focusing = tl.where(m > 0, gamma * weight / tl.maximum(m, 1e-30), 0.0) * dm * ce
        grad = a * (focusing + weight * (p - t)) * grad_scale
        tl.store(grad_ptr + offsets, grad.to(grad_ptr.dtype.element_ty), mask=mask)
    if PARTIAL_SUMS:
        tl.store(loss_ptr + pid, tl.sum(loss, axis=0))
    else:
        tl.store(loss_ptr + offsets, loss, mask=mask)


@triton.jit
def _count_valid_kernel(target_ptr, partial_ptr, numel, ignore_index, BLOCK: tl.constexpr):
    """partial[pid] = how many targets of the pid-th block are not ignore_index (no mask of the targets' size)."""
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    y = tl.load(target_ptr + offsets, mask=offsets < numel, other=ignore_index)
    tl.store(partial_ptr + tl.program_id(0), tl.sum((y != ignore_index).to(tl.int32), axis=0))


def count_valid(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    flat = target.reshape(-1)
    block = 4096
    partial = torch.empty(max(1, triton.cdiv(flat.numel(), block)), device=target.device, dtype=torch.int32)
    launch(_count_valid_kernel, (partial.numel(),), flat, partial, flat.numel(), int(ignore_index), BLOCK=block)
    return partial.sum()


def _accumulation_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _as_ncs(logits: torch.Tensor, target: torch.Tensor):
    """Logits as (N, C, S) strides and target as (N, S) strides; (N, C) logits become (1, C, N)."""
    if logits.dim() == 2:
        return 1, logits.shape[0], (0, logits.stride(1), logits.stride(0)), (0, target.stride(0))
    flat, flat_target = logits.reshape(logits.shape[0], logits.shape[1], -1), target.reshape(target.shape[0], -1)
    return logits.shape[0], flat.shape[2], flat.stride(), flat_target.stride()


def _check_softmax_inputs(logits, target, alpha, reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.dim() < 2 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"focal_loss expects logits (N, C, ...) and target (N, ...), got {tuple(logits.shape)} "
            f"and {tuple(target.shape)}"
        )
    if target.is_floating_point():
        raise ValueError(f"focal_loss expects integer class targets, got {target.dtype}")
    if alpha is not None and alpha.shape != (logits.shape[1],):
        raise ValueError(f"alpha must have one weight per class ({logits.shape[1]}), got {tuple(alpha.shape)}")


@torch.library.triton_op("kit::focal_forward", mutates_args=())
def focal_forward(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: torch.Tensor | None,
    gamma: float,
    ignore_index: int,
    reduction: str,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and, when compute_grad, its gradient (else an empty tensor), computed in one pass. A triton_op:
    torch.compile traces into it and sees the kernels."""
    n, s, (sl_n, sl_c, sl_s), (st_n, st_s) = _as_ncs(logits, target)
    num_classes, acc = logits.shape[1], _accumulation_dtype(logits)
    block_c = triton.next_power_of_2(num_classes)
    block_s = max(1, min(triton.next_power_of_2(s), 4096 // block_c))
    grid = (triton.cdiv(s, block_s), n)
    count = count_valid(target, ignore_index).to(acc)
    grad_scale = 1.0 / count.clamp(min=1) if reduction == "mean" else torch.ones((), device=logits.device, dtype=acc)
    grad = torch.empty_like(logits) if compute_grad else logits
    _, _, (sg_n, sg_c, sg_s), _ = _as_ncs(grad, target)
    partial = reduction != "none"
    loss = torch.empty((n, grid[0]) if partial else (n, s), device=logits.device, dtype=acc)
    launch(
        _softmax_focal_kernel, grid, logits, target, alpha if alpha is not None else logits, loss, grad, grad_scale,
        num_classes, s, float(gamma), int(ignore_index),
        sl_n, sl_c, sl_s, st_n, st_s, sg_n, sg_c, sg_s,
        HAS_ALPHA=alpha is not None, GAMMA_ZERO=gamma == 0, COMPUTE_GRAD=compute_grad, PARTIAL_SUMS=partial,
        BLOCK_C=block_c, BLOCK_S=block_s,
    )  # fmt: skip
    loss = _reduced(loss.reshape(target.shape) if reduction == "none" else loss, reduction, count)
    return loss.to(logits.dtype), (grad if compute_grad else logits.new_empty(0))


@torch.library.triton_op("kit::sigmoid_focal_forward", mutates_args=())
def sigmoid_focal_forward(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float, reduction: str, compute_grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    x, t = logits.contiguous(), targets.contiguous()
    numel, acc = x.numel(), _accumulation_dtype(x)
    block = 2048
    grid = (max(1, triton.cdiv(numel, block)),)
    partial = reduction != "none"
    loss = torch.empty(grid[0] if partial else numel, device=x.device, dtype=acc)
    grad = torch.empty_like(x) if compute_grad else x
    launch(
        _sigmoid_focal_kernel, grid,
        x, t, loss, grad, numel, float(alpha), float(gamma), 1.0 / max(numel, 1) if reduction == "mean" else 1.0,
        HAS_ALPHA=alpha >= 0, GAMMA_ZERO=gamma == 0, COMPUTE_GRAD=compute_grad, PARTIAL_SUMS=partial, BLOCK=block,
    )  # fmt: skip
    loss = _reduced(loss.view(x.shape) if reduction == "none" else loss, reduction, numel)
    return loss.to(logits.dtype), (grad if compute_grad else logits.new_empty(0))


def _reduced(loss, reduction, count):
    if reduction == "none":
        return loss
    return loss.sum() / count if reduction == "mean" else loss.sum()


def scale_grad(grad: torch.Tensor, grad_output: torch.Tensor, reduction: str, class_dim: bool) -> torch.Tensor:
    """The stored gradient times grad_output; skipped when grad_output is the usual 1 of loss.backward(). Not in
    place: a retained graph (gradcheck, a second backward) must find the stored gradient unchanged."""
    if reduction == "none":
        return grad * (grad_output.unsqueeze(1) if class_dim else grad_output)
    if not torch.compiler.is_compiling() and torch.equal(grad_output, torch.ones_like(grad_output)):
        return grad
    return grad * grad_output


def _save_gradient(ctx, inputs, output):
    _, grad = output
    ctx.mark_non_differentiable(grad)
    ctx.save_for_backward(grad)
    ctx.reduction = inputs[-2]


def _softmax_backward(ctx, grad_output, _grad_of_grad):
    (grad,) = ctx.saved_tensors
    return scale_grad(grad, grad_output, ctx.reduction, class_dim=True), None, None, None, None, None, None


def _sigmoid_backward(ctx, grad_output, _grad_of_grad):
    (grad,) = ctx.saved_tensors
    return scale_grad(grad, grad_output, ctx.reduction, class_dim=False), None, None, None, None, None


focal_forward.register_autograd(_softmax_backward, setup_context=_save_gradient)
sigmoid_focal_forward.register_autograd(_sigmoid_backward, setup_context=_save_gradient)


def fused_focal_loss(logits, target, alpha, gamma, ignore_index, reduction):
    return focal_forward(logits, target, alpha, gamma, ignore_index, reduction, logits.requires_grad)[0]


def fused_sigmoid_focal_loss(logits, targets, alpha, gamma, reduction):
    return sigmoid_focal_forward(logits, targets, alpha, gamma, reduction, logits.requires_grad)[0]


def focal_loss_reference(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """Plain PyTorch softmax focal loss (accumulated in float32, float64 for float64 logits)."""
    acc = _accumulation_dtype(logits)
    valid = target != ignore_index
    if ((target[valid] < 0) | (target[valid] >= logits.shape[1])).any():
        raise ValueError(f"focal_loss: targets must lie in [0, {logits.shape[1]}) or equal ignore_index")
    safe = torch.where(valid, target, torch.zeros_like(target))
    log_p = F.log_softmax(logits.to(acc), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
    loss = -((-torch.expm1(log_p)) ** gamma) * log_p
    if alpha is not None:
        loss = loss * alpha.to(acc)[safe]
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if reduction == "mean":
        loss = loss.sum() / valid.sum()
    elif reduction == "sum":
        loss = loss.sum()
    return loss.to(logits.dtype)


def sigmoid_focal_loss_reference(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """Plain PyTorch, the formula of torchvision.ops.sigmoid_focal_loss (accumulated in float32 or float64)."""
    acc = _accumulation_dtype(logits)
    x, t = logits.to(acc), targets.to(acc)
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    loss = ce * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss.to(logits.dtype)


def focal_loss(logits, target, gamma=2.0, alpha=None, ignore_index=-100, reduction="mean"):
    """Softmax focal loss over logits (N, C) or (N, C, d1, ...) and integer targets (N,) or (N, d1, ...)."""
    _check_softmax_inputs(logits, target, alpha, reduction)
    if use_triton(logits, "focal"):
        alpha = alpha.to(device=logits.device).contiguous() if alpha is not None else None
        return fused_focal_loss(logits, target, alpha, gamma, ignore_index, reduction)
    return focal_loss_reference(logits, target, gamma, alpha, ignore_index, reduction)


def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss: targets are float 0/1 (or soft) of the logits' shape; alpha < 0 disables."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if logits.shape != targets.shape:
        raise ValueError(f"sigmoid_focal_loss: logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ")
    if use_triton(logits, "focal"):
        return fused_sigmoid_focal_loss(logits, targets, alpha, gamma, reduction)
    return sigmoid_focal_loss_reference(logits, targets, alpha, gamma, reduction)


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, alpha=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.gamma, self.ignore_index, self.reduction = gamma, ignore_index, reduction
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.alpha, self.ignore_index, self.reduction)


class SigmoidFocalLoss(nn.Module):
    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"):
        super().__init__()
        self.alpha, self.gamma, self.reduction = alpha, gamma, reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sigmoid_focal_loss(logits, targets, self.alpha, self.gamma, self.reduction)
