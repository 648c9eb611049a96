"""The family trained as a user runs it: `kit` in a fresh process, the default KIT_HOME, relative paths."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kit.competitions.imageclass.metrics import classification_scores
from kit.config import load_experiment
from tests.test_cli_errors import assert_one_line_error

TINY = ["trainer.epochs=2", "trainer.batch_size=16", "data.size=32", "data.folds=3"]


def test_metrics_on_a_hand_worked_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.eye(3)[[0, 0, 1, 1, 1, 1]] * 0.8 + 0.2 / 3
    scores = classification_scores(labels, probs)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["balanced_accuracy"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 * 1 / 1.5, 0.0]  # per class: precision, recall
    assert scores["macro_f1"] == pytest.approx(np.mean(f1))


@pytest.mark.slow
def test_pneumonia_fold_oof_predict_and_labelled_test_scores(tmp_path, kit_here):
    trained = kit_here(["train-fold", "--exp", "pneumonia_resnet18", *TINY], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].startswith("auc ")
    fold = tmp_path / "runs" / "pneumonia_resnet18" / "fold0"
    assert (fold / "confusion.png").stat().st_size > 1000
    oof = pd.read_csv(fold / "oof.csv", dtype={"id": str})
    assert list(oof.columns) == ["id", "label", "normal", "pneumonia"]
    assert set(oof["label"]) == {"normal", "pneumonia"}
    assert np.allclose(oof[["normal", "pneumonia"]].sum(axis=1), 1.0, atol=1e-4)
    (folds_file,) = (tmp_path / "folds").glob("pneumoniamnist-synth-*.csv")
    folds = pd.read_csv(folds_file, dtype={"id": str})
    assert sorted(oof["id"]) == sorted(folds.loc[folds["fold"] == 0, "id"])

    merged = kit_here(["oof", "--exp", "pneumonia_resnet18", *TINY], tmp_path)
    assert merged.returncode == 0 and "CV auc" in merged.stdout, merged.stderr
    predicted = kit_here(["predict", "--exp", "pneumonia_resnet18", *TINY], tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    assert "labelled test split" in predicted.stdout and "accuracy" in predicted.stdout
    test_pred = pd.read_csv(tmp_path / "runs" / "pneumonia_resnet18" / "test_pred.csv")
    assert list(test_pred.columns) == ["id", "normal", "pneumonia"] and len(test_pred) == 60
    submission = tmp_path / "submissions" / "pneumoniamnist" / "pneumonia_resnet18.csv"
    frame = pd.read_csv(submission)
    assert list(frame.columns) == ["id", "label"] and set(frame["label"]) <= {"normal", "pneumonia"}
    assert kit_here(["validate", "pneumoniamnist", str(submission)], tmp_path).returncode == 0
    scores = json.loads((tmp_path / "runs" / "pneumonia_resnet18" / "test_scores.json").read_text())
    assert scores["metric"] == "auc" and 0.5 < scores["auc"] <= 1.0, "the synthetic classes are learnable"


@pytest.mark.slow
def test_a_new_dataset_is_one_yaml(kit_here, tmp_path):
    """A user's class-per-folder tree and one YAML declaring it: trains, scores and validates by the YAML's name."""
    rng = np.random.default_rng(0)
    for k in range(36):
        label = ["dark", "light"][k % 2]
        (tmp_path / "mine" / label).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 90, (20, 24)) + (150 if label == "light" else 0)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "mine" / label / f"{k}.png")
    cfg = {k: v for k, v in load_experiment("imagefolder_resnet18").items() if k not in ("name", "experiment")}
    cfg["competition"] = "my_shades"
    cfg["dataset"] = {"family": "image_classification", "layout": "folders", "classes": None, "channels": 1,
                      "metric": "balanced_accuracy"}  # fmt: skip
    cfg["data"]["dir"] = "mine"
    (tmp_path / "shades.yaml").write_text(yaml.safe_dump(cfg))

    trained = kit_here(["train-fold", "--exp", "shades.yaml", *TINY], tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.strip().splitlines()[-1].startswith("balanced_accuracy ")
    oof = pd.read_csv(tmp_path / "runs" / "shades" / "fold0" / "oof.csv")
    assert list(oof.columns) == ["id", "label", "dark", "light"] and oof["id"].str.match(r"(dark|light)/\d+\.png").all()
    solution = oof[["id", "label"]]
    solution.to_csv(tmp_path / "solution.csv", index=False)
    guess = solution.assign(label=np.where(oof["dark"] > oof["light"], "dark", "light"))
    guess.sample(frac=1, random_state=0).to_csv(tmp_path / "guess.csv", index=False)
    scored = kit_here(["score", "my_shades", "solution.csv", "guess.csv"], tmp_path)
    assert "Traceback" not in scored.stderr
    assert_one_line_error(scored, "unknown competition 'my_shades'")  # declared by a YAML outside kit/experiments

    no_test = kit_here(["predict", "--exp", "shades.yaml"], tmp_path)
    assert_one_line_error(no_test, "no test split")


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, fragment",
    [
        ("empty class", "class folder holds no images"),
        ("unreadable", "unreadable image"),
        ("no tree", "folder not found"),
    ],
)
def test_broken_trees_are_one_error_line(kit_here, tmp_path, how, fragment):
    for k in range(12):
        (tmp_path / "tree" / f"c{k % 3}").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16, 16), (20 * k, 0, 0)).save(tmp_path / "tree" / f"c{k % 3}" / f"{k}.png")
    if how == "empty class":
        (tmp_path / "tree" / "c9").mkdir()
    if how == "unreadable":
        (tmp_path / "tree" / "c1" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    data = "tree" if how != "no tree" else "nowhere"
    result = kit_here(["train-fold", "--exp", "imagefolder_resnet18", f"data.dir={data}", *TINY], tmp_path)
    assert_one_line_error(result, fragment)


@pytest.mark.parametrize("channels", [1, 3])
def test_randaugment_changes_training_images_and_keeps_their_shape(channels):
    from kit.competitions.imageclass.training import Images, randaugment
    from kit.errors import KitError

    random.seed(0)
    np.random.seed(0)  # timm draws the operations from NumPy's global generator
    # a mid-range gradient with texture: on uniform noise contrast, equalise and colour operations change nothing
    ramp = np.add.outer(np.arange(32), np.arange(32)) * 2 + 60
    noise = np.random.default_rng(0).integers(0, 20, (6, 32, 32))
    images = (ramp + noise)[..., None].repeat(channels, axis=-1).astype(np.uint8)
    labels, ids = np.zeros(6, int), list(range(6))
    plain = Images(images, labels, ids, channels)
    augmented = Images(images, labels, ids, channels, None, randaugment("rand-m15-n3", channels))
    changed = [not np.allclose(plain[i]["image"], augmented[i]["image"]) for i in ids]
    assert sum(changed) >= 4 and augmented[0]["image"].shape == (channels, 32, 32)
    with pytest.raises(KitError, match="trainer.randaugment='rand-x9'"):
        randaugment("rand-x9", channels)
