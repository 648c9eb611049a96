import pytest
import torch
import torch.nn.functional as F
import torchvision

from kernels import focal
from kernels.focal import FocalLoss, SigmoidFocalLoss, focal_loss, focal_loss_reference, sigmoid_focal_loss

from .helpers import DTYPES, leaves, relative_error

# (logits shape): (N, C) and (N, C, d1, ...), C not a power of two, spatial sizes not multiples of a block
SOFTMAX_SHAPES = [(1, 3), (7, 5), (33, 75), (2, 5, 7, 9), (1, 3, 13), (2, 4, 3, 5, 6), (3, 5, 64, 65)]
REDUCTIONS = ["mean", "sum", "none"]


def random_case(shape, seed, ignore_fraction=0.2, absent_class=None):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 3
    target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=generator)
    if absent_class is not None:
        target[target == absent_class] = (absent_class + 1) % shape[1]
    target[torch.rand(target.shape, generator=generator) < ignore_fraction] = -100
    alpha = torch.rand(shape[1], generator=generator) + 0.1
    return logits, target, alpha


def loss_and_grad(function, logits, *args, grad_output=None, **kwargs):
    (leaf,) = leaves(logits)
    loss = function(leaf, *args, **kwargs)
    loss.backward(torch.ones_like(loss) if grad_output is None else grad_output.to(loss.dtype))
    return loss, leaf.grad


@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("gamma", "with_alpha"), [(2.0, True), (0.5, False), (0.0, True)])
def test_softmax_focal_matches_the_float64_reference(shape, reduction, gamma, with_alpha, poisoned):
    logits, target, alpha = random_case(shape, seed=len(shape) * 100 + shape[1], absent_class=1)
    alpha = alpha if with_alpha else None
    grad_output = torch.randn(target.shape) if reduction == "none" else torch.tensor(1.7)
    kwargs = dict(gamma=gamma, alpha=alpha, reduction=reduction, grad_output=grad_output)
    loss, grad = loss_and_grad(focal_loss, logits.float(), target, **kwargs)
    loss_ref, grad_ref = loss_and_grad(focal_loss_reference, logits.double(), target, **kwargs)
    assert loss.shape == loss_ref.shape and grad.shape == logits.shape
    assert relative_error(loss, loss_ref) < 1e-5
    assert relative_error(grad, grad_ref) < 1e-5
    ignored = (target == -100).unsqueeze(1).expand_as(grad)
    assert (grad[ignored] == 0).all()


@pytest.mark.parametrize(("dtype", "tolerance"), DTYPES)
@pytest.mark.parametrize("shape", [(9, 7), (2, 5, 9, 11)])
def test_half_precision_logits(dtype, tolerance, shape):
    logits, target, alpha = random_case(shape, seed=3)
    loss, grad = loss_and_grad(focal_loss, logits.to(dtype), target, alpha=alpha)
    loss_ref, grad_ref = loss_and_grad(focal_loss_reference, logits.to(dtype).double(), target, alpha=alpha)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert relative_error(loss, loss_ref) < tolerance
    assert relative_error(grad, grad_ref) < tolerance * 2


def test_gamma_zero_without_alpha_is_cross_entropy():
    logits, target, _ = random_case((4, 6, 5, 3), seed=4)
    loss, grad = loss_and_grad(focal_loss, logits, target, gamma=0.0)
    loss_ce, grad_ce = loss_and_grad(F.cross_entropy, logits, target)
    assert relative_error(loss, loss_ce) < 1e-6 and relative_error(grad, grad_ce) < 1e-5


def test_channels_last_logits():
    logits, target, alpha = random_case((2, 5, 6, 7), seed=5)
    logits = logits.contiguous(memory_format=torch.channels_last)
    loss, grad = loss_and_grad(focal_loss, logits, target, alpha=alpha)
    loss_ref, grad_ref = loss_and_grad(focal_loss_reference, logits.double(), target, alpha=alpha)
    assert relative_error(loss, loss_ref) < 1e-5 and relative_error(grad, grad_ref) < 1e-5


@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 5, 5)])
def test_every_element_ignored_gives_nan_mean_and_zero_gradient_like_cross_entropy(shape, poisoned):
    logits, target, _ = random_case(shape, seed=6, ignore_fraction=1.0)
    loss, grad = loss_and_grad(focal_loss, logits, target)
    loss_ce, grad_ce = loss_and_grad(F.cross_entropy, logits, target)
    assert torch.isnan(loss) and torch.isnan(loss_ce)
    assert torch.equal(grad, torch.zeros_like(grad)) and torch.equal(grad_ce, torch.zeros_like(grad_ce))
    assert focal_loss(logits, target, reduction="sum").item() == 0.0


def test_confident_predictions_have_finite_gradients():
    logits = torch.tensor([[60.0, -60.0, 0.0], [-60.0, 60.0, 0.0]])
    target = torch.tensor([0, 0])
    for gamma in (0.5, 1.0, 2.0):
        loss, grad = loss_and_grad(focal_loss, logits, target, gamma=gamma)
        loss_ref, grad_ref = loss_and_grad(focal_loss_reference, logits.double(), target, gamma=gamma)
        assert torch.isfinite(grad).all()
        # the reference's (1 - p)**gamma has an infinite derivative at p = 1 for gamma < 1: 0 · inf = NaN there
        finite = torch.isfinite(grad_ref)
        assert finite.all() or gamma < 1
        assert relative_error(grad[finite], grad_ref[finite]) < 1e-5


def test_softmax_gradcheck_float64():
    logits, target, alpha = random_case((3, 4, 5), seed=7)
    (leaf,) = leaves(logits.double())
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, 2.0, alpha.double()), (leaf,))
    assert torch.autograd.gradcheck(lambda x: focal_loss(x, target, 1.5, reduction="none"), (leaf,))


def test_out_of_range_target_is_nan_on_the_kernel_path_and_an_error_on_the_reference():
    logits = torch.randn(4, 3)
    target = torch.tensor([0, 1, 3, 2])
    assert torch.isnan(focal_loss(logits, target))
    with pytest.raises(ValueError, match="targets must lie in"):
        focal_loss_reference(logits, target)


def test_the_forward_stores_the_only_logits_sized_buffer(monkeypatch):
    """One N×C×H×W buffer (the gradient) is allocated beside the logits; the backward adds none."""
    allocated = []
    empty_like = torch.empty_like
    monkeypatch.setattr(torch, "empty_like", lambda t, **k: allocated.append(t.numel()) or empty_like(t, **k))
    logits, target, _ = random_case((2, 5, 16, 16), seed=8)
    (leaf,) = leaves(logits)
    focal_loss(leaf, target).backward()
    assert allocated == [logits.numel()]


@pytest.mark.parametrize("bad", [dict(target=torch.zeros(4, 3, dtype=torch.long)), dict(reduction="avg")])
def test_bad_arguments_are_named(bad):
    kwargs = dict(target=torch.zeros(4, dtype=torch.long), reduction="mean") | bad
    with pytest.raises(ValueError, match="focal_loss|reduction"):
        focal_loss(torch.randn(4, 3), kwargs["target"], reduction=kwargs["reduction"])


@pytest.mark.parametrize("shape", [(50,), (7, 5), (2, 3, 9, 11)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 0.0), (0.6, 1.0)])
def test_sigmoid_focal_matches_torchvision(shape, reduction, alpha, gamma, poisoned):
    generator = torch.Generator().manual_seed(len(shape))
    logits = torch.randn(shape, generator=generator) * 3
    targets = (torch.rand(shape, generator=generator) > 0.7).float()
    grad_output = torch.randn(shape) if reduction == "none" else torch.tensor(0.5)
    kwargs = dict(alpha=alpha, gamma=gamma, reduction=reduction, grad_output=grad_output)
    loss, grad = loss_and_grad(sigmoid_focal_loss, logits, targets, **kwargs)
    loss_ref, grad_ref = loss_and_grad(torchvision.ops.sigmoid_focal_loss, logits.double(), targets.double(), **kwargs)
    assert relative_error(loss, loss_ref) < 1e-5 and relative_error(grad, grad_ref) < 1e-5


def test_sigmoid_gradcheck_float64_with_soft_targets():
    logits = torch.randn(3, 7, dtype=torch.float64)
    targets = torch.rand(3, 7, dtype=torch.float64)
    (leaf,) = leaves(logits)
    assert torch.autograd.gradcheck(lambda x: sigmoid_focal_loss(x, targets, 0.3, 2.0, "sum"), (leaf,))


def test_modules_and_the_cpu_reference_path(monkeypatch):
    logits, target, alpha = random_case((3, 4, 5, 5), seed=9)
    module = FocalLoss(gamma=2.0, alpha=alpha.tolist())
    on_kernels = module(logits, target)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(focal, "fused_focal_loss", lambda *a: pytest.fail("Triton path taken"))
    assert relative_error(on_kernels, module(logits, target)) < 1e-6
    targets = (torch.rand(4, 6) > 0.5).float()
    logits2 = torch.randn(4, 6)
    expected = torchvision.ops.sigmoid_focal_loss(logits2, targets, reduction="mean")
    assert relative_error(SigmoidFocalLoss(reduction="mean")(logits2, targets), expected) < 1e-6
