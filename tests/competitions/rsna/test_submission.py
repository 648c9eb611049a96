import numpy as np
import pandas as pd
import pytest

from kit.cli import main
from kit.competitions.rsna.layout import TARGETS
from kit.competitions.rsna.submission import (
    SubmissionError,
    row_ids,
    submission_frame,
    validate_submission,
    write_submission,
)


@pytest.fixture
def valid():
    rng = np.random.default_rng(0)
    return submission_frame([111, 222], rng.uniform(0, 5, size=(2, 25, 3)))


def test_frame_layout_and_normalisation(valid):
    assert list(valid.columns) == ["row_id", "normal_mild", "moderate", "severe"]
    assert valid["row_id"].tolist() == row_ids([111, 222])
    assert valid["row_id"].iloc[25 + 7] == f"222_{TARGETS[7]}"
    np.testing.assert_allclose(valid[["normal_mild", "moderate", "severe"]].sum(axis=1), 1.0, atol=1e-12)
    assert validate_submission(valid) == []


def test_all_zero_row_becomes_uniform():
    probs = np.zeros((1, 25, 3))
    frame = submission_frame([5], probs)
    np.testing.assert_allclose(frame[["normal_mild", "moderate", "severe"]].to_numpy(), 1 / 3)


def break_frame(frame, how):
    frame = frame.copy()
    if how == "renamed column":
        return frame.rename(columns={"moderate": "Moderate"})
    if how == "missing column":
        return frame.drop(columns="severe")
    if how == "duplicate row":
        return pd.concat([frame, frame.iloc[:1]], ignore_index=True)
    if how == "missing row":
        return frame.iloc[1:]
    if how == "nan":
        frame.loc[3, "severe"] = np.nan
    if how == "negative":
        frame.loc[3, "severe"] = -0.2
    if how == "inf":
        frame.loc[3, "moderate"] = np.inf
    if how == "not summing to 1":
        frame.loc[3, "normal_mild"] += 0.3
    if how == "malformed row id":
        frame.loc[3, "row_id"] = "111_spinal_canal_stenosis_l9_l9"
    if how == "leading zero":
        frame.loc[3, "row_id"] = "0" + frame.loc[3, "row_id"]
    if how == "booleans":
        frame = frame.assign(normal_mild=True, moderate=False, severe=False)
        csv = frame.to_csv(index=False)  # as read back from a user's file: pandas parses True/False as booleans
        frame = pd.read_csv(pd.io.common.StringIO(csv))
    return frame


PROBLEMS = {
    "renamed column": "unexpected Moderate",
    "missing column": "missing severe",
    "duplicate row": "duplicate row_id",
    "missing row": "without exactly 25 rows",
    "nan": "NaN",
    "negative": "negative",
    "inf": "infinite",
    "not summing to 1": "do not sum to 1",
    "malformed row id": "malformed row_id",
    "leading zero": "study id has a leading zero",
    "booleans": "normal_mild, moderate, severe hold True/False",
}


@pytest.mark.parametrize("how", list(PROBLEMS))
def test_validator_names_each_problem(valid, how):
    problems = validate_submission(break_frame(valid, how))
    assert any(PROBLEMS[how] in p for p in problems), problems


def test_validator_against_sample(valid):
    expected = row_ids([111, 333])
    problems = validate_submission(valid, expected)
    assert any("25 missing row_id" in p for p in problems)
    assert any("25 unexpected row_id" in p for p in problems)


def test_invalid_frame_never_replaces_existing_file(tmp_path, valid):
    path = tmp_path / "sub.csv"
    write_submission(path, valid)
    before = path.read_bytes()
    with pytest.raises(SubmissionError, match="NaN"):
        write_submission(path, break_frame(valid, "nan"))
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_cli_validate_exit_codes(tmp_path, valid, capsys):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    valid.to_csv(good, index=False)
    break_frame(valid, "negative").to_csv(bad, index=False)
    assert main(["validate", "rsna", str(good)]) == 0
    assert main(["validate", "rsna", str(bad)]) == 1
    assert "negative" in capsys.readouterr().out
