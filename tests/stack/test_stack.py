import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from kit import paths
from kit.competitions.mars import submission
from kit.config import load_experiment
from kit.errors import KitError
from kit.stack.inputs import align, load_bases
from kit.stack.meta import StackModel, stack
from kit.stack.run import run_stack
from kit.train import distributed
from kit.train.prepare import prepare


def experiment(tmp_path, name, base, data_dir, **data) -> str:
    cfg = load_experiment(base)
    cfg["name"] = name
    cfg["data"].update({"dir": str(data_dir), "folds": 3, **data})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def mark_trained(cfg: dict, folds: list[int]) -> None:
    """What a finished fold holds for Run.open: its config, run record, best weights and summary."""
    from kit.competitions import competition_of
    from kit.config import dump_config
    from kit.train.identity import identity, write_identity

    record = identity(cfg, competition_of(cfg).data_dir(cfg["data"]["dir"]))
    for k in folds:
        out = paths.runs_root() / cfg["name"] / f"fold{k}"
        out.mkdir(parents=True, exist_ok=True)
        dump_config({**cfg, "fold": int(k)}, out / "config.yaml")
        write_identity(record, out)
        (out / "model_best.pt").write_bytes(b"")
        (out / "summary.json").write_text(json.dumps({"fold": int(k)}))


def fake_base(cfg_path, seed, strength, confuse=None, folds_trained=None):
    """A 'trained and predicted' experiment: per-fold and merged OOF plus test predictions, drawn as noisy truth
    row by row (so neighbouring rows carry independent noise); `confuse=(a, b)` makes it mistake a for b."""
    cfg = load_experiment(cfg_path)
    _, training, folds = prepare(cfg, distributed.Context())
    rng = np.random.default_rng(seed)
    ids, test_ids = folds.index.tolist(), training.ids("test")
    truth = np.clip(training.meta_targets(ids), 0, None)
    logits = strength * np.eye(training.meta_classes)[truth] + rng.normal(0, 1.0, (len(truth), training.meta_classes))
    if confuse is not None:
        logits[:, confuse[1]] += 2.0 * (truth == confuse[0])
    rows = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probs = training.from_meta(rows.astype(np.float32), len(ids))
    root = paths.runs_root() / cfg["name"]
    trained = sorted(folds.unique()) if folds_trained is None else folds_trained
    mark_trained(cfg, trained)
    for k in trained:
        part = [p for p, i in enumerate(ids) if folds[i] == k]
        (root / f"fold{k}").mkdir(parents=True, exist_ok=True)
        training.save_predictions(root / f"fold{k}" / training.oof_file, [ids[p] for p in part], probs[part])
    training.save_predictions(root / training.oof_file, ids, probs)
    test_rows = rng.dirichlet(np.ones(training.meta_classes), size=len(test_ids) * training.rows_per_sample)
    test = training.from_meta(test_rows.astype(np.float32), len(test_ids))
    training.save_predictions(root / training.oof_file.replace("oof", "test_pred"), test_ids, test)
    return training, folds


@pytest.fixture
def mars_bases(tmp_path, mars_dir):
    a = experiment(tmp_path, "mars_a", "mars_dual_unet", mars_dir)
    b = experiment(tmp_path, "mars_b", "mars_smp_unet", mars_dir)
    fake_base(a, seed=1, strength=1.6, confuse=(3, 1))
    fake_base(b, seed=2, strength=1.4, confuse=(2, 4))
    return a, b


@pytest.mark.slow
def test_mars_stack_beats_the_best_base_and_the_mean_blend(mars_bases):
    out, scores = run_stack("mars", list(mars_bases), max_rows=20_000)
    assert out.name == "stack-mars_a-mars_b"
    assert scores["stack"] > max(scores["mars_a"], scores["mars_b"]) and scores["stack"] > scores["mean blend"]
    assert {"oof.npz", "test_pred.npz", "report.md", "scores.png", "importance.png"} <= {p.name for p in out.iterdir()}
    report = (out / "report.md").read_text()
    assert "| stack |" in report and "mars_a__" in report  # scores table and feature importances
    sub = paths.submissions_root() / "an2dl-mars-terrain-segmentation" / "stack-mars_a-mars_b.csv"
    assert submission.validate_submission(pd.read_csv(sub), expected_rows=12) == []


@pytest.mark.slow
def test_segmentation_stack_of_two_bases_blends_and_stacks_pixels(tmp_path, monkeypatch):
    """The segmentation family (AI4Mars' layout, unlabelled pixels): per-pixel meta-rows, the ignored pixels never a
    target, the stacked OOF scored at the masks' own size, the blend's label PNGs written."""
    from kit.competitions.segmentation import synth

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # LightGBM's threads spin when xdist workers share two cores
    spec = {**load_experiment("ai4mars_lite0")["dataset"], "synth_size": 40}
    data = synth.generate(tmp_path / "terrain", spec, train=24, test=0, seed=5)
    a = experiment(tmp_path, "terrain_a", "ai4mars_lite0", data, size=24)
    b = experiment(tmp_path, "terrain_b", "ai4mars_unet", data, size=24)
    training, folds = fake_base(a, seed=6, strength=1.4, confuse=(3, 0))
    fake_base(b, seed=7, strength=1.2, confuse=(2, 1))
    targets = training.meta_targets(folds.index.tolist())
    assert len(targets) == 24 * 24 * 24 and (targets == -1).any() and set(np.unique(targets)) <= {-1, 0, 1, 2, 3}
    out, scores = run_stack("ai4mars", [a, b], max_rows=8_000)
    assert scores["stack"] > max(scores["terrain_a"], scores["terrain_b"]), scores
    assert scores["mean blend"] > min(scores["terrain_a"], scores["terrain_b"]), scores
    pngs = sorted((paths.submissions_root() / "ai4mars-msl" / out.name).glob("*.png"))
    assert len(pngs) == 24 and np.asarray(Image.open(pngs[0])).shape == (40, 40)


def test_mismatched_folds_are_refused_by_name(tmp_path, mars_dir, mars_bases):
    other_split = experiment(tmp_path, "mars_s", "mars_smp_unet", mars_dir, fold_seed=7)
    mark_trained(load_experiment(other_split), [0, 1, 2])
    with pytest.raises(KitError, match="must share one split"):  # same data, another split: the folds file refuses
        load_bases("mars", [mars_bases[0], other_split])
    copy = tmp_path / "mars_copy"
    shutil.copytree(mars_dir, copy)
    other = experiment(tmp_path, "mars_c", "mars_smp_unet", copy, fold_seed=7)
    mark_trained(load_experiment(other), [0, 1, 2])
    with pytest.raises(KitError, match="experiments mars_c use other folds than mars_a"):
        load_bases("mars", [mars_bases[0], other])


def test_partial_oof_is_refused_and_never_zero_filled(tmp_path, mars_dir, mars_bases):
    partial = experiment(tmp_path, "mars_p", "mars_smp_unet", mars_dir)
    fake_base(partial, seed=3, strength=1.0, folds_trained=[0, 2])
    (paths.runs_root() / "mars_p" / "fold1" / "oof.npz").unlink(missing_ok=True)
    with pytest.raises(KitError, match=r"mars_p: OOF does not cover every fold \(missing folds \[1\]"):
        load_bases("mars", [mars_bases[0], partial])
    aligned = align([3, 1], np.ones((2, 5, 2, 2), dtype=np.float32), [1, 2, 3])
    assert np.isnan(aligned[1]).all() and (aligned[[0, 2]] == 1).all()


@pytest.fixture
def rsna_bases(tmp_path, rsna_dir):
    a = experiment(tmp_path, "rsna_a", "rsna_unet", rsna_dir)
    b = experiment(tmp_path, "rsna_b", "rsna_resnet", rsna_dir)
    fake_base(a, seed=4, strength=1.2)
    fake_base(b, seed=5, strength=1.0, confuse=(0, 1))
    return a, b


@pytest.mark.slow
def test_a_planted_leak_scores_better_than_the_honest_stack(rsna_bases):
    training, folds, ids, _, bases, _ = load_bases("rsna", list(rsna_bases))
    honest = training.evaluate(ids, stack(training, folds, bases).oof)["score"]
    leaky = training.evaluate(ids, stack(training, folds, bases, leak=True).oof)["score"]
    assert leaky < honest  # log loss: the meta-model that saw the rows it predicts looks better


def test_rsna_meta_features_see_neighbouring_levels_and_the_other_side(rsna_bases):
    training, folds, ids, _, bases, _ = load_bases("rsna", list(rsna_bases))
    x = training.meta_features([b.oof for b in bases], [b.name for b in bases])
    assert len(x) == len(ids) * 25
    grid = bases[0].oof.reshape(len(ids), 5, 5, 3)
    row = 1 * 5 + 2  # left foraminal, L3/L4 of the first study
    assert x.loc[row, "rsna_a__normal_mild"] == pytest.approx(grid[0, 1, 2, 0])
    assert x.loc[row, "rsna_a__above_severe"] == pytest.approx(grid[0, 1, 1, 2])
    assert x.loc[row, "rsna_a__below_moderate"] == pytest.approx(grid[0, 1, 3, 1])
    assert x.loc[row, "rsna_a__other_side_severe"] == pytest.approx(grid[0, 2, 2, 2])
    assert np.isnan(x.loc[0, "rsna_a__above_severe"]) and np.isnan(x.loc[0, "rsna_a__other_side_severe"])


def test_rsna_stack_of_a_strong_and_a_weak_base_beats_both_and_the_mean_blend(tmp_path, rsna_dir):
    strong = experiment(tmp_path, "rsna_strong", "rsna_unet", rsna_dir)
    weak = experiment(tmp_path, "rsna_weak", "rsna_resnet", rsna_dir)
    fake_base(strong, seed=6, strength=2.0)
    fake_base(weak, seed=7, strength=0.6)
    out, scores = run_stack("rsna", [strong, weak])
    assert scores["stack"] < min(scores["rsna_strong"], scores["rsna_weak"], scores["mean blend"])
    assert scores["pool"] < scores["mean blend"]  # the pool weighs the strong base more
    pools = json.loads((out / "scores.json").read_text())["pools"]
    assert len(pools) == 3 and all(p["weights"]["rsna_strong"] > p["weights"]["rsna_weak"] for p in pools)
    assert "## Pools (one per fold)" in (out / "report.md").read_text()

    training, _, _, test_ids, bases, _ = load_bases("rsna", [strong, weak])  # the saved meta-models redo the test
    saved_ids, saved = training.load_predictions(out / "test_pred.csv")
    again = StackModel.load(out).predict(training, [b.test for b in bases])
    assert saved_ids == test_ids and np.abs(again - saved).max() < 1e-5


def test_a_pixel_stack_made_a_few_images_at_a_time_equals_the_stack_made_at_once(monkeypatch):
    """A segmentation stack has a meta-row per pixel (AI4Mars: 49 million): features are made per chunk of images,
    only for the rows the meta-models fit, and predictions are filled chunk by chunk; the result must not depend on
    the chunk size."""
    from types import SimpleNamespace

    from kit.competitions.pixel_stacking import PixelStacking
    from kit.stack import meta

    class Pixels(PixelStacking):
        pixel_classes, pixel_grid = ["a", "b", "c"], (16, 16)
        meta_params = {"learning_rate": 0.1, "n_estimators": 20, "num_leaves": 7, "min_child_samples": 20}

        def meta_targets(self, ids):
            return truth[ids].reshape(-1)

        def meta_weights(self, targets):
            return None

    rng = np.random.default_rng(0)
    truth = rng.integers(-1, 3, (30, 16, 16))  # -1: unlabelled

    def probs(n):
        p = rng.random((n, 3, 16, 16)) + 2 * np.eye(3)[np.clip(truth[:n], 0, 2)].transpose(0, 3, 1, 2)
        return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)

    bases = [SimpleNamespace(name=f"m{i}", oof=probs(30), test=probs(7)) for i in range(2)]
    folds = pd.Series(np.arange(30) % 3)
    whole = stack(Pixels(), folds, bases, max_rows=2_000)
    default = meta.chunks
    monkeypatch.setattr(meta, "chunks", lambda n, per, chunk_rows=0: default(n, per, chunk_rows=1_000))  # 3 images
    chunked = stack(Pixels(), folds, bases, max_rows=2_000)
    for part in ("oof", "test", "pooled_oof"):
        assert np.array_equal(getattr(whole, part), getattr(chunked, part)), part
    assert np.allclose(whole.oof.sum(axis=1), 1.0, atol=1e-5) and whole.test.shape == (7, 3, 16, 16)


@pytest.mark.slow
def test_a_stack_scored_by_cv_alone_needs_no_test_predictions(mars_bases):
    """Comparing recipes before predicting anything (AI4Mars' test split is its 3,000 training images again: an hour
    of predicting on this CPU): --cv-only reads no test predictions and writes no submission; its CV is the full
    stack's."""
    from kit.cli import main

    full_out, full = run_stack("mars", list(mars_bases), max_rows=5_000)
    for name in ("mars_a", "mars_b"):
        (paths.runs_root() / name / "test_pred.npz").unlink()
    with pytest.raises(KitError, match=r"mars_a: no .*test_pred.npz .*task predict exp=mars_a.*--cv-only"):
        run_stack("mars", list(mars_bases), max_rows=5_000)
    assert main(["stack", "mars", *mars_bases, "--max-rows", "5000", "--cv-only"]) == 0
    saved = json.loads((full_out / "scores.json").read_text())
    assert saved["cv_only"] and saved["scores"] == pytest.approx(full)
    assert not (full_out / "test_pred.npz").exists(), "the earlier full stack's test predictions are not left behind"
    assert "Scored by CV alone" in (full_out / "report.md").read_text()
