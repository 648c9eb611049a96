"""Squeeze-and-Excitation in one launch per direction where a sample is small (channels × pixels <= 65,536, the
common case in SE-ResNets' later stages and the Mars U-Net's deep blocks): one program per sample reduces x, runs the
gate's MLP (W1, ReLU, W2, sigmoid) in registers and writes y; backward, one program per sample reduces grad_y·x, runs
the MLP's backward and writes grad_x, leaving the weight gradients to two small matmuls. No public fused SE forward +
backward exists to reuse, so these are written here; se.py keeps its two-pass kernels for large maps."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.dispatch import SE_SMALL_ELEMENTS, launch

TILE = 4096  # elements of one register tile: channels × pixels, or hidden × channels for the MLP


def fits(x: torch.Tensor) -> bool:
    """A sample small enough, with its channels in one register tile (at most TILE of them)."""
    return x.shape[1] * x.shape[2] * x.shape[3] <= SE_SMALL_ELEMENTS and triton.next_power_of_2(x.shape[1]) <= TILE


@triton.jit
def _pool(a_ptr, b_ptr, n, c, c_mask, HW, sa_n, sa_c, sa_hw, sb_n, sb_c, sb_hw,
          HAS_B: tl.constexpr, ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):  # fmt: skip
    """sum over pixels of a[n, c, :] (* b[n, c, :]) -> (BLOCK_C,) in ACC."""
    acc = tl.zeros((BLOCK_C, BLOCK_HW), dtype=ACC)
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW).to(tl.int64)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        a = tl.load(a_ptr + n * sa_n + c[:, None] * sa_c + hw[None, :] * sa_hw, mask=mask, other=0.0).to(ACC)
        if HAS_B:
            a = a * tl.load(b_ptr + n * sb_n + c[:, None] * sb_c + hw[None, :] * sb_hw, mask=mask, other=0.0).to(ACC)
        acc += a
    return tl.sum(acc, axis=1)


@triton.jit
def _scale(a_ptr, out_ptr, s, t, n, c, c_mask, HW, sa_n, sa_c, sa_hw, so_n, so_c, so_hw,
           ACC: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr):  # fmt: skip
    """out[n, c, :] = a[n, c, :] * s[c] + t[c], written in out's dtype."""
    for start in range(0, HW, BLOCK_HW):
        hw = start + tl.arange(0, BLOCK_HW).to(tl.int64)
        mask = c_mask[:, None] & (hw < HW)[None, :]
        a = tl.load(a_ptr + n * sa_n + c[:, None] * sa_c + hw[None, :] * sa_hw, mask=mask, other=0.0).to(ACC)
        out = a * s[:, None] + t[:, None]
        tl.store(out_ptr + n * so_n + c[:, None] * so_c + hw[None, :] * so_hw, out.to(out_ptr.dtype.element_ty),
                 mask=mask)  # fmt: skip


@triton.jit
def _se_forward_kernel(x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, y_ptr, mean_ptr, z1_ptr, hidden_ptr, gate_ptr,
                       C, R, HW, sx_n, sx_c, sx_hw, sy_n, sy_c, sy_hw,
                       BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_R: tl.constexpr):  # fmt: skip
    ACC: tl.constexpr = mean_ptr.dtype.element_ty
    n = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    c_mask = c < C
    mean = _pool(x_ptr, x_ptr, n, c, c_mask, HW, sx_n, sx_c, sx_hw, sx_n, sx_c, sx_hw, False, ACC, BLOCK_C, BLOCK_HW)
    mean = mean / HW
    tl.store(mean_ptr + n * C + c, mean, mask=c_mask)
    z2 = tl.load(b2_ptr + c, mask=c_mask, other=0.0).to(ACC)
    for r0 in range(0, R, BLOCK_R):  # the hidden units a tile at a time: z1 needs all of mean, z2 sums over them
        r = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        r_mask = r < R
        rc_mask = r_mask[:, None] & c_mask[None, :]
        w1 = tl.load(w1_ptr + r[:, None] * C + c[None, :], mask=rc_mask, other=0.0).to(ACC)
        z1 = tl.sum(w1 * mean[None, :], axis=1) + tl.load(b1_ptr + r, mask=r_mask, other=0.0).to(ACC)
        hidden = tl.maximum(z1, 0.0)
        tl.store(z1_ptr + n * R + r, z1, mask=r_mask)
        tl.store(hidden_ptr + n * R + r, hidden, mask=r_mask)
        w2 = tl.load(w2_ptr + c[None, :] * R + r[:, None], mask=rc_mask, other=0.0).to(ACC)  # W2[c, r] as (r, c)
        z2 += tl.sum(w2 * hidden[:, None], axis=0)
    gate = 1.0 / (1.0 + tl.exp(-z2))
    tl.store(gate_ptr + n * C + c, gate, mask=c_mask)
    _scale(x_ptr, y_ptr, gate, tl.zeros_like(gate), n, c, c_mask, HW, sx_n, sx_c, sx_hw, sy_n, sy_c, sy_hw,
           ACC, BLOCK_C, BLOCK_HW)  # fmt: skip


@triton.jit
def _se_backward_kernel(grad_y_ptr, x_ptr, w1_ptr, w2_ptr, z1_ptr, gate_ptr, grad_x_ptr, grad_z1_ptr, grad_z2_ptr,
                        C, R, HW, sg_n, sg_c, sg_hw, sx_n, sx_c, sx_hw, so_n, so_c, so_hw,
                        BLOCK_C: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_R: tl.constexpr):  # fmt: skip
    ACC: tl.constexpr = gate_ptr.dtype.element_ty
    n = tl.program_id(0).to(tl.int64)
    c = tl.arange(0, BLOCK_C).to(tl.int64)
    c_mask = c < C
    grad_gate = _pool(grad_y_ptr, x_ptr, n, c, c_mask, HW, sg_n, sg_c, sg_hw, sx_n, sx_c, sx_hw, True, ACC,
                      BLOCK_C, BLOCK_HW)  # fmt: skip
    gate = tl.load(gate_ptr + n * C + c, mask=c_mask, other=0.0)
    grad_z2 = grad_gate * gate * (1.0 - gate)
    tl.store(grad_z2_ptr + n * C + c, grad_z2, mask=c_mask)
    grad_mean = tl.zeros((BLOCK_C,), dtype=ACC)
    for r0 in range(0, R, BLOCK_R):
        r = r0 + tl.arange(0, BLOCK_R).to(tl.int64)
        r_mask = r < R
        rc_mask = r_mask[:, None] & c_mask[None, :]
        w2 = tl.load(w2_ptr + c[None, :] * R + r[:, None], mask=rc_mask, other=0.0).to(ACC)
        z1 = tl.load(z1_ptr + n * R + r, mask=r_mask, other=0.0)
        grad_z1 = tl.where(z1 > 0, tl.sum(w2 * grad_z2[None, :], axis=1), 0.0)
        tl.store(grad_z1_ptr + n * R + r, grad_z1, mask=r_mask)
        w1 = tl.load(w1_ptr + r[:, None] * C + c[None, :], mask=rc_mask, other=0.0).to(ACC)
        grad_mean += tl.sum(w1 * grad_z1[:, None], axis=0)
    _scale(grad_y_ptr, grad_x_ptr, gate, grad_mean / HW, n, c, c_mask, HW, sg_n, sg_c, sg_hw, so_n, so_c, so_hw,
           ACC, BLOCK_C, BLOCK_HW)  # fmt: skip


def _blocks(c: int, r: int, hw: int) -> dict:
    """Register tiles of about TILE elements: all channels at once, pixels and hidden units in runs."""
    block_c = triton.next_power_of_2(c)
    return {"BLOCK_C": block_c, "BLOCK_HW": max(1, min(triton.next_power_of_2(hw), TILE // block_c)),
            "BLOCK_R": max(1, min(triton.next_power_of_2(r), TILE // block_c))}  # fmt: skip


def _strides(x: torch.Tensor) -> tuple[int, int, int]:
    sn, sc, _, sw = x.stride()
    return sn, sc, sw


def forward(x, w1, b1, w2, b2, acc: torch.dtype):
    """y, mean, z1, hidden, gate in one launch (x contiguous or channels_last)."""
    n, c, h, w = x.shape
    r = w1.shape[0]
    y = torch.empty_like(x)
    mean, gate = (torch.empty((n, c), device=x.device, dtype=acc) for _ in range(2))
    z1, hidden = (torch.empty((n, r), device=x.device, dtype=acc) for _ in range(2))
    launch(_se_forward_kernel, (n,), x, w1.contiguous(), b1.contiguous(), w2.contiguous(), b2.contiguous(),
           y, mean, z1, hidden, gate, c, r, h * w, *_strides(x), *_strides(y), **_blocks(c, r, h * w))  # fmt: skip
    return y, mean, z1, hidden, gate


def backward(grad_y, x, w1, w2, mean, z1, hidden, gate):
    """grad_x in one launch; the weight gradients from the per-sample gradients of z1 and z2."""
    n, c, h, w = x.shape
    r = w1.shape[0]
    grad_x = torch.empty_like(grad_y)
    grad_z1 = torch.empty_like(z1)
    grad_z2 = torch.empty_like(gate)
    launch(_se_backward_kernel, (n,), grad_y, x, w1.contiguous(), w2.contiguous(), z1, gate, grad_x, grad_z1,
           grad_z2, c, r, h * w, *_strides(grad_y), *_strides(x), *_strides(grad_x),
           **_blocks(c, r, h * w))  # fmt: skip
    return grad_x, grad_z1.t() @ mean, grad_z1.sum(0), grad_z2.t() @ hidden, grad_z2.sum(0)
