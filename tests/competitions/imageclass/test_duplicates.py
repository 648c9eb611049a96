"""Contaminants and duplicate groups by perceptual hash: a hand-worked grouping, the synthetic AN2DL traps found
exactly, folds that never split a group, no false contaminants on real X-rays, one-line errors."""

from pathlib import Path

import numpy as np
import pytest

from kit.competitions import get_competition
from kit.competitions.imageclass import duplicates, synth
from kit.errors import KitError

REAL = Path(__file__).parents[4] / "shared" / "data" / "pneumoniamnist"


def test_near_groups_on_a_hand_worked_case():
    base = np.zeros(64, bool)
    base[:32] = True
    two_off, six_off, far = base.copy(), base.copy(), ~base
    two_off[[0, 40]] = [False, True]  # 2 bits from base
    six_off[[0, 1, 2, 40, 41, 42]] = [False, False, False, True, True, True]  # 6 from base, 4 from two_off
    groups = duplicates.near_groups(np.stack([base, two_off, six_off, far]), distance=2, chunk=3)
    assert groups[0] == groups[1] and len({groups[0], groups[2], groups[3]}) == 3
    groups = duplicates.near_groups(np.stack([base, two_off, six_off, far]), distance=4)
    assert groups[0] == groups[1] == groups[2] != groups[3]  # six_off joins through two_off


def test_synthetic_an2dl_contaminants_are_removed_and_groups_stay_in_one_fold(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    comp = get_competition("bloodcells")
    comp.synth(tmp_path / "data", train=300, test=0, seed=3)
    with np.load(tmp_path / "data" / "training_set.npz") as saved:
        images, labels = saved["images"], saved["labels"][:, 0]
    copies = max(20, round(0.065 * 300))
    samples, report = duplicates.read_clean(tmp_path / "data", comp.spec)
    assert report["removed"] == 2 * copies and [g["copies"] for g in report["contaminant_groups"]] == [copies] * 2
    kept = np.asarray(samples.train.keys, dtype=int)
    assert len(kept) == len(images) - 2 * copies
    flat = images.reshape(len(images), -1).astype(int)
    spread = flat.std(axis=0).mean()
    removed = np.setdiff1d(np.arange(len(images)), kept)
    for index in removed:  # each removed sample is within pixel noise of another removed one
        others = removed[removed != index]
        assert np.abs(flat[others] - flat[index]).max(axis=1).min() <= 6 < spread
    assert len(set(labels[removed])) > 2  # pasted in under many labels
    assert report["exact_copies"] >= 300 // 50

    folds = comp.folds(tmp_path / "data")
    by_group: dict = {}
    for fold, group in zip(folds, samples.train.groups, strict=True):
        by_group.setdefault(group, set()).add(fold)
    assert all(len(f) == 1 for f in by_group.values())
    assert any(np.sum(samples.train.groups == g) > 1 for g in by_group)
    assert (tmp_path / "folds" / "data.cleaning.json").exists()


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/pneumoniamnist is absent")
def test_no_false_contaminants_on_real_xrays():
    spec = {"layout": "npz", "file": "pneumoniamnist.npz", "classes": ["normal", "pneumonia"], "clean": {}}
    samples, report = duplicates.read_clean(REAL, spec)
    with np.load(REAL / "pneumoniamnist.npz") as saved:
        labelled = len(saved["train_labels"]) + len(saved["val_labels"])
    assert report["removed"] == 0 and len(samples.train.keys) == labelled == report["samples"]
    assert report["exact_copies"] > 0  # PneumoniaMNIST repeats some images exactly


@pytest.mark.parametrize(
    "clean, fragment",
    [
        ({"distance": 40}, "dataset.clean.distance=40"),
        ({"copies": 3}, "expected a mapping with keys distance, contaminant_copies"),
        ({"contaminant_copies": 1}, "dataset.clean.contaminant_copies=1"),
    ],
)
def test_bad_clean_settings_are_one_line(clean, fragment):
    with pytest.raises(KitError) as caught:
        duplicates.check_clean(clean)
    assert fragment in str(caught.value)


def test_a_dataset_that_is_all_copies_is_refused(tmp_path):
    spec = {"layout": "npz", "classes": ["a", "b"], "clean": {"contaminant_copies": 2}}
    synth.generate(tmp_path / "d", {**spec, "clean": None, "synth_size": 32}, train=4, test=0, seed=0)
    with np.load(tmp_path / "d" / "training_set.npz") as saved:
        images = np.repeat(saved["images"][:1], 4, axis=0)
        np.savez(tmp_path / "d" / "training_set.npz", images=images, labels=saved["labels"])
    with pytest.raises(KitError, match="every labelled sample is a near copy"):
        duplicates.read_clean(tmp_path / "d", spec)


def test_copies_in_a_class_folder_tree_share_a_fold_by_default(tmp_path, kit_home, capsys):
    """No dataset.clean: a user's tree with re-saved and resized copies still keeps each image's copies in one fold,
    and says how many it found; the hashes are computed once (cached with the decoded images)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    tree = tmp_path / "tree"
    for name in ("cats", "dogs"):
        (tree / name).mkdir(parents=True)
    originals = []
    for k in range(24):
        picture = Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).resize((64, 64), Image.BICUBIC)
        picture.save(tree / ("cats", "dogs")[k % 2] / f"{k}.png")
        originals.append(picture)
    for k in (0, 1, 2):  # a re-saved JPEG, a resized copy, and the same file again under another name
        originals[k].convert("RGB").save(tree / ("cats", "dogs")[k % 2] / f"{k}_copy.jpg", quality=90)
        originals[k].resize((80, 80)).save(tree / ("cats", "dogs")[k % 2] / f"{k}_big.png")
    comp = get_competition("imagefolder")
    folds = comp.folds(tree, n_splits=4, seed=0)
    assert "duplicates: 9 of 30 labelled images are near copies" in capsys.readouterr().out
    keys = duplicates.read_clean(tree, comp.spec)[0].train.keys
    fold_of = dict(zip(keys, folds, strict=True))
    for k in (0, 1, 2):
        same = {fold_of[f"{('cats', 'dogs')[k % 2]}/{k}{suffix}"] for suffix in (".png", "_copy.jpg", "_big.png")}
        assert len(same) == 1, f"image {k}'s copies in folds {same}"
    assert len(list((kit_home / "cache" / "decoded").glob("*.npy"))) == 1
    comp.folds(tree, n_splits=4, seed=0)
    assert "duplicates" not in capsys.readouterr().out, "said when the split is made, not on every read"
