"""push-train's notebook trains a fold on every GPU: torchrun with one DDP process per GPU where there are several."""

import json
import subprocess
import sys

import pytest

from kit.errors import KitError
from kit.train import launch


def test_several_gpus_launch_one_ddp_process_each(kit_home, monkeypatch):
    calls = []

    def fake_run(command, env, check):
        calls.append((command, env["KIT_HOME"]))
        fold = kit_home / "runs" / "rsna_unet" / "fold1"
        fold.mkdir(parents=True)
        (fold / "summary.json").write_text(json.dumps({"world_size": 2}))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(launch.subprocess, "run", fake_run)
    summary = launch.train_fold_on_every_gpu("rsna_unet", 1, ["trainer.epochs=3"], echo=lambda _: None)
    assert summary == {"world_size": 2}
    command, home = calls[0]
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[5:] == ["-m", "kit.cli", "train-fold", "--exp", "rsna_unet", "--fold", "1", "trainer.epochs=3"]
    assert home == str(kit_home)

    monkeypatch.setattr(launch.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 1))
    with pytest.raises(KitError, match="training fold 1 of rsna_unet on 2 GPUs failed"):
        launch.train_fold_on_every_gpu("rsna_unet", 1, echo=lambda _: None)


def test_one_gpu_or_none_trains_in_this_process(monkeypatch):
    seen = []
    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr("kit.train.runner.train_fold", lambda cfg, fold: seen.append((cfg["trainer"]["epochs"], fold)))
    launch.train_fold_on_every_gpu("rsna_unet", 0, ["trainer.epochs=2"])
    assert seen == [(2, 0)]
