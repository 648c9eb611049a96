"""`kit compare`: fold figures side by side from the runs' own files, one plot, one-line errors."""

import json

import pandas as pd
import pytest

from kit.errors import KitError
from kit.report.compare import compare
from tests.test_cli_errors import assert_one_line_error


def fake_run(root, name, metric, values, cv=None):
    for fold, value in enumerate(values):
        folder = root / "runs" / name / f"fold{fold}"
        folder.mkdir(parents=True)
        summary = {"fold": fold, "metric": metric, metric: value, f"prior_baseline_{metric}": 0.1}
        (folder / "summary.json").write_text(json.dumps(summary))
        pd.DataFrame({"epoch": [0, 1], "seconds": [30.0, 30.0]}).to_csv(folder / "history.csv", index=False)
    if cv is not None:
        (root / "runs" / name / "cv.json").write_text(json.dumps({"metric": metric, metric: cv}))


def test_compare_reads_each_run_s_folds_and_cv(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    fake_run(tmp_path, "scratch", "accuracy", [0.40, 0.50, 0.60], cv=0.51)
    fake_run(tmp_path, "transfer", "accuracy", [0.70, 0.74])
    frame, out = compare(["scratch", "transfer"])
    scratch, transfer = frame.set_index("run").loc["scratch"], frame.set_index("run").loc["transfer"]
    assert scratch["folds"] == 3 and scratch["mean"] == pytest.approx(0.5) and scratch["cv"] == 0.51
    assert scratch["sd"] == pytest.approx(((0.01 + 0 + 0.01) / 3) ** 0.5) and scratch["minutes"] == 3.0
    assert transfer["mean"] == pytest.approx(0.72) and pd.isna(transfer["cv"])
    assert out.name == "compare-scratch-transfer.png" and out.stat().st_size > 5000

    fake_run(tmp_path, "segmenter", "miou", [0.5])
    with pytest.raises(KitError, match="different metrics"):
        compare(["scratch", "segmenter"])


def test_compare_errors_are_one_line(kit_here, tmp_path):
    fake_run(tmp_path, "scratch", "accuracy", [0.4])
    assert_one_line_error(kit_here(["compare", "scratch", "missing"], tmp_path), "runs/missing: no finished fold")
    assert_one_line_error(kit_here(["compare", "scratch"], tmp_path), "two or more")
