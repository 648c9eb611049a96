import math

import pytest
import torch

from kit.errors import KitError
from kit.models.registry import create_model
from kit.train.finetune import frozen_fraction, param_groups, set_trainable, stages
from kit.train.schedules import WARMUP_LR, make_schedule

TRAINER = {"lr": 0.01, "freeze_epochs": 2, "unfreeze_stages": 2, "backbone_lr": 0.1}


@pytest.mark.parametrize("head", [None, {"hidden": [16], "se_reduction": 4}])
def test_head_only_then_the_last_stages_at_a_lower_rate(head):
    model = create_model("timm_classifier", 3, 5, encoder="resnet18", head=head)
    backbone, head_params = stages(model)
    groups = param_groups(model, TRAINER)
    assert [g["lr"] for g in groups] == [pytest.approx(0.001)] * len(backbone) + [0.01]
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())

    assert set_trainable(model, TRAINER, 0).startswith("epoch 0: the head and the last 0 of")
    assert all(p.requires_grad for p in head_params)
    assert not any(p.requires_grad for stage in backbone for p in stage)
    assert set_trainable(model, TRAINER, 1) is None
    assert "the last 2 of" in set_trainable(model, TRAINER, 2)
    assert all(p.requires_grad for stage in backbone[-2:] for p in stage)
    assert not any(p.requires_grad for stage in backbone[:-2] for p in stage)
    assert 0.0 < frozen_fraction(model) < 1.0

    x = torch.randn(2, 3, 32, 32)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    assert backbone[0][0].grad is None and backbone[-1][0].grad is not None


def test_layer_wise_decay_and_frozen_batchnorm_statistics():
    model = create_model("timm_classifier", 3, 5, encoder="resnet18")
    backbone, _ = stages(model)
    trainer = {"lr": 0.01, "backbone_lr": 0.5, "layer_decay": 0.5, "freeze_bn": True}
    lrs = [g["lr"] for g in param_groups(model, trainer)]
    assert lrs[-1] == 0.01 and lrs[-2] == pytest.approx(0.005), "the head at lr, the last stage at backbone_lr"
    assert lrs[:-1] == [pytest.approx(0.005 * 0.5 ** (len(backbone) - 1 - k)) for k in range(len(backbone))]
    model.train()
    set_trainable(model, trainer, 0)
    before = model.bn1.running_mean.clone()
    model(torch.randn(4, 3, 32, 32) * 5 + 3)
    assert torch.equal(model.bn1.running_mean, before), "pretrained statistics kept"
    assert model.bn1.weight.requires_grad, "BatchNorm's scale and shift still train"


def test_finetuning_needs_a_timm_backbone():
    with pytest.raises(KitError, match="need a timm backbone"):
        param_groups(create_model("simple_cnn", 3, 5), TRAINER)


def lrs(schedule: str, epochs: int = 6, steps: int = 4, improving=lambda epoch: True, **extra) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    trainer = {"schedule": schedule, "warmup_epochs": 1, "epochs": epochs, **extra}
    scheduler = make_schedule(optimizer, trainer, steps)
    seen = []
    for epoch in range(epochs):
        for _ in range(steps):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        scheduler.epoch_end(improving(epoch))
    return seen


def test_schedules_by_hand():
    w = WARMUP_LR
    warmup = [w, w + (1 - w) / 4, w + (1 - w) / 2, w + 3 * (1 - w) / 4]
    cosine = lrs("cosine")
    assert cosine[:5] == pytest.approx([*warmup, 1.0])
    assert cosine[4 + 10] == pytest.approx(0.5 * (1 + math.cos(math.pi * 10 / 20)))
    assert cosine[-1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 19 / 20)))
    exponential = lrs("exponential", lr_decay=0.5)
    assert exponential[:4] == pytest.approx(warmup)
    assert exponential[4] == pytest.approx(1.0) and exponential[8] == pytest.approx(0.5)
    assert exponential[10] == pytest.approx(0.5**1.5)
    plateau = lrs("plateau", improving=lambda epoch: epoch < 2, lr_decay=0.1, plateau_patience=2)
    assert plateau[:4] == pytest.approx(warmup)
    assert plateau[4 * 3] == pytest.approx(1.0) and plateau[4 * 4] == pytest.approx(0.1), "two stale epochs: 2, 3"
    with pytest.raises(KitError, match="trainer.schedule='step'"):
        lrs("step")


def test_the_schedule_state_survives_a_resume():
    trainer = {"schedule": "plateau", "warmup_epochs": 0, "epochs": 5, "plateau_patience": 1, "lr_decay": 0.5}
    scheduler = make_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), trainer, 1)
    scheduler.step()
    scheduler.epoch_end(False)
    again_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    again = make_schedule(again_optimizer, trainer, 1)
    again.load_state_dict(scheduler.state_dict())
    again.step()
    assert again_optimizer.param_groups[0]["lr"] == pytest.approx(0.5)

    cosine = make_schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), {"epochs": 3}, 4)
    for _ in range(6):
        cosine.step()
    resumed_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    resumed = make_schedule(resumed_optimizer, {"epochs": 3}, 4)
    resumed.load_state_dict(cosine.state_dict())
    assert resumed.last_epoch == 6
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))

    lambda_lr_state = {"last_epoch": 6, "base_lrs": [1.0], "lr_lambdas": [{"scale": 0.5, "stale": 1}]}
    older_optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    older = make_schedule(older_optimizer, {"epochs": 3, "schedule": "plateau", "plateau_patience": 2}, 4)
    older.load_state_dict(lambda_lr_state)
    assert (older.last_epoch, older.scale, older.stale) == (6, 0.5, 1), "a checkpoint from before timm's schedules"
    assert older_optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_flip_tta_averages_logits_and_flips_maps_back():
    from kit.runtime.tta import averaged

    image = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).view(2, 1, 2, 3)
    identity = lambda x: x  # noqa: E731 - a "segmenter" whose output map is its input
    assert torch.equal(averaged(identity, image, "flip"), image)
    mirror_sensitive = lambda x: x[..., 0, :1].flatten(1)  # noqa: E731 - the top-left pixel as a "logit"
    assert torch.equal(averaged(mirror_sensitive, image, "flip"), (image[..., 0, 0] + image[..., 0, -1]) / 2)


def test_dihedral_tta_is_invariant_to_the_eight_orientations_and_turns_maps_back():
    from kit.runtime.tta import averaged, mode_of

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5)).eval()
    image = torch.randn(2, 3, 9, 9)
    with torch.no_grad():
        base = averaged(net, image, "dihedral")
        for turned in (image.rot90(1, (-2, -1)), image.flip(-2), image.transpose(-2, -1)):
            assert torch.allclose(averaged(net, turned, "dihedral"), base, atol=1e-5)
            assert not torch.allclose(averaged(net, turned, "flip"), averaged(net, image, "flip"), atol=1e-3)
        segmenter = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
        assert torch.allclose(averaged(segmenter, image, "dihedral").rot90(1, (-2, -1)),
                              averaged(segmenter, image.rot90(1, (-2, -1)), "dihedral"), atol=1e-5)  # fmt: skip
    assert (mode_of(True), mode_of(False), mode_of("dihedral")) == ("flip", "none", "dihedral")
