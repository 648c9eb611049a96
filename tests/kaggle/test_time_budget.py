"""The rehearsal's time budget: each stage's own seconds (inner stages subtracted from the outer), per test sample,
extrapolated to the hidden test set against the competition's limit."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from kit.kaggle.rehearse import time_budget
from kit.runtime import clock


def test_stages_count_their_own_seconds_only(monkeypatch):
    ticks = iter([0.0, 1.0, 3.0, 4.0, 10.0, 10.0, 12.0, 13.0])  # stage 1 [0, 10] holds decode [1, 3] and [4, 10]
    monkeypatch.setattr(clock.time, "perf_counter", lambda: next(ticks))
    clock.reset()
    with clock.stage("stage 1"):  # 0
        with clock.stage("decode"):  # 1 .. 3
            pass
        with clock.stage("decode"):  # 4 .. 10
            pass
    with clock.stage("stage 2"):  # 12 .. 13
        pass
    assert clock.seconds() == {"decode": 8.0, "stage 1": 2.0, "stage 2": 1.0}  # by hand: 10 - 2 - 6 = 2


def _timings(tmp_path, total: float, samples: int = 2) -> str:
    path = tmp_path / "timings.json"
    path.write_text(json.dumps({"samples": samples, "folds": 1, "total": total,
                                "seconds": {"decode": total * 0.5, "stage 1": total * 0.2, "crops": total * 0.1,
                                            "stage 2": total * 0.2}}))  # fmt: skip
    return path


def test_the_budget_extrapolates_per_sample_and_fails_over_the_limit(tmp_path):
    lines = []
    # 60 s set-up (the notebook's 100 s minus 40 s of prediction) + 20 s per study × 700 studies = 14,060 s = 3.9 h
    assert time_budget(_timings(tmp_path, 40.0), "rsna", 100.0, None, lines.append) == []
    assert "  decode        10.00 s per test sample" in lines
    assert lines[-1] == "time budget: 60 s set-up + 20.00 s × 700 test samples = 3.91 h on this machine, limit 9 h"
    lines.clear()
    # 50 s per study × 700 = 35,000 s + 60 s = 9.74 h: over Kaggle's 9 hours
    problems = time_budget(_timings(tmp_path, 100.0), "rsna", 160.0, None, lines.append)
    assert problems == ["the notebook would run 9.7 h on 700 test samples, over the 9 h limit"]
    assert time_budget(_timings(tmp_path, 100.0), "rsna", 160.0, 100, lines.append) == [], "a smaller hidden set"


def test_no_timings_is_a_problem_named(tmp_path):
    assert time_budget(tmp_path / "timings.json", "rsna", 10.0, None) == [
        "timings.json was not written (the predict cell records its stages' seconds there)"
    ]


@pytest.mark.parametrize("competition", ["pneumoniamnist", "mars"])
def test_a_competition_without_a_limit_reports_and_never_fails(tmp_path, competition):
    lines = []
    assert time_budget(_timings(tmp_path, 1e6), competition, 2e6, None, lines.append) == []
    assert lines[-1].endswith("h on this machine")


REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "rsna-2024-lumbar"


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/rsna-2024-lumbar is absent")
def test_the_rehearsal_reads_the_given_input_as_the_competitions(tmp_path):
    """--input: the real folder is /kaggle/input/<slug>/ and its one public test study the 25 rows expected."""
    from kit.competitions.rsna.layout import SLUG
    from kit.kaggle.rehearse import simulated_tree

    code, weights = tmp_path / "code", tmp_path / "weights"
    code.mkdir()
    weights.mkdir()
    (weights / "dataset-metadata.json").write_text(json.dumps({"id": "me/rsna-weights", "title": "w"}))
    package = SimpleNamespace(code=code, weights=weights)
    expected = simulated_tree(tmp_path / "kaggle", package, "rsna", 8, 3, 11, given=REAL)
    assert len(expected) == 25 and all(r.startswith("44036939_") for r in expected)
    assert (tmp_path / "kaggle" / "input" / SLUG).resolve() == REAL.resolve()
    assert (tmp_path / "kaggle" / "input" / "rsna-weights").resolve() == weights.resolve()


def test_an_input_that_is_no_folder_is_one_line(tmp_path, capsys):
    from kit.cli import main

    assert main(["rehearse", "--exp", "rsna_two_stage", "--input", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --input ") and "no such folder" in err and err.count("\n") == 1
