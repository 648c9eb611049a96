import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kit.cli import main
from kit.config import apply_overrides, experiment_names, load_experiment
from kit.errors import KitError, UnknownNameError
from kit.train.outputs import merge_oof, predict_test
from kit.train.run import Run
from kit.train.runner import train_fold

TINY = [
    "data.slices=2",
    "data.size=32",
    "data.folds=3",
    "trainer.epochs=2",
    "trainer.batch_size=4",
    "trainer.warmup_epochs=1",
]


@pytest.fixture
def tiny_cfg(kit_home, rsna_dir):
    (kit_home / "data").mkdir()
    (kit_home / "data" / "rsna-synth").symlink_to(rsna_dir)  # the default data, already generated
    return apply_overrides(load_experiment("rsna_resnet"), TINY)


def test_overrides_are_checked():
    cfg = load_experiment("rsna_unet")
    assert apply_overrides(cfg, ["trainer.epochs=3", "model.decoder_channels=[8,8,8,8,8]"])["trainer"]["epochs"] == 3
    with pytest.raises(KitError, match="unknown key 'trainer.epoch'"):
        apply_overrides(cfg, ["trainer.epoch=3"])
    with pytest.raises(KitError, match="not of the form"):
        apply_overrides(cfg, ["trainer.epochs"])
    with pytest.raises(UnknownNameError, match="valid: " + ", ".join(experiment_names())):
        load_experiment("nope")


@pytest.mark.parametrize("name", ["unet_classifier", "resnet_classifier"])
def test_models_map_a_stack_to_75_logits(name):
    from kit.models.registry import create_model

    model = create_model(name, in_channels=6, num_outputs=75, encoder="resnet18")
    out = model(torch.randn(2, 6, 64, 64))
    assert out.shape == (2, 75)
    out.sum().backward()
    from kit.models.registry import MODELS

    with pytest.raises(UnknownNameError, match="valid: " + ", ".join(sorted(MODELS))):
        create_model("vgg", 6, 75)


def test_unet_options_group_norm_grid_pooling_and_fused_se_decoder():
    from kernels.se import SqueezeExcite
    from kit.models.registry import create_model

    model = create_model(
        "unet_classifier", 6, 75, norm="group", pool_grid=[3, 2], decoder_se_reduction=4,
        decoder_channels=[16, 8, 8, 8, 8],
    )  # fmt: skip
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 5
    out = model(torch.randn(2, 6, 32, 32))
    out.sum().backward()
    assert out.shape == (2, 75) and model.head[1].in_features == 8 * 6 + 512
    with pytest.raises(UnknownNameError, match="valid: batch, group"):
        create_model("unet_classifier", 6, 75, norm="layer")


def test_focal_loss_trains_a_fold(tiny_cfg, kit_home, monkeypatch):
    from kit.competitions.rsna import training as rsna_training

    calls = []
    original = rsna_training.focal_loss
    monkeypatch.setattr(rsna_training, "focal_loss", lambda *a, **k: calls.append(a[2:4]) or original(*a, **k))
    cfg = apply_overrides(tiny_cfg, ["loss.name=focal", "loss.gamma=1.5", "trainer.epochs=1"])
    summary = train_fold(cfg, fold=0)
    assert np.isfinite(summary["score"]) and calls
    gamma, alpha = calls[0]
    assert gamma == 1.5 and alpha.tolist() == [1.0, 2.0, 4.0]  # the metric's severity weights as alpha
    with pytest.raises(KitError, match="focal loss only"):
        train_fold(apply_overrides(tiny_cfg, ["loss.gamma=1.5"]), fold=0)


def test_fold_outputs_and_oof_honesty(tiny_cfg, kit_home, rsna_dir):
    summary = train_fold(tiny_cfg, fold=1)
    out = kit_home / "runs" / "rsna_resnet" / "fold1"
    for name in (
        "config.yaml",
        "model_best.pt",
        "model_last.pt",
        "history.csv",
        "progress.png",
        "oof.csv",
        "summary.json",
    ):
        assert (out / name).exists(), name
    recorded = yaml.safe_load((out / "config.yaml").read_text())
    assert recorded["data"]["size"] == 32 and "fold" not in recorded  # the fold is the folder, not a config key
    history = pd.read_csv(out / "history.csv")
    assert list(history.epoch) == [0, 1]
    assert {"train_loss", "val_loss", "score", "lr", "seconds", "samples_per_s"} <= set(history.columns)
    saved = json.loads((out / "summary.json").read_text())
    assert saved["score"] == pytest.approx(summary["score"]) and saved["prior_baseline_score"] > 0
    assert saved["best_epoch"] in (0, 1)

    (folds_file,) = (kit_home / "folds").glob(f"{rsna_dir.name}-*.csv")  # keyed by the data
    folds = pd.read_csv(folds_file, index_col="id")["fold"]
    oof = pd.read_csv(out / "oof.csv")
    assert sorted({int(r.split("_")[0]) for r in oof.row_id}) == sorted(folds.index[folds == 1])
    assert len(oof) == 25 * int((folds == 1).sum())
    np.testing.assert_allclose(oof[["normal_mild", "moderate", "severe"]].sum(axis=1), 1, atol=1e-6)

    path, scores, n = merge_oof(Run.open(tiny_cfg["name"]))
    merged = pd.read_csv(path)
    assert n == 1 and len(merged) == len(oof)  # folds never trained are absent, not zero
    assert scores["score"] == pytest.approx(saved["score"], abs=1e-9)

    sub_path, n, _ = predict_test(Run.open(tiny_cfg["name"]))
    sub = pd.read_csv(sub_path)
    sample = pd.read_csv(rsna_dir / "sample_submission.csv")
    assert sorted(sub.row_id) == sorted(sample.row_id)
    assert main(["validate", "rsna", str(sub_path), "--sample", str(rsna_dir / "sample_submission.csv")]) == 0


def test_resume_continues_without_repeating_epochs(tiny_cfg, kit_home):
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=0)
    out = kit_home / "runs" / "rsna_resnet" / "fold0"
    first = pd.read_csv(out / "history.csv")
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=3"]), fold=0, resume=True, force=True)
    history = pd.read_csv(out / "history.csv")
    assert list(history.epoch) == [0, 1, 2]
    assert history.train_loss.iloc[0] == pytest.approx(first.train_loss.iloc[0])


def test_weight_average_validates_checkpoints_and_resumes(tiny_cfg, kit_home):
    from kit.models.registry import create_model
    from kit.runtime import checkpoint
    from kit.train.fit import weight_average
    from kit.train.resume import restore
    from kit.train.schedules import make_schedule

    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1", "trainer.batch_size=2", "trainer.ema=0.9"]), fold=0)
    out = kit_home / "runs" / "rsna_resnet" / "fold0"
    last, best = checkpoint.load(out / "model_last.pt"), checkpoint.load(out / "model_best.pt")
    weights = [k for k, v in last["model"].items() if v.is_floating_point()]
    assert any(not torch.equal(last["ema"][k], last["model"][k]) for k in weights)  # an average, not the weights
    assert all(torch.equal(best["model"][k], last["ema"][k]) for k in weights)  # the average is what was kept

    model = create_model("resnet_classifier", 6, 75, encoder="resnet18")
    optimizer = torch.optim.AdamW(model.parameters())
    ema = weight_average(model, 0.9)
    state = restore(last, model, optimizer, make_schedule(optimizer, {"warmup_epochs": 1, "epochs": 10}, 1), ema)
    assert state["epoch"] == 0
    assert all(torch.equal(ema.module.state_dict()[k], last["ema"][k]) for k in weights)
    with pytest.raises(KitError, match=r"trainer.ema=1.5"):
        weight_average(model, 1.5)


def test_training_is_deterministic_on_cpu(tiny_cfg, kit_home):
    a = train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=2)
    os.rename(kit_home / "runs", kit_home / "runs_a")
    b = train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=2)
    assert a["score"] == b["score"]


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny_cfg, kit_home):
    env = {**os.environ, "KIT_HOME": str(kit_home), "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29517",
        "-m",
        "kit.cli",
        "train-fold",
        "--exp",
        "rsna_resnet",
        "--fold",
        "0",
        *TINY,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((kit_home / "runs" / "rsna_resnet" / "fold0" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs_run"] == 2
    assert sum(line.startswith("score ") for line in done.stdout.splitlines()) == 1  # only rank 0 reports


@pytest.mark.parametrize("name", ["mars_dual_unet", "mars_smp_unet"])
def test_mars_models_map_an_image_to_class_maps(name):
    from kernels.se import SqueezeExcite
    from kit.models.registry import create_model

    cfg = load_experiment(name)
    model = create_model(cfg["model"]["name"], 1, 5, **{k: v for k, v in cfg["model"].items() if k != "name"})
    assert any(isinstance(m, SqueezeExcite) for m in model.modules())
    with torch.no_grad():
        out = model(torch.randn(2, 1, 64, 128))
    assert out.shape == (2, 5, 64, 128) and torch.isfinite(out).all()
    if name == "mars_dual_unet":  # the ensemble returns log-probabilities (its members' probabilities averaged)
        assert torch.allclose(out.exp().sum(dim=1), torch.ones(2, 64, 128), atol=1e-4)
        assert (out <= 0).all()


def test_level_attention_head_leaves_no_unused_parameters():
    from kit.models.registry import create_model

    model = create_model("unet_classifier", 6, 75, decoder_channels=[16, 8, 8, 8, 8], level_attention={"levels": 5})
    model(torch.randn(2, 6, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("attention", [None, {"levels": 5}])
def test_heatmap_head_returns_level_maps_and_trains_every_parameter(attention):
    from kit.models.registry import create_model

    model = create_model(
        "unet_classifier", 6, 75, decoder_channels=[16, 8, 8, 8, 8], level_attention=attention, heatmaps=5
    )
    out = model(torch.randn(2, 6, 32, 32))
    assert out["logits"].shape == (2, 75) and out["heatmap"].shape == (2, 5, 32, 32)
    (out["logits"].sum() + out["heatmap"].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.slow
def test_heatmap_supervised_fold_learns_where_the_levels_are(tiny_cfg, kit_home):
    """Trained on train_label_coordinates.csv, the level heatmaps' peaks move towards the true level rows."""
    from kit.competitions import get_competition
    from kit.runtime.inference import build_model

    cfg = apply_overrides(
        load_experiment("rsna_unet"),
        TINY[:-1] + ["data.size=48", "data.slices=2", "trainer.batch_size=2", "trainer.epochs=20",
                     "trainer.early_stopping=99", "trainer.augment=false", "trainer.lr=0.003",
                     "model.level_attention=null", "model.decoder_channels=[32,16,16,16,16]"],
    )  # fmt: skip
    summary = train_fold(cfg, fold=0)
    assert np.isfinite(summary["score"])
    history = pd.read_csv(kit_home / "runs" / "rsna_unet" / "fold0" / "history.csv")
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]

    comp = get_competition("rsna")
    data_dir = comp.data_dir(None)
    training = comp.training(cfg, data_dir)
    dataset = training.dataset(training.ids("train")[:4], "train")
    model = build_model(cfg, training)
    saved = torch.load(kit_home / "runs" / "rsna_unet" / "fold0" / "model_last.pt", weights_only=False)
    errors = {}
    for name, state in (("untrained", model.state_dict()), ("trained", saved["model"])):
        model.load_state_dict(state)
        model.eval()
        distance = []
        for item in dataset:
            with torch.no_grad():
                heatmap = model(item["image"][None])["heatmap"][0]
            truth = item["target"]["heatmap"]
            for level in range(5):
                if float(truth[level].max()) == 0.0:  # an unlabelled level has no point to find
                    continue
                predicted_row = int(heatmap[level].argmax()) // heatmap.shape[-1]
                true_row = int(truth[level].argmax()) // truth.shape[-1]
                distance.append(abs(predicted_row - true_row))
        errors[name] = float(np.mean(distance))
    assert errors["trained"] < errors["untrained"] / 2, errors
    for bad, message in ((["model.heatmaps=0"], "needs a model with a heatmap head"),
                         (["loss.heatmap_weight=0", "model.level_attention=null"], "would train nothing"),
                         (["model.heatmaps=3"], r"positions \(5\) or every condition × level \(25\)")):  # fmt: skip
        with pytest.raises(KitError, match=message):
            train_fold(apply_overrides(load_experiment("rsna_unet"), TINY + bad), fold=0)
