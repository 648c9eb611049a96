"""What the real-data probe found, each case with its right result or its one `error:` line, through `kit` as a user
runs it (the default KIT_HOME, the current folder): bad overrides before any work, a trained run whose YAML, config
or data differ from the command's, stale exports, resumed runs, tune studies and files written for teammates."""

import json
import os
import stat

import pytest
import torch
import yaml

from kit.cli import main
from kit.config import apply_overrides, load_experiment, read_yaml

TINY = ["trainer.epochs=1", "data.size=32", "data.folds=2", "trainer.batch_size=16"]


def one_error(capsys, args, *fragments) -> str:
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "override, fragments",
    [
        ("data.dir=", ["'data.dir=': no value"]),
        ("name=../../x", ["name='../../x'", "one folder under runs/"]),
        ("name=/abs/path", ["name='/abs/path'"]),
        ("loss.label_smoothing=2", ["loss.label_smoothing=2", "[0, 1)"]),
        ("trainer.seed=-1", ["trainer.seed=-1", ">= 0"]),
        ("model.head=foo", ["model.head='foo'"]),
        ("loss.class_weights=balancd", ["loss.class_weights='balancd'"]),
        ("loss.class_weights=[1, -2]", ["loss.class_weights=[1, -2]"]),
    ],
)
def test_bad_overrides_are_one_line_before_any_work(home, capsys, override, fragments):
    one_error(capsys, ["train-fold", "--exp", "pneumonia_resnet18", override], *fragments)
    assert not (home / "runs").exists() and not (home / "data").exists(), "nothing was written"


def test_numbers_read_as_numbers_in_overrides_and_yaml():
    cfg = apply_overrides(load_experiment("pneumonia_resnet18"), ["trainer.lr=1e-3", "loss.label_smoothing=1e-1"])
    assert cfg["trainer"]["lr"] == 0.001 and cfg["loss"]["label_smoothing"] == 0.1
    assert read_yaml("{low: 1e-4, high: 5E-2}") == {"low": 0.0001, "high": 0.05}
    assert read_yaml("epochs: 12") == {"epochs": 12} and read_yaml("v: 1.5") == {"v": 1.5}


def test_class_weights_as_a_list_are_applied_or_refused(home, capsys):
    one_error(capsys, ["train-fold", "--exp", "pneumonia_resnet18", "loss.class_weights=[1, 2, 3]", *TINY],
              "3 values for 2 classes")  # fmt: skip
    from kit.competitions import competition_of

    cfg = apply_overrides(load_experiment("pneumonia_resnet18"), ["loss.class_weights=[1.0, 4.0]"])
    comp = competition_of(cfg)
    loss = comp.training(cfg, comp.data_dir(None)).loss()
    assert loss.weight.tolist() == [1.0, 4.0]


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00binary"])
def test_submit_refuses_an_empty_or_binary_file_in_one_line(home, capsys, content):
    (home / "sub.csv").write_bytes(content)
    one_error(capsys, ["submit", "mars", "sub.csv"], "sub.csv: not a readable CSV")


@pytest.fixture
def trained(home, capsys):
    """A run of the user's own copy of an experiment YAML, trained on synthetic X-rays of their own (mine/)."""
    assert main(["synth", "pneumoniamnist", "--out", "mine", "--train", "60", "--test", "12"]) == 0
    assert main(["synth", "pneumoniamnist", "--out", "other", "--train", "60", "--test", "12", "--seed", "1"]) == 0
    cfg = load_experiment("pneumonia_resnet18")
    (home / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    for fold in (0, 1):
        assert main(["train-fold", "--exp", "mine.yaml", "--fold", str(fold), "data.dir=mine", *TINY]) == 0
    capsys.readouterr()
    return home / "runs" / "pneumonia_resnet18"


def test_a_changed_yaml_a_changed_key_or_other_data_are_one_line(trained, home, capsys):
    cfg = yaml.safe_load((home / "mine.yaml").read_text())
    cfg["dataset"]["classes"] = ["pneumonia", "normal"]  # would relabel every OOF row
    (home / "mine.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    one_error(capsys, ["oof", "--exp", "mine.yaml"], "mine.yaml changed since the run was trained",
              "dataset.classes ['normal', 'pneumonia'] -> ['pneumonia', 'normal']", "--force")  # fmt: skip
    capsys.readouterr()
    assert main(["oof", "--exp", "mine.yaml", "--force"]) == 0
    assert json.loads((trained / "cv.json").read_text())["data"]["dir"] == str((home / "mine").resolve())
    capsys.readouterr()
    assert main(["oof", "--exp", "mine.yaml", "--force", "data.dir=mine"]) == 0  # its own folder, named again
    assert "on its training data" in capsys.readouterr().out
    assert json.loads((trained / "cv.json").read_text())["data"]["trained_data"] is True

    one_error(capsys, ["oof", "--exp", "mine.yaml", "--force", "trainer.lr=0.5"],
              "trainer.lr=0.5", "trained with trainer.lr=0.002", "name=")  # fmt: skip
    one_error(capsys, ["oof", "--exp", "mine.yaml", "--force", "data.dir=other"],
              "data.dir=other", "is other data", "only predict takes other data")  # fmt: skip
    one_error(capsys, ["oof", "--exp", "mine.yaml", "--force", "data.dir="], "no value")

    capsys.readouterr()
    assert main(["predict", "--exp", "mine.yaml", "--force", "data.dir=other"]) == 0
    assert "data.dir given here; trained on" in capsys.readouterr().out
    scores = json.loads((trained / "test_scores.json").read_text())
    assert scores["data"]["dir"] == str((home / "other").resolve()) and scores["data"]["trained_data"] is False
    assert json.loads((trained / "submission.json").read_text())["data"]["trained_on"] == str((home / "mine").resolve())


def test_folds_trained_on_different_data_are_not_merged(trained, home, capsys):
    assert main(["train-fold", "--exp", "mine.yaml", "--fold", "1", "data.dir=other", *TINY]) == 0
    one_error(capsys, ["oof", "--exp", "mine.yaml"], "fold0 and", "trained with different configs", "data.dir")


def test_a_moved_data_folder_is_found_by_its_fingerprint(trained, home, capsys):
    os.rename(home / "mine", home / "moved")
    one_error(capsys, ["oof", "--exp", "mine.yaml"], "which is gone", "data.dir=")
    capsys.readouterr()
    assert main(["oof", "--exp", "mine.yaml", "data.dir=moved"]) == 0


def test_a_stale_onnx_export_is_refused(trained, home, capsys):
    one_error(capsys, ["export", "--exp", "mine.yaml", "--fold", "0", "--opset", "99"], "--opset 99", "17 to")
    assert main(["export", "--exp", "mine.yaml", "--fold", "0"]) == 0
    assert main(["predict", "--exp", "mine.yaml", "--backend", "onnxruntime"]) == 2  # fold 1 was never exported
    assert main(["export", "--exp", "mine.yaml", "--fold", "1"]) == 0
    assert json.loads((trained / "fold1" / "onnx_parity.json").read_text())["opset"] == 18
    assert main(["predict", "--exp", "mine.yaml", "--backend", "onnxruntime"]) == 0
    best = trained / "fold0" / "model_best.pt"
    saved = torch.load(best, weights_only=False)
    saved["model"] = {k: v + 0.01 if v.is_floating_point() else v for k, v in saved["model"].items()}
    torch.save(saved, best)  # as if the fold was retrained after its export
    one_error(capsys, ["predict", "--exp", "mine.yaml", "--backend", "onnxruntime"],
              "fold0/model.onnx: exported from other weights", "task export")  # fmt: skip


def test_resume_force_rewrites_the_config_and_an_interrupted_continuation_is_unfinished(trained, home, capsys,
                                                                                      monkeypatch):  # fmt: skip
    from kit.train import callbacks

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "plot_progress", killed)
    args = ["train-fold", "--exp", "mine.yaml", "--fold", "0", "--resume", "--force", "data.dir=mine", *TINY]
    assert main([*args, "trainer.epochs=3"]) == 130
    fold = trained / "fold0"
    assert not (fold / "summary.json").exists(), "an interrupted continuation leaves the fold unfinished"
    assert yaml.safe_load((fold / "config.yaml").read_text())["trainer"]["epochs"] == 3
    monkeypatch.undo()
    monkeypatch.chdir(home)
    assert main([*args, "trainer.epochs=3"]) == 0
    assert (fold / "summary.json").exists()


def test_written_files_honour_the_umask(trained):
    for name in ("config.yaml", "summary.json", "run.json", "oof.csv"):
        mode = stat.S_IMODE((trained / "fold0" / name).stat().st_mode)
        assert mode == 0o666 & ~_umask(), (name, oct(mode))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_bench_onnx_refuses_zero_repeats(capsys):
    from benchmarks.bench_onnx import main as bench_main

    assert bench_main(["--repeats", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --repeats 0: give at least 1"


def test_tune_refuses_ranges_outside_a_key_and_a_changed_search_on_resume(home, capsys):
    cfg = load_experiment("pneumonia_resnet18")
    cfg["search"] = {"loss.label_smoothing": {"low": 0.0, "high": 2.0}}
    (home / "wide.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    one_error(capsys, ["tune", "--exp", "wide.yaml", "--trials", "1", *TINY], "search.loss.label_smoothing",
              "the value 2.0 is outside")  # fmt: skip
    assert not (home / "runs").exists()

    cfg["search"] = {"trainer.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "loss.label_smoothing": {"choices": [0.0]}}
    (home / "wide.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    assert main(["synth", "pneumoniamnist", "--out", "mine", "--train", "60", "--test", "12"]) == 0
    assert main(["tune", "--exp", "wide.yaml", "--trials", "1", "data.dir=mine", *TINY]) == 0
    cfg["search"]["loss.label_smoothing"] = {"choices": [0.0, 0.1]}
    (home / "wide.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    one_error(capsys, ["tune", "--exp", "wide.yaml", "--trials", "2", *TINY], "study was started with another",
              "search.loss.label_smoothing.choices")  # fmt: skip
