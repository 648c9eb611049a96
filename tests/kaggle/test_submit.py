import base64

import numpy as np
import pytest

from kit.cli import main
from kit.competitions.mars import submission

from .conftest import KEY


@pytest.fixture
def mars_csv(tmp_path):
    labels = np.random.default_rng(0).integers(1, 5, (3, 64, 128))
    return submission.write_submission(tmp_path / "mars.csv", labels)


def test_csv_submission_reaches_the_api_and_reports_its_score(standin, mars_csv, capsys):
    assert main(["submit", "mars", str(mars_csv), "-m", "dual unet", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == "status COMPLETE  public score 0.61234  (run mars)"
    assert standin.uploads == {"token-1": mars_csv.read_bytes()}
    posts = [r for r in standin.requests if r["method"] == "POST"]
    assert [r["path"].rsplit("/", 1)[-1] for r in posts[:2]] == ["StartSubmissionUpload", "CreateSubmission"]
    assert b'"competitionName": "an2dl-mars-terrain-segmentation"' in posts[0]["body"].replace(b'":"', b'": "')
    assert b"dual unet" in posts[1]["body"]
    expected = "Basic " + base64.b64encode(f"tester:{KEY}".encode()).decode()
    assert all(r["headers"].get("Authorization") == expected for r in posts)
    put = next(r for r in standin.requests if r["method"] == "PUT")
    assert "Authorization" not in put["headers"]
    assert all(KEY.encode() not in r["body"] for r in standin.requests)


def test_transient_errors_are_retried(standin, mars_csv):
    standin.fail = {"competitions.CompetitionApiService/StartSubmissionUpload": 2, "PUT": 1}
    assert main(["submit", "mars", str(mars_csv), "--poll", "0"]) == 0
    starts = [r for r in standin.requests if r["path"].endswith("StartSubmissionUpload")]
    assert len(starts) == 3 and len(standin.uploads) == 1


def test_an_invalid_file_is_never_sent(standin, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,0\n0,1\n")
    assert main(["submit", "mars", str(bad)]) == 2
    assert "not submitted" in capsys.readouterr().err and standin.requests == []


def test_a_failed_upload_leaves_the_file_untouched(standin, mars_csv, capsys):
    before = mars_csv.read_bytes()
    standin.fail = {"PUT": 10}
    assert main(["submit", "mars", str(mars_csv)]) == 2
    assert "still failing after 5 attempts" in capsys.readouterr().err
    assert mars_csv.read_bytes() == before


def test_past_submissions_are_listed(standin, mars_csv, capsys):
    main(["submit", "mars", str(mars_csv), "-m", "first", "--poll", "0"])
    capsys.readouterr()
    assert main(["submissions", "mars"]) == 0
    assert "COMPLETE" in capsys.readouterr().out


def test_missing_credentials_say_where_to_put_them(monkeypatch, tmp_path, mars_csv, capsys):
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "empty"))
    assert main(["submit", "mars", str(mars_csv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "~/.kaggle/kaggle.json" in err and "KAGGLE_USERNAME" in err


def test_the_ledger_ties_a_submission_to_its_run_and_follows_kaggles_scores(standin, mars_csv, kit_home, capsys):
    import pandas as pd

    from kit import ledger

    ledger.record_written(kit_home / "runs" / "mars_dual_unet", mars_csv)  # as `kit predict` does
    renamed = mars_csv.with_name("final_try.csv")
    renamed.write_bytes(mars_csv.read_bytes())
    assert main(["submit", "mars", str(renamed), "-m", "first", "--poll", "0"]) == 0
    assert "(run mars_dual_unet)" in capsys.readouterr().out
    rows = pd.read_csv(kit_home / "submissions" / "ledger.csv")
    assert rows["run"].tolist() == ["mars_dual_unet"] and rows["sha256"].iloc[0] == ledger.sha256(mars_csv)
    assert rows["public_score"].iloc[0] == 0.61234
    standin.submissions[0].public_score = "0.65"  # Kaggle rescored it
    assert main(["submissions", "mars"]) == 0
    assert "updated 1 row(s)" in capsys.readouterr().out
    assert ledger.latest_public("mars_dual_unet") == 0.65


def test_without_a_sample_a_file_is_checked_against_the_downloaded_test_set(standin, mars_csv, kit_home, capsys):
    from kit.competitions import get_competition
    from kit.competitions.mars import synth

    comp = get_competition("mars")
    synth.generate(comp.downloaded_dir(), train=20, test=4, aliens=2, seed=1)  # as `kit download mars` would leave
    assert main(["validate", "mars", str(mars_csv)]) == 1  # 3 rows, the test set has 4
    assert "3 rows, expected 4" in capsys.readouterr().out
    assert main(["submit", "mars", str(mars_csv), "--poll", "0"]) == 2
    assert "not submitted; 3 rows, expected 4" in capsys.readouterr().err and standin.requests == []
