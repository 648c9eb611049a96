"""A run is what it was trained with: its config is written only once it replaces the fold, interrupted folds stay
out of merges, a resumed run repeats an uninterrupted one, and folds trained differently are never merged."""

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml

from kit import paths
from kit.config import apply_overrides, dump_config, load_experiment
from kit.errors import KitError
from kit.runtime import checkpoint
from kit.train import callbacks, runner
from kit.train.outputs import merge_oof, predict_test
from kit.train.run import Run
from kit.train.runner import train_fold
from tests.stack.test_stack import mark_trained

TINY = ["data.slices=2", "data.size=32", "data.folds=3", "trainer.epochs=2", "trainer.batch_size=4"]


@pytest.fixture
def tiny_cfg(kit_home, rsna_dir):
    return apply_overrides(load_experiment("rsna_resnet"), [f"data.dir={rsna_dir}", *TINY])


def fold_dir(kit_home, fold=0):
    return kit_home / "runs" / "rsna_resnet" / f"fold{fold}"


def test_a_failed_rerun_keeps_the_fold_and_its_config(tiny_cfg, kit_home, monkeypatch):
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=0)
    out = fold_dir(kit_home)
    before = yaml.safe_load((out / "config.yaml").read_text())
    best = (out / "model_best.pt").read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "predict", interrupted)  # Ctrl-C during the first validation of a re-run at size 48
    with pytest.raises(KeyboardInterrupt):
        train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1", "data.size=48"]), fold=0)
    assert yaml.safe_load((out / "config.yaml").read_text()) == before and before["data"]["size"] == 32
    assert (out / "model_best.pt").read_bytes() == best and (out / "summary.json").exists()


def test_interrupted_folds_stay_out_of_merges_and_tmp_files_are_cleaned(tiny_cfg, kit_home, capsys):
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=0)
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=1)
    (fold_dir(kit_home, 1) / "summary.json").unlink()  # as if killed before it finished
    _, _, merged = merge_oof(Run.open("rsna_resnet"))
    assert merged == 1 and "left out fold1: not finished" in capsys.readouterr().out
    orphan = fold_dir(kit_home, 1) / ".model_last.pt.abc123.tmp"
    orphan.write_bytes(b"half a checkpoint")
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=1, resume=True)
    assert not orphan.exists()


@pytest.mark.slow
def test_a_resumed_run_repeats_an_uninterrupted_one(tiny_cfg, kit_home, monkeypatch):
    cfg = apply_overrides(tiny_cfg, ["trainer.epochs=3", "model.dropout=0.5"])
    train_fold(cfg, fold=0)
    whole = pd.read_csv(fold_dir(kit_home) / "history.csv")
    weights = checkpoint.load(fold_dir(kit_home) / "model_last.pt")["model"]

    killed = apply_overrides(cfg, ["name=killed"])
    original = callbacks.plot_progress

    def kill_after_epoch_1(history, *args, **kwargs):
        original(history, *args, **kwargs)
        if len(history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "plot_progress", kill_after_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        train_fold(killed, fold=0)
    monkeypatch.setattr(callbacks, "plot_progress", original)
    train_fold(killed, fold=0, resume=True)
    out = kit_home / "runs" / "killed" / "fold0"
    resumed = pd.read_csv(out / "history.csv")
    columns = ["train_loss", "val_loss", "score"]
    pd.testing.assert_frame_equal(resumed[columns], whole[columns], rtol=1e-6)
    again = checkpoint.load(out / "model_last.pt")["model"]
    assert all(torch.allclose(again[k].float(), weights[k].float(), atol=1e-6) for k in weights)


def test_folds_trained_with_different_configs_are_not_merged(tiny_cfg, kit_home):
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1"]), fold=0)
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1", "trainer.lr=0.01"]), fold=1)
    with pytest.raises(KitError, match=r"trained with different configs \(trainer.lr 0.002 -> 0.01\)"):
        Run.open("rsna_resnet")


def test_predict_uses_the_folds_own_config(tiny_cfg, kit_home):
    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1", "data.size=48"]), fold=0)
    run = Run.open("rsna_resnet")  # the YAML says size 64 and no data.dir: the fold was trained at 48 on rsna_dir
    assert run.config["data"]["size"] == 48 and run.config["data"]["dir"] == tiny_cfg["data"]["dir"]
    path, n, _ = predict_test(run)
    assert n == 1 and path.exists()
    with pytest.raises(KitError, match=r"data.size=32: .* was trained with data.size=48"):
        Run.open("rsna_resnet", ["data.size=32"])


def test_tensorboard_events_and_the_runs_table(tiny_cfg, kit_home, capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from kit.cli import main

    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=2"]), fold=0)
    events = EventAccumulator(str(fold_dir(kit_home) / "tensorboard"))
    events.Reload()
    assert {"train/loss", "val/loss", "score", "lr", "samples_per_s"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("score")] == [0, 1]
    assert "progress" in events.Tags()["images"]

    train_fold(apply_overrides(tiny_cfg, ["trainer.epochs=1", "name=short"]), fold=1)
    merge_oof(Run.open("rsna_resnet", ["name=short"]))
    capsys.readouterr()
    assert main(["runs"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == {"rsna_resnet", "short"}
    assert "trainer.epochs=1" in lines["short"] and "1/3" in lines["short"]
    assert "data.size=32" in lines["rsna_resnet"] and lines["rsna_resnet"].split()[-4] == "-"  # no CV merged yet


def test_a_folder_kit_synth_wrote_makes_phantom_weights_wherever_it_is_named(kit_home, tmp_path):
    """data.dir=data/mars-synth (the phantom named as a folder) is phantom training as much as data.dir=null."""
    from kit.competitions import get_competition
    from kit.competitions.base import SYNTHETIC_MARKER

    phantom = get_competition("mars").synth(tmp_path / "mars-synth", train=12, test=2, seed=1)
    assert "never saw real images" in (phantom / SYNTHETIC_MARKER).read_text()
    real = tmp_path / "mars-real"
    shutil.copytree(phantom, real, ignore=shutil.ignore_patterns(SYNTHETIC_MARKER))
    for name, folder, expected in (("on_phantom", phantom, True), ("on_real", real, False)):
        cfg = apply_overrides(load_experiment("mars_smp_unet"), [f"data.dir={folder}", f"name={name}"])
        mark_trained(cfg, [0])
        assert Run.open(name).phantom is expected


def test_a_run_knows_each_fold_by_the_number_it_recorded(kit_home):
    """Folds in number order (fold10 after fold2), each found by its number; a fold trained before 2026-12-08
    also wrote its number into config.yaml, which is not a difference between folds."""
    cfg = {"name": "mine", "competition": "mars", "trainer": {"lr": 0.001}}
    for k, cfg_written in ((10, {**cfg, "fold": 10}), (2, cfg)):
        out = paths.fold_dir("mine", k)
        out.mkdir(parents=True)
        dump_config(cfg_written, out / "config.yaml")
        (out / "model_best.pt").write_bytes(b"")
        (out / "summary.json").write_text(json.dumps({"fold": k}))
    run = Run.open("mine")
    assert [(f.index, f.name) for f in run.folds] == [(2, "fold2"), (10, "fold10")]
    assert run.fold(10) / "model_best.pt" == kit_home / "runs" / "mine" / "fold10" / "model_best.pt"
    assert "fold" not in run.config
    with pytest.raises(KitError, match=r"fold3: no finished fold \(task train-fold exp=mine fold=3 first\)"):
        run.fold(3)
