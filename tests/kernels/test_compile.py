"""torch.compile sees the fused ops whole: no graph break under fullgraph, gradients equal to eager (in Triton's
interpreter with backend="aot_eager", as CI runs it)."""

import pytest
import torch
import torch._dynamo
from torch import nn
from torch._subclasses.fake_tensor import is_fake
from torch._subclasses.functional_tensor import FunctionalTensorMode

from kernels import focal, se, se_small

OPS = {
    "kit::se_forward": se.se_forward,
    "kit::se_backward": se.se_backward,
    "kit::focal_forward": focal.focal_forward,
    "kit::sigmoid_focal_forward": focal.sigmoid_focal_forward,
}


class Step(nn.Module):
    """A small segmentation step: conv, SE, conv to class logits; softmax focal per pixel plus sigmoid focal on a
    pooled multi-label head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.se = se.SqueezeExcite(16, reduction=4)
        self.head = nn.Conv2d(16, 5, 1)

    def forward(self, x, target, labels):
        features = self.se(torch.relu(self.stem(x)))
        logits = self.head(features)
        pooled = logits.mean(dim=(2, 3))
        return focal.focal_loss(logits, target, gamma=2.0, ignore_index=0) + focal.sigmoid_focal_loss(
            pooled, labels, reduction="mean"
        )


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 3, 12, 10, generator=g)
    target = torch.randint(0, 5, (2, 12, 10), generator=g)
    labels = torch.randint(0, 2, (2, 5), generator=g).float()
    return x, target, labels


def gradients(model, step, *args):
    model.zero_grad()
    loss = step(*args)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", list(OPS))
def test_the_ops_are_triton_ops(name):
    op = OPS[name]
    assert isinstance(op, torch._library.custom_ops.CustomOpDef) and f"{op._namespace}::{op._name}" == name
    assert FunctionalTensorMode in op._torch_dispatch_fns, "a triton_op decomposes under FunctionalTensorMode"


def test_a_compiled_step_has_no_graph_break_and_eager_gradients():
    torch.manual_seed(0)
    model = Step()
    args = batch()
    eager_loss, eager_grads = gradients(model, model, *args)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(model)(*args)
    assert explained.graph_break_count == 0 and explained.graph_count == 1, explained.break_reasons
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    loss, grads = gradients(model, compiled, *args)
    torch.testing.assert_close(loss, eager_loss, rtol=0, atol=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=1e-5, msg=name)
    assert any(g.abs().sum() > 0 for g in grads.values())


def test_the_compiled_step_runs_the_kernels_on_real_tensors(monkeypatch):
    launched = []
    for module in (se, se_small, focal):
        original = module.launch

        def recording(kernel, grid, *args, original=original, **kwargs):
            if not is_fake(args[0]):
                launched.append(kernel.fn.__name__ if hasattr(kernel, "fn") else str(kernel))
            return original(kernel, grid, *args, **kwargs)

        monkeypatch.setattr(module, "launch", recording)
    torch._dynamo.reset()
    compiled = torch.compile(Step(), fullgraph=True, backend="aot_eager")
    compiled(*batch()).backward()
    names = " ".join(launched)
    for kernel in ("_se_forward_kernel", "_se_backward_kernel", "_softmax_focal_kernel", "_sigmoid_focal_kernel"):
        assert kernel in names, f"{kernel} did not run inside the compiled step: {names}"
