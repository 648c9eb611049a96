import zipfile

import numpy as np
import pandas as pd
import pytest

from kit.competitions import get_competition
from kit.competitions.mars import submission
from kit.config import apply_overrides, load_experiment
from kit.kaggle import code
from kit.kaggle.push import build_inference
from kit.train.outputs import merge_oof, predict_test
from kit.train.run import Run
from kit.train.runner import train_fold


@pytest.fixture
def tiny_mars(mars_dir):
    cfg = apply_overrides(
        load_experiment("mars_dual_unet"),
        [f"data.dir={mars_dir}", "data.folds=3", "trainer.epochs=1", "trainer.batch_size=8"],
    )
    cfg["model"]["macro"] = {"widths": [4, 8], "se_reduction": 2, "ca_steps": 1}
    cfg["model"]["micro"] = {"widths": [4, 8], "se_reduction": None, "ca_steps": 1}
    cfg["model"]["specialist"] = {"widths": [4, 8], "se_reduction": None}
    return cfg


def hand_miou(mars_dir, ids) -> float:
    """The oracle's mIoU on training images `ids`, written out: the argmax over classes 1-4 of oracle.npz, IoU per
    class over the pixels whose true class is not background, the mean over classes that occur."""
    with np.load(mars_dir / "mars_for_students.npz") as npz:
        truth = npz["training_set"][ids, 1].astype(int)
    with np.load(mars_dir / "oracle.npz") as npz:
        predicted = npz["probabilities"][ids][:, 1:].argmax(axis=1) + 1
    scored = truth != 0
    ious = []
    for c in range(1, 5):
        true_c, pred_c = (truth == c) & scored, (predicted == c) & scored
        union = (true_c | pred_c).sum()
        if union:
            ious.append((true_c & pred_c).sum() / union)
    return float(np.mean(ious))


@pytest.mark.slow
def test_fold_outputs_oof_arrays_mask_grid_merge_and_submission(tiny_mars, kit_home, mars_dir):
    summary = train_fold(tiny_mars, fold=0)
    out = kit_home / "runs" / "mars_dual_unet" / "fold0"
    assert {"oof.npz", "masks.png", "progress.png", "history.csv", "model_best.pt", "summary.json"} <= {
        p.name for p in out.iterdir()
    }
    folds = get_competition("mars").folds(mars_dir, 3, 42)
    with np.load(out / "oof.npz") as saved:
        ids, probs = saved["ids"], saved["probs"]
    assert sorted(ids.tolist()) == sorted(folds.index[folds == 0].tolist())
    assert probs.dtype == np.float16 and probs.shape == (len(ids), 5, 64, 128)
    assert np.allclose(probs.astype(np.float32).sum(axis=1), 1.0, atol=1e-2)
    assert 0.0 <= summary["score"] <= 1.0 and summary["prior_baseline_score"] > 0
    assert summary["oracle_score"] == pytest.approx(hand_miou(mars_dir, ids), abs=1e-9)
    gap = summary["prior_baseline_score"] - summary["oracle_score"]
    assert summary["regret"] == pytest.approx((summary["score"] - summary["oracle_score"]) / gap)

    path, scores, n_folds = merge_oof(Run.open("mars_dual_unet"))
    assert n_folds == 1 and scores["score"] == pytest.approx(summary["score"], abs=1e-3)
    for key in ("prior_baseline_score", "oracle_score"):  # one fold merged: the CV's yardsticks are the fold's
        assert scores[key] == pytest.approx(summary[key], abs=1e-9), key
    assert path.name == "oof.npz"

    sub_path, n, _ = predict_test(Run.open("mars_dual_unet"))
    frame = pd.read_csv(sub_path)
    assert n == 1 and submission.validate_submission(frame, expected_rows=12) == []
    assert sub_path.parent.name == get_competition("mars").slug

    fake_wheels = []  # the kit's and every bundled package's, empty: only the notebook is looked at
    for name in ("kaggle_kit", *(n.replace("-", "_") for n in code.BUNDLED)):
        fake_wheels.append(kit_home / f"{name}-0-py3-none-any.whl")
        with zipfile.ZipFile(fake_wheels[-1], "w") as wheel:
            wheel.writestr(f"{name}/__init__.py", "")
    package = build_inference(Run.open("mars_dual_unet"), "tester", wheels=fake_wheels)
    notebook = (package.notebook / "notebook.ipynb").read_text()
    assert "oof.npz" in notebook and "oof.csv" not in notebook, "the notebook marks folds with Mars's own OOF file"


def test_big_rock_images_are_oversampled_in_training_only(tiny_mars, mars_dir):
    training = get_competition("mars").training(tiny_mars, mars_dir)
    ids = training.ids("train")
    rocky = int((training.masks(ids) == 4).any(axis=(1, 2)).sum())
    assert rocky > 0
    assert len(training.dataset(ids, "train", augment_seed=0)) == len(ids) + 2 * rocky
    assert len(training.dataset(ids, "train")) == len(ids)
    item = training.dataset(ids, "train", augment_seed=0)[0]
    assert item["image"].shape == (1, 64, 128) and item["target"].shape == (64, 128)
    assert set(item["target"].unique().tolist()) <= {0, 1, 2, 3, 4}
