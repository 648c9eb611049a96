import numpy as np
import pandas as pd
import pytest

from kit.cli import main
from kit.competitions.mars import metric, submission
from kit.competitions.mars.layout import PIXELS


def test_mean_iou_follows_keras_ignore_class_semantics():
    true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([4, 1, 1, 1, 2, 3, 3, 3])
    parts = metric.mean_iou(true, pred)
    # background-true pixels dropped; class 1: tp 2, fp 0, fn 0; class 2: tp 1, fn 1; class 3: tp 2, fp 1
    assert parts["iou_soil"] == 1.0 and parts["iou_bedrock"] == 0.5 and parts["iou_sand"] == pytest.approx(2 / 3)
    assert np.isnan(parts["iou_big_rock"]) and np.isnan(parts["iou_background"])
    assert parts["score"] == pytest.approx((1 + 0.5 + 2 / 3) / 3)


def test_a_background_prediction_counts_as_a_class_with_iou_zero():
    true = np.array([1, 1, 2, 2])
    parts = metric.mean_iou(true, np.array([1, 0, 2, 2]))
    assert parts["iou_background"] == 0.0
    assert parts["score"] == pytest.approx((0 + 0.5 + 1) / 3)


def test_prediction_skips_background_by_default():
    probs = np.zeros((1, 5, 2, 2))
    probs[0, 0], probs[0, 3] = 0.6, 0.3
    assert (metric.predict_labels(probs) == 3).all()
    assert (metric.predict_labels(probs, skip_background=False) == 0).all()


@pytest.mark.parametrize("n", [1, 7])
def test_fast_writer_is_byte_identical_to_pandas(n, tmp_path):
    labels = np.random.default_rng(n).integers(0, 5, (n, 64, 128))
    path = submission.write_submission(tmp_path / "sub.csv", labels)
    assert path.read_bytes() == submission.pandas_csv(labels)
    frame = pd.read_csv(path)
    assert list(frame.columns[:3]) == ["id", "0", "1"] and frame.shape == (n, PIXELS + 1)
    assert np.array_equal(submission.frame_labels(frame), labels)


def test_validation_lists_every_problem():
    labels = np.random.default_rng(0).integers(0, 5, (3, 64, 128))
    good = pd.read_csv(pd.io.common.StringIO(submission.csv_bytes(labels).decode()))
    assert submission.validate_submission(good, expected_rows=3) == []
    bad = good.copy()
    bad.loc[1, "5"] = np.nan
    bad.loc[2, "6"] = 9
    bad["id"] = [0, 2, 2]
    problems = submission.validate_submission(bad, expected_rows=4)
    assert any("NaN" in p for p in problems) and any("outside" in p for p in problems)
    assert any("repeated ids [2]" in p for p in problems) and any("3 rows, expected 4" in p for p in problems)
    assert "8191 pixel columns" in submission.validate_submission(good.drop(columns="8191"))[0]
    assert submission.validate_submission(good.iloc[:0]) == ["no rows: a submission needs one row per test image"]
    shuffled = good.iloc[[2, 0, 1]]
    assert submission.validate_submission(shuffled, expected_rows=3) == []
    assert submission.order_warnings(shuffled) and not submission.order_warnings(good)
    text = good.astype(object)
    text.loc[1, "77"] = "rock"
    assert submission.validate_submission(text) == ["row 1, column '77': 'rock' is not a class label"]
    flags = good.assign(**{"3": True})
    flags = pd.read_csv(pd.io.common.StringIO(flags.to_csv(index=False)))
    assert submission.validate_submission(flags) == ["column(s) 3 hold True/False; give labels 0–4"]


def test_score_aligns_rows_by_id_as_kaggle_does(tmp_path, capsys):
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 5, (5, 64, 128))
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.integers(1, 5, truth.shape))
    submission.write_submission(tmp_path / "solution.csv", truth)
    frame = pd.read_csv(pd.io.common.StringIO(submission.csv_bytes(pred).decode()))
    frame.iloc[[3, 1, 4, 0, 2]].to_csv(tmp_path / "shuffled.csv", index=False)
    assert main(["score", "mars", str(tmp_path / "solution.csv"), str(tmp_path / "shuffled.csv")]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"score {metric.mean_iou(truth, pred)['score']:.6f}"
    assert main(["validate", "mars", str(tmp_path / "shuffled.csv")]) == 0
    assert "warning: rows are not in id order" in capsys.readouterr().out


def test_score_and_validate_from_the_command_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 5, (4, 64, 128))
    pred = np.where(rng.random(truth.shape) < 0.8, truth, rng.integers(1, 5, truth.shape))
    submission.write_submission(tmp_path / "solution.csv", truth)
    submission.write_submission(tmp_path / "sub.csv", pred)
    main(["score", "mars", str(tmp_path / "solution.csv"), str(tmp_path / "sub.csv")])
    out = capsys.readouterr().out
    expected = metric.mean_iou(truth, pred)["score"]
    assert out.strip().splitlines()[-1] == f"score {expected:.6f}" and "iou_big_rock" in out
    main(["validate", "mars", str(tmp_path / "sub.csv")])
    pd.read_csv(tmp_path / "sub.csv").drop(columns="100").to_csv(tmp_path / "short.csv", index=False)
    assert main(["validate", "mars", str(tmp_path / "short.csv")]) == 1
    assert "pixel columns" in capsys.readouterr().out
    assert main(["score", "mars", str(tmp_path / "solution.csv"), str(tmp_path / "short.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: submission: 8191 pixel columns")
