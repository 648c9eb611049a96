import torch

# (dtype, relative tolerance against a float64 reference)
DTYPES = [(torch.float32, 1e-5), (torch.float16, 5e-3), (torch.bfloat16, 3e-2)]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.double(), expected.double()
    assert not torch.isnan(actual).any(), "NaN in the output"
    return ((actual - expected).norm() / expected.norm().clamp(min=1e-12)).item()


def leaves(*tensors: torch.Tensor, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """Fresh leaf copies that require grad (in `dtype` when given), keeping each tensor's memory format."""
    return [t.detach().to(dtype or t.dtype).clone().requires_grad_() for t in tensors]
