"""Check the Triton kernels on a CUDA device against float64 references: python -m kernels.check_cuda.

The test suite checks them in Triton's interpreter on the CPU; this runs the compiled kernels on the GPU, on fresh
random inputs (never zeros), and prints the relative error ‖out − ref‖ / ‖ref‖ of the output and every gradient.
Exits 1 when one is NaN or above its dtype's tolerance.
"""

from __future__ import annotations

import sys

import torch

from kernels.focal import focal_loss, focal_loss_reference, sigmoid_focal_loss, sigmoid_focal_loss_reference
from kernels.se import squeeze_excite, squeeze_excite_reference

TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 5e-3}


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    out, ref = out.detach(), ref.detach()
    return float((out - ref).norm() / ref.norm().clamp_min(1e-30))


def compare(name, fn, reference, inputs, dtype) -> list[tuple[str, float, bool]]:
    """fn on the inputs against reference on their float64 copies: the output and every input's gradient."""
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    ref_leaves = [t.detach().double().requires_grad_() if t.is_floating_point() else t.detach().clone() for t in inputs]
    out, ref = fn(*leaves), reference(*ref_leaves)
    seed = torch.randn_like(ref)
    out.backward(seed.to(out.dtype))
    ref.backward(seed)
    rows = [(f"{name} out", relative_error(out, ref))]
    pairs = [(a, b) for a, b in zip(leaves, ref_leaves, strict=True) if a.grad is not None]
    rows += [(f"{name} grad{i}", relative_error(a.grad, b.grad)) for i, (a, b) in enumerate(pairs)]
    tol = TOLERANCE[dtype]
    return [(what, err, err == err and err <= tol) for what, err in rows]


def main() -> int:
    if not torch.cuda.is_available():
        raise SystemExit("kernels.check_cuda needs a CUDA GPU")
    torch.manual_seed(0)
    dev, results = "cuda", []
    for dtype in (torch.float32, torch.bfloat16):
        for shape, channels_last in [((4, 64, 33, 17), False), ((8, 256, 16, 16), True), ((2, 5, 7, 3), False)]:
            c, hidden = shape[1], max(1, shape[1] // 16)
            x = torch.randn(shape, device=dev, dtype=dtype)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
            weights = [torch.randn(s, device=dev) * 0.3 for s in [(hidden, c), (hidden,), (c, hidden), (c,)]]
            results += compare(f"se {shape} cl={channels_last} {dtype}", squeeze_excite, squeeze_excite_reference,
                               [x, *weights], dtype)  # fmt: skip
        for shape in [(16, 5, 64, 128), (300, 75), (3, 19, 7, 11)]:
            logits = torch.randn(shape, device=dev, dtype=dtype) * 3
            target = torch.randint(0, shape[1], (shape[0], *shape[2:]), device=dev)
            target.view(-1)[::7] = -100
            alpha = torch.rand(shape[1], device=dev) + 0.5
            results += compare(
                f"focal {shape} {dtype}",
                lambda z, t, a: focal_loss(z, t, 2.0, a),
                lambda z, t, a: focal_loss_reference(z, t, 2.0, a),
                [logits, target, alpha], dtype,
            )  # fmt: skip
        logits = torch.randn(64, 14, device=dev, dtype=dtype) * 3
        targets = (torch.rand(64, 14, device=dev) < 0.3).to(dtype)
        results += compare(
            f"sigmoid focal (64, 14) {dtype}",
            lambda z, t: sigmoid_focal_loss(z, t, 0.25, 2.0, "mean"),
            lambda z, t: sigmoid_focal_loss_reference(z, t, 0.25, 2.0, "mean"),
            [logits, targets], dtype,
        )  # fmt: skip
    torch.cuda.synchronize()
    for what, err, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {err:.2e}  {what}")
    failed = sum(not ok for *_, ok in results)
    print(f"{torch.cuda.get_device_name()}: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
