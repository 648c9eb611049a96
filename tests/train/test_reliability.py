"""Runs started together, runs killed and continued, a network that says no, Ctrl-C: as a user meets them, through the
`kit` command in a fresh folder (the default KIT_HOME), with nothing lost and nothing silent."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from kit.competitions import get_competition
from kit.data.fingerprint import fingerprint
from tests.test_cli_errors import assert_one_line_error, run_kit

TINY = ["--exp", "pneumonia_resnet18", "data.size=28", "data.folds=2", "trainer.batch_size=64", "trainer.epochs=3"]


def kit_process(args, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    return subprocess.Popen([sys.executable, "-m", "kit.cli", *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def test_first_use_is_made_once_by_runs_started_together(kit_home, monkeypatch):
    """Two threads (as two processes) asking for the synthetic data at once: one generates, the other waits."""
    comp = get_competition("pneumoniamnist")
    calls = []

    def slow_synth(path):
        calls.append(path)
        time.sleep(0.5)
        path.mkdir(parents=True)
        return path

    monkeypatch.setattr(comp, "synth", slow_synth)
    found = []
    threads = [threading.Thread(target=lambda: found.append(comp.default_data_dir())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and found == [comp.synth_dir()] * 2


@pytest.mark.parametrize("name", ["rsna", "pneumoniamnist"])
def test_synthetic_data_is_the_same_bytes_from_the_same_seed(tmp_path, name):
    """Regenerated data keeps its fingerprint, so runs trained on either copy still combine (RSNA's DICOM UIDs were
    random: every file's size changed)."""
    comp = get_competition(name)
    prints = [fingerprint(comp.synth(tmp_path / str(k), train=3, test=1, seed=5)) for k in range(2)]
    assert prints[0] == prints[1]
    assert fingerprint(comp.synth(tmp_path / "other", train=3, test=1, seed=6)) != prints[0]


@pytest.mark.slow
def test_two_folds_started_together_in_a_fresh_folder_share_one_dataset(tmp_path, kit_here):
    runs = [kit_process(["train-fold", *TINY, "--fold", str(fold)], tmp_path) for fold in (0, 1)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith(".")) == [
        "pneumoniamnist-synth"
    ]
    records = [json.loads((tmp_path / "runs/pneumonia_resnet18" / f"fold{k}/run.json").read_text()) for k in (0, 1)]
    assert records[0]["data"]["sha256"] == records[1]["data"]["sha256"]
    merged = kit_here(["oof", *TINY], tmp_path)
    assert merged.returncode == 0 and "2 fold(s) merged" in merged.stdout, merged.stderr


@pytest.mark.slow
def test_train_all_after_kill_9_keeps_finished_folds_and_continues_the_other(tmp_path, kit_here):
    run = kit_process(["train-all", *TINY], tmp_path)
    fold0, fold1 = (tmp_path / "runs/pneumonia_resnet18" / f"fold{k}" for k in (0, 1))
    while not (fold1 / "model_last.pt").exists() and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.communicate()
    assert (fold0 / "summary.json").exists() and not (fold1 / "summary.json").exists(), "killed after fold 1 began"
    kept = {name: (fold0 / name).read_bytes() for name in ("summary.json", "model_best.pt", "history.csv")}
    events = sorted((fold0 / "tensorboard").iterdir())

    again = kit_here(["train-all", *TINY], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "fold 0: finished earlier, kept as it is" in again.stdout and "resuming" in again.stdout
    assert {name: (fold0 / name).read_bytes() for name in kept} == kept, "a finished fold is never rewritten"
    assert sorted((fold0 / "tensorboard").iterdir()) == events
    history = pd.read_csv(fold1 / "history.csv")
    assert list(history["epoch"]) == [0, 1, 2], "no epoch repeated or lost"
    seconds = json.loads((fold1 / "summary.json").read_text())["seconds"]
    assert seconds >= history["seconds"].sum(), "the resumed fold counts the killed process's epochs too"

    restarted = kit_here(["train-all", "--restart", *TINY, "trainer.epochs=1"], tmp_path)
    assert restarted.returncode == 0 and "kept as it is" not in restarted.stdout, restarted.stderr
    assert len(list((fold0 / "tensorboard").iterdir())) == 1, "a retrained fold's events replace the earlier run's"
    assert len(pd.read_csv(fold0 / "history.csv")) == 1


def test_a_finished_fold_with_a_changed_config_is_refused_not_kept(tmp_path):
    from kit.train.resume import finished_summary

    fold = tmp_path / "fold0"
    fold.mkdir()
    (fold / "summary.json").write_text('{"auc": 0.9, "seconds": 12.0}')
    (fold / "model_best.pt").write_bytes(b"")
    (fold / "config.yaml").write_text("fold: 0\ntrainer:\n  lr: 0.001\n")
    assert finished_summary(fold, {"trainer": {"lr": 0.001}}, force=False) == {"auc": 0.9, "seconds": 12.0}
    with pytest.raises(Exception, match=r"trainer.lr \(0.001 -> 0.01\).*--restart retrains every fold"):
        finished_summary(fold, {"trainer": {"lr": 0.01}}, force=False)
    assert finished_summary(fold, {"trainer": {"lr": 0.01}}, force=True) is None, "--force: continued, not kept"
    (fold / "summary.json").unlink()
    assert finished_summary(fold, {"trainer": {"lr": 0.001}}, force=False) is None, "unfinished: resumed instead"


def test_hub_weights_behind_a_broken_proxy_are_one_line_in_seconds(tmp_path, monkeypatch):
    """huggingface_hub alone retried for about a minute, then (behind a proxy) printed a traceback."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # the discard port: refused at once
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    began = time.perf_counter()
    result = run_kit(
        ["train-fold", "--exp", "imagefolder_resnet18", "model.pretrained=hub"], tmp_path
    )  # a fresh HF_HOME
    assert_one_line_error(result, "model.pretrained=hub", "unreachable", "ConnectionRefusedError", "package:")
    assert time.perf_counter() - began < 30, "no retry loop (with one, this took 50 s and more)"
    assert not (tmp_path / "data").exists(), "refused before any data was generated"


def test_missing_encoder_weights_are_refused_before_stage_one_trains(kit_here, tmp_path):
    result = kit_here(["train-fold", "--exp", "rsna_two_stage", "model.encoder_weights=imagenet"], tmp_path)
    assert_one_line_error(result, "model.encoder_weights=imagenet: no such file", "never downloads")
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_synth_interrupted_says_so_and_what_it_writes_follows_the_umask(tmp_path):
    umask = 0o027

    def as_a_terminal_starts_it():  # Ctrl-C reaches it even where this test runs in the background (SIGINT ignored)
        os.umask(umask)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    run = kit_process(["synth", "rsna", "--train", "6", "--test", "1"], tmp_path, preexec_fn=as_a_terminal_starts_it)
    while not any(tmp_path.glob("data/.rsna-synth*")) and run.poll() is None:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130 and "nothing written" in err and "--resume" not in err, err
    assert not (tmp_path / "data" / "rsna-synth").exists()
    assert not [p for p in (tmp_path / "data").iterdir() if p.suffix != ".lock"], "no half-written folder left"

    done = subprocess.run([sys.executable, "-m", "kit.cli", "synth", "rsna", "--train", "2", "--test", "1"],
                          cwd=tmp_path, capture_output=True, preexec_fn=lambda: os.umask(umask))  # fmt: skip
    assert done.returncode == 0, done.stderr
    folders = [tmp_path / "data/rsna-synth", *(tmp_path / "data/rsna-synth").rglob("*/")]
    assert {oct(p.stat().st_mode & 0o777) for p in folders if p.is_dir()} == {oct(0o777 & ~umask)}


def test_two_submissions_recorded_at_once_both_stay_in_the_ledger(tmp_path, kit_home, monkeypatch):
    """The ledger is read, changed and written back: two `kit submit` at once lost a row without the lock."""
    from types import SimpleNamespace

    from kit import ledger

    slow_load = ledger.load

    def load():
        frame = slow_load()
        time.sleep(0.3)  # widen the read-to-write window
        return frame

    monkeypatch.setattr(ledger, "load", load)
    files = []
    for ref in (1, 2):
        files.append(tmp_path / f"sub{ref}.csv")
        files[-1].write_text(f"id,label\n{ref},0\n")
    status = SimpleNamespace(name="COMPLETE")
    threads = [
        threading.Thread(target=ledger.record_submission,
                         args=("comp", file, "m", SimpleNamespace(ref=ref, status=status, public_score="0.5")))
        for ref, file in zip((1, 2), files, strict=True)
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(slow_load()["ref"]) == [1, 2]
