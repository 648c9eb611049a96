"""What DDP keeps equal to one process, decided without GPUs: the global batch, and SyncBatchNorm where torch has it."""

import pytest
import torch

from kit.errors import KitError
from kit.train import data_parallel


def test_the_global_batch_is_split_evenly_or_refused():
    assert data_parallel.per_process_batch(32, 2) == 16 and data_parallel.per_process_batch(32, 1) == 32
    with pytest.raises(KitError, match=r"trainer.batch_size=30 does not divide among 4 processes.*would be 28"):
        data_parallel.per_process_batch(30, 4)


@pytest.mark.parametrize(
    "setting, per_process, world, device, expected",
    [("auto", 16, 2, "cuda", True), ("auto", 64, 2, "cuda", False), (True, 64, 2, "cuda", True),
     ("auto", 16, 1, "cuda", False), ("auto", 16, 2, "cpu", False), (False, 4, 8, "cuda", False)],
)  # fmt: skip
def test_when_batchnorm_statistics_are_synchronised(setting, per_process, world, device, expected):
    assert data_parallel.sync_batchnorm(setting, per_process, world, device) is expected


def test_sync_bn_on_cpus_is_one_line_and_the_conversion_replaces_every_batchnorm():
    with pytest.raises(KitError, match="SyncBatchNorm runs on GPUs only"):
        data_parallel.sync_batchnorm(True, 16, 2, "cpu")
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 8, 3), torch.nn.BatchNorm2d(8))  # fmt: skip
    converted = data_parallel.prepare_model(model, "auto", 8, 2, "cuda")
    kinds = [type(m) for m in converted.modules()]
    assert kinds.count(torch.nn.SyncBatchNorm) == 2 and torch.nn.BatchNorm2d not in kinds
    assert data_parallel.prepare_model(model, "auto", 8, 2, "cpu") is model
