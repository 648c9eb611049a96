"""Bad input through the `kit` command as a user runs it (a fresh process, the default KIT_HOME = the current folder,
relative paths): one `error:` line, exit status 2, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.competitions.mars import submission as mars_submission


def run_kit(args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    return subprocess.run(
        [sys.executable, "-m", "kit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def assert_one_line_error(result, *fragments):
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A user's folder: a Mars solution, submissions broken in several ways, a broken experiment YAML."""
    labels = np.random.default_rng(0).integers(0, 5, (3, 64, 128))
    mars_submission.write_submission(tmp_path / "solution.csv", labels)
    frame = pd.read_csv(tmp_path / "solution.csv")
    frame.drop(columns="17").to_csv(tmp_path / "short.csv", index=False)
    text = frame.astype(object)
    text.loc[2, "40"] = "sand"
    text.to_csv(tmp_path / "text.csv", index=False)
    (tmp_path / "broken.yaml").write_text("trainer: {epochs: [1, 2\n")
    (tmp_path / "folder.csv").mkdir()
    images = np.random.default_rng(1).random((12, 2, 64, 128)).astype(np.float32)
    images[:, 1] = np.random.default_rng(2).integers(0, 5, (12, 64, 128))
    for name, broken in (("nan", images.copy()), ("trunc", images)):
        (tmp_path / name).mkdir()
        if name == "nan":
            broken[3, 0, 5, 5] = np.nan
        np.savez(tmp_path / name / "mars_for_students.npz", training_set=broken, test_set=images[:2, 0])
    whole = (tmp_path / "trunc" / "mars_for_students.npz").read_bytes()
    (tmp_path / "trunc" / "mars_for_students.npz").write_bytes(whole[: len(whole) // 2])
    return tmp_path


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["score", "mars", "solution.csv", "short.csv"], ["submission: 8191 pixel columns"]),
        (["score", "mars", "solution.csv", "text.csv"], ["row 2, column '40'", "'sand'"]),
        (["validate", "mars", "folder.csv"], ["folder.csv: is a folder"]),
        (["score", "mars", "solution.csv", "missing.csv"], ["missing.csv: file not found"]),
        (["train-fold", "--exp", "rsna_unet", "trainer.epochs=abc"], ["trainer.epochs='abc'", "whole number"]),
        (["train-fold", "--exp", "rsna_unet", "--fold", "9"], ["--fold 9", "0 to 4"]),
        (["train-fold", "--exp", "rsna_unet", "trainer.batch_size=0"], ["trainer.batch_size=0"]),
        (["train-fold", "--exp", "rsna_unet", "data.slices=0"], ["data.slices=0"]),
        (["train-fold", "--exp", "rsna_unet", "trainer.precision=half"], ["trainer.precision='half'"]),
        (
            ["train-fold", "--exp", "bloodcells_mobilenetv3", "trainer.randaugment=strong"],
            ["trainer.randaugment='strong'"],
        ),
        (
            ["train-fold", "--exp", "bloodcells_mobilenetv3", "trainer.epochs=4", "trainer.warmup_epochs=4"],
            ["trainer.warmup_epochs=4 is not below trainer.epochs=4"],
        ),
        (["train-fold", "--exp", "rsna_unet", "trainer.epochs=[1"], ["not valid YAML"]),
        (["train-fold", "--exp", "broken.yaml"], ["broken.yaml: not valid YAML"]),
        (["train-fold", "--exp", "no_such_experiment"], ["unknown experiment 'no_such_experiment'"]),
        (["train-fold", "--exp", "rsna_unet", "trainer.nonsense=1"], ["unknown key 'trainer.nonsense'"]),
        (["folds", "mars", "--k", "1"], ["--k 1"]),
        (["download", "nosuchcomp"], ["unknown competition"]),
        (["validate", "rsna", "short.csv", "--sample", "short.csv"], ["sample: no 'row_id' column"]),
        (
            ["train-fold", "--exp", "mars_smp_unet", "model.encoder=resnet_18"],
            ["not a segmentation-models", "resnet18"],
        ),
        (["train-fold", "--exp", "mars_dual_unet", "data.dir=trunc"], ["mars_for_students.npz: not a readable .npz"]),
        (
            ["train-fold", "--exp", "mars_dual_unet", "data.dir=nan"],
            ["NaN or infinite pixels", "first [3]"],
        ),
    ],
)
def test_bad_input_is_one_error_line(workdir, kit_here, args, fragments):
    assert_one_line_error(kit_here(args, workdir), *fragments)


def test_the_kit_command_itself_refuses_in_one_line(workdir):
    """The same refusals come out of the installed entry point as exit status 2 and one `error:` line."""
    assert_one_line_error(run_kit(["train-fold", "--exp", "rsna_unet", "trainer.epochs=abc"], workdir), "whole number")


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, fragments",
    [
        (["loss.gamma=2.0"], ["loss.gamma applies to the focal loss only"]),
        (["model.heatmaps=5"], ["model.heatmaps=5 must equal model.level_attention.levels (25)"]),
    ],
)
def test_config_conflicts_are_one_error_line(workdir, kit_here, rsna_dir, overrides, fragments):
    result = kit_here(["train-fold", "--exp", "rsna_unet", f"data.dir={rsna_dir}", "data.folds=2", *overrides], workdir)
    assert_one_line_error(result, *fragments)


@pytest.mark.slow
def test_readme_tasks_with_the_default_kit_home(tmp_path, rsna_dir):
    """`task train-fold`, `task rehearse`, `task predict` in a user's folder with KIT_HOME unset: relative paths
    everywhere (the rehearsal once linked its inputs to a relative path and found no wheels). The two-stage
    experiment: its notebook runs stage 1 and then stage 2 offline (test_rehearsal_studies_hold_angled_axial_stacks:
    on test studies with angled axial stacks, one without Sagittal T2)."""
    import shutil

    task = shutil.which("task", path=str(Path(sys.executable).parent)) or shutil.which("task")
    if task is None:
        pytest.skip("go-task is not installed (pip install go-task-bin)")
    repo = Path(__file__).resolve().parents[1]
    user = tmp_path / "work"
    user.mkdir()
    shutil.copy(repo / "Taskfile.yml", user)
    env = {k: v for k, v in os.environ.items() if k != "KIT_HOME"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    overrides = ["--", f"data.dir={rsna_dir}", "data.folds=2", "trainer.epochs=1", "trainer.batch_size=2",
                 "localiser.trainer.epochs=1", "data.crop=32", "localiser.data.size=64"]  # fmt: skip

    def task_run(*args):
        result = subprocess.run([task, *args], cwd=user, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    assert "score" in task_run("train-fold", "fold=0", "exp=rsna_two_stage", *overrides)
    assert (user / "runs" / "rsna_two_stage" / "fold0" / "localiser" / "summary.json").exists()
    assert "rehearsal passed" in task_run("rehearse", "exp=rsna_two_stage")
    task_run("predict", "exp=rsna_two_stage")
    assert list((user / "submissions").rglob("rsna_two_stage.csv"))


def _break_rsna(copy: Path, how: str) -> None:
    import shutil

    study = sorted((copy / "train_images").iterdir())[0]
    series = sorted(study.iterdir())[0]
    if how == "missing series folder":
        shutil.rmtree(series)
    elif how == "truncated dicom":
        dicom = sorted(series.iterdir())[0]
        dicom.write_bytes(dicom.read_bytes()[:300])
    elif how == "repeated study_id":
        train = pd.read_csv(copy / "train.csv")
        pd.concat([train, train.iloc[:1]]).to_csv(copy / "train.csv", index=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how, fragments",
    [
        ("missing series folder", ["series folder not found"]),
        ("truncated dicom", ["unreadable DICOM"]),
        ("repeated study_id", ["train.csv: row 10 repeats study_id"]),
    ],
)
def test_broken_rsna_data_is_one_error_line(tmp_path, kit_here, rsna_dir, how, fragments):
    import shutil

    shutil.copytree(rsna_dir, tmp_path / "comp")
    _break_rsna(tmp_path / "comp", how)
    args = ["train-fold", "--exp", "rsna_resnet", "data.dir=comp", "data.folds=2", "data.size=32", "data.slices=2"]
    result = kit_here([*args, "trainer.epochs=1", "trainer.batch_size=2"], tmp_path)
    assert_one_line_error(result, *fragments)


@pytest.mark.parametrize(
    "batch, fragments", [(64, ["trainer.batch_size=64", "lower the batch size"]), (1, ["BatchNorm needs at least 2"])]
)
def test_batch_sizes_that_cannot_train_are_refused(tmp_path, kit_here, rsna_dir, batch, fragments):
    args = ["train-fold", "--exp", "rsna_resnet", f"data.dir={rsna_dir}", "data.folds=2", f"trainer.batch_size={batch}"]
    assert_one_line_error(kit_here(args, tmp_path), *fragments)


@pytest.mark.slow
def test_weights_of_another_model_and_an_unwritable_runs_folder(kit_here, tmp_path, rsna_dir):
    """A fold whose weights came from another encoder, given to --resume and to predict; `runs` that is a file."""
    args = ["--exp", "rsna_resnet", f"data.dir={rsna_dir}", "data.folds=2", "data.size=32", "data.slices=2"]
    tiny = ["trainer.epochs=1", "trainer.batch_size=2"]
    assert kit_here(["train-fold", *args, *tiny], tmp_path).returncode == 0
    fold = tmp_path / "runs" / "rsna_resnet" / "fold0"

    resumed = kit_here(["train-fold", *args, *tiny, "model.encoder=resnet34", "--resume", "--force"], tmp_path)
    assert_one_line_error(resumed, "model_last.pt: its weights do not fit", "missing")

    config = fold / "config.yaml"
    config.write_text(config.read_text().replace("encoder: resnet18", "encoder: resnet34"))
    assert_one_line_error(kit_here(["predict", *args], tmp_path), "fold0/model_best.pt: its weights do not fit")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "runs").write_text("not a folder")
    refused = kit_here(["train-fold", *args, *tiny], elsewhere)
    assert_one_line_error(refused, "runs/rsna_resnet/fold0", "Not a directory")
