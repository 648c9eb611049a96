import json

import nbformat
import pandas as pd

from kit.kaggle.notebook import inference_notebook, kernel_metadata


def test_inference_notebook_is_valid_and_offline():
    notebook = inference_notebook("rsna_unet", "rsna-2024-lumbar-spine-degenerative-classification", "kit-code",
                                  "rsna-unet-weights", oof_file="oof.csv")  # fmt: skip
    nbformat.validate(notebook)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "--no-index" in source and "kit-code" in source and "rsna-unet-weights" in source
    assert 'WORK / "submission.csv"' in source
    for cell in notebook.cells:
        if cell.cell_type == "code":
            compile(cell.source, "<cell>", "exec")  # every cell is valid Python after formatting


def test_kernel_metadata_disables_internet_and_attaches_sources():
    meta = kernel_metadata(
        "me", "rsna-unet-infer", "rsna_unet inference", "rsna-comp", ["me/kit-code", "me/w"], gpu=True
    )
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["competition_sources"] == ["rsna-comp"] and meta["dataset_sources"] == ["me/kit-code", "me/w"]
    assert meta["id"] == "me/rsna-unet-infer" and meta["kernel_type"] == "notebook"


def test_notebook_predicts_a_simulated_kaggle_tree(tmp_path, kit_home, rsna_dir, monkeypatch):
    """Train a tiny fold, lay out /kaggle/input (competition + weights dataset) under a temporary root, and run the
    notebook's cells after the offline install: they must write a valid submission.csv for every test study."""
    from kit.competitions.rsna import layout
    from kit.config import apply_overrides, load_experiment
    from kit.kaggle.bundle import weights_bundle
    from kit.train.runner import train_fold

    (kit_home / "data").mkdir()
    (kit_home / "data" / "rsna-synth").symlink_to(rsna_dir)
    tiny = ["data.slices=2", "data.size=32", "data.folds=3", "trainer.epochs=1", "trainer.batch_size=4"]
    train_fold(apply_overrides(load_experiment("rsna_resnet"), tiny), fold=0)
    root = tmp_path / "kaggle"
    (root / "input").mkdir(parents=True)
    (root / "working").mkdir()
    (root / "input" / layout.SLUG).symlink_to(rsna_dir)
    weights_bundle(kit_home / "runs" / "rsna_resnet", root / "input" / "rsna-resnet-weights", owner="me")

    notebook = inference_notebook("rsna_resnet", layout.SLUG, "kit-code", "rsna-resnet-weights", oof_file="oof.csv")
    namespace = {"ROOT": root, "WEIGHTS": root / "input" / "rsna-resnet-weights", "WORK": root / "working"}
    exec("import json, os, shutil, subprocess, sys\nfrom pathlib import Path", namespace)  # the set-up cell's imports
    for cell in notebook.cells[2:]:
        exec(cell.source, namespace)
    submission = pd.read_csv(root / "working" / "submission.csv")
    timings = json.loads((root / "working" / "timings.json").read_text())
    assert timings["samples"] == 3 and timings["seconds"]["model"] > 0, "the time budget's record"
    assert len(submission) == 3 * 25 and list(submission.columns[:2]) == ["row_id", "normal_mild"]
    assert submission.iloc[:, 1:].notna().all().all()
