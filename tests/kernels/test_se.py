import zlib

import pytest
import torch
from torch import nn

from kernels import se, se_small
from kernels.dispatch import launch as real_launch
from kernels.se import SqueezeExcite, squeeze_excite, squeeze_excite_reference

from .helpers import DTYPES, leaves, relative_error

# all but the last fit the one-launch kernels (se_small.py); (1, 6, 100, 110) takes the two-pass path
SHAPES = [(2, 5, 7, 9), (1, 48, 16, 16), (3, 20, 1, 13), (2, 64, 5, 5), (1, 3, 33, 31), (1, 6, 100, 110)]


def random_se(shape, seed, weight_dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    channels, hidden = shape[1], max(1, shape[1] // 4)
    x = torch.randn(shape, generator=generator) + 0.3
    weights = [torch.randn(s, generator=generator, dtype=weight_dtype) for s in [(hidden, channels), (hidden,)]]
    weights += [torch.randn(s, generator=generator, dtype=weight_dtype) for s in [(channels, hidden), (channels,)]]
    weights[1] = weights[1].abs() + 0.5  # keep some hidden units alive so every weight gets a gradient
    return x, weights


def run(function, x, weights, grad_y):
    inputs = leaves(x, *weights)
    y = function(*inputs)
    y.backward(grad_y.to(y.dtype))
    return y, [t.grad for t in inputs]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize(("dtype", "tolerance"), DTYPES)
def test_forward_and_every_gradient_match_the_float64_reference(shape, channels_last, dtype, tolerance, poisoned):
    x, weights = random_se(shape, seed=zlib.crc32(repr((shape, channels_last, dtype)).encode()))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    grad_y = torch.randn(shape, generator=torch.Generator().manual_seed(len(shape) + shape[1]))
    y, grads = run(squeeze_excite, x.to(dtype), weights, grad_y)
    # the reference sees the same rounded inputs, so only the kernel's own error is measured
    reference_inputs = (x.to(dtype).double(), [w.double() for w in weights], grad_y.to(dtype).double())
    y_ref, grads_ref = run(squeeze_excite_reference, *reference_inputs)

    assert y.dtype == dtype and y.shape == shape
    assert y.is_contiguous(memory_format=torch.channels_last) == channels_last or shape[2] * shape[3] == 1
    assert relative_error(y, y_ref) < tolerance
    for name, grad, grad_ref in zip(
        ["x", "fc1_weight", "fc1_bias", "fc2_weight", "fc2_bias"], grads, grads_ref, strict=True
    ):
        assert relative_error(grad, grad_ref) < tolerance * 10, name
    assert grads[0].dtype == dtype and grads[1].dtype == torch.float32


def test_gradcheck_float64():
    x, weights = random_se((2, 6, 3, 5), seed=1, weight_dtype=torch.float64)
    inputs = leaves(x.double(), *weights)
    assert torch.autograd.gradcheck(squeeze_excite, inputs, eps=1e-6, atol=1e-6)


def test_gradcheck_channels_last_float64():
    x, weights = random_se((2, 7, 4, 3), seed=2, weight_dtype=torch.float64)
    inputs = leaves(x.double().contiguous(memory_format=torch.channels_last), *weights)
    assert torch.autograd.gradcheck(squeeze_excite, inputs, eps=1e-6, atol=1e-6)


def test_non_contiguous_input_and_gradient():
    x, weights = random_se((2, 8, 6, 10), seed=3)
    sliced = x[:, :, :, ::2]  # neither contiguous nor channels_last
    grad_y = torch.randn(2, 8, 5, 6).transpose(2, 3)
    y, grads = run(squeeze_excite, sliced, weights, grad_y)
    y_ref, grads_ref = run(squeeze_excite_reference, sliced.double(), [w.double() for w in weights], grad_y.double())
    assert relative_error(y, y_ref) < 1e-5
    assert all(relative_error(g, r) < 1e-4 for g, r in zip(grads, grads_ref, strict=True))


def test_module_is_a_drop_in_block_and_takes_the_triton_path(monkeypatch):
    calls = []
    original = se.fused_squeeze_excite
    monkeypatch.setattr(se, "fused_squeeze_excite", lambda *a: calls.append(1) or original(*a))
    block = SqueezeExcite(32, reduction=8)
    x = torch.randn(2, 32, 9, 9)
    expected = squeeze_excite_reference(x, block.fc1.weight, block.fc1.bias, block.fc2.weight, block.fc2.bias)
    assert calls == [] and relative_error(block(x), expected) < 1e-5 and calls == [1]
    assert block.fc1.weight.shape == (4, 32)


def test_conv_form_weights_are_accepted():
    x, weights = random_se((2, 16, 4, 4), seed=4)
    conv_form = [weights[0][:, :, None, None], weights[1], weights[2][:, :, None, None], weights[3]]
    assert relative_error(squeeze_excite(x, *conv_form), squeeze_excite_reference(x, *weights)) < 1e-5


def test_cpu_without_interpreter_takes_the_reference(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(se, "fused_squeeze_excite", lambda *a: pytest.fail("Triton path taken"))
    x, weights = random_se((1, 8, 3, 3), seed=5)
    assert torch.equal(squeeze_excite(x, *weights), squeeze_excite_reference(x, *weights))


@pytest.mark.parametrize(
    ("x_shape", "fc1", "fc2"),
    [((2, 8, 4), (2, 8), (8, 2)), ((2, 8, 4, 4), (2, 9), (8, 2)), ((2, 8, 4, 4), (2, 8), (8, 3))],
)
def test_bad_shapes_are_named(x_shape, fc1, fc2):
    with pytest.raises(ValueError, match="squeeze_excite"):
        squeeze_excite(torch.randn(x_shape), torch.randn(fc1), torch.randn(fc1[0]), torch.randn(fc2), torch.randn(8))


def test_trains_inside_a_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), SqueezeExcite(16, 4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head = nn.Linear(16, 2)
    x = torch.randn(16, 1, 8, 8)
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=0.05)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(head(net(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_benchmark_refuses_without_a_gpu_and_formats_its_tables(tmp_path):
    import pandas as pd

    from benchmarks import bench_kernels as bench

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="needs a CUDA GPU"):
            bench.main(["--out", str(tmp_path)])
    rows = [
        dict(op="se", shape="1x2x3x4", dtype="bf16", mode="forward", impl=impl, ms=ms)
        for impl, ms in [("triton", 1.0), ("eager", 3.0), ("compile", 1.5)]
    ]
    frame = pd.DataFrame(rows)
    ratios = bench.speedups(frame).iloc[0]
    assert ratios["triton_vs_eager"] == 3.0 and ratios["triton_vs_compile"] == 1.5
    table = bench.markdown_table(frame).splitlines()
    assert table[0].startswith("| op | shape") and len(table) == 5 and "3.000" in table[3]


def test_an_export_under_reference_math_holds_no_custom_op():
    from kernels.dispatch import reference_math

    block = SqueezeExcite(8, 4).eval()
    x = torch.randn(2, 8, 5, 5)

    def kit_ops(program) -> set[str]:
        return {str(n.target) for n in program.graph.nodes if str(n.target).startswith("kit.")}

    assert kit_ops(torch.export.export(block, (x,))) == {"kit.se_forward.default"}  # interpreter: the Triton path
    with reference_math():
        program = torch.export.export(block, (x,))
    assert kit_ops(program) == set()
    weights = (block.fc1.weight, block.fc1.bias, block.fc2.weight, block.fc2.bias)
    assert torch.allclose(program.module()(x), squeeze_excite_reference(x, *weights), atol=1e-6)


@pytest.mark.parametrize(("shape", "one_launch"), [((2, 64, 16, 16), True), ((1, 6, 100, 110), False)])
def test_a_small_sample_takes_one_launch_per_direction(shape, one_launch, monkeypatch):
    launched = []
    monkeypatch.setattr(
        se_small, "launch", lambda kernel, *a, **k: launched.append(kernel) or real_launch(kernel, *a, **k)
    )
    monkeypatch.setattr(se, "launch", lambda kernel, *a, **k: launched.append(kernel) or real_launch(kernel, *a, **k))
    x, weights = random_se(shape, seed=3)
    y, _ = run(squeeze_excite, x, weights, torch.ones(shape))
    names = [getattr(k, "__name__", None) or k.fn.__name__ for k in launched]
    if one_launch:
        assert names == ["_se_forward_kernel", "_se_backward_kernel"]
    else:
        assert names == [
            "_channel_dot_kernel",
            "_channel_affine_kernel",
            "_channel_dot_kernel",
            "_channel_affine_kernel",
        ]
