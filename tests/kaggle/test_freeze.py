"""`task kaggle-freeze` against the local stand-in server: the pushed notebook's own cell, run here, makes the record
the server hands back; the kit keeps it as a profile that --image can name."""

import datetime
import json

import nbformat

from kit.cli import main
from kit.kaggle.freeze import freeze_notebook
from kit.kaggle.image import profile_path, read_profile


def record_of_this_machine(tmp_path, monkeypatch) -> bytes:
    """What the notebook writes on Kaggle, written here by executing its cell with KAGGLE_ROOT pointing at tmp."""
    (tmp_path / "kaggle" / "working").mkdir(parents=True)
    monkeypatch.setenv("KAGGLE_ROOT", str(tmp_path / "kaggle"))
    exec(freeze_notebook(datetime.date.today().isoformat()).cells[1].source, {})
    return (tmp_path / "kaggle" / "working" / "image.txt").read_bytes()


def test_kaggle_freeze_records_the_image_as_a_profile(standin, kit_home, tmp_path, monkeypatch, capsys):
    standin.outputs = {"image.txt": record_of_this_machine(tmp_path, monkeypatch)}
    assert main(["kaggle-freeze", "--competition", "rsna", "--name", "today"]) == 0, capsys.readouterr().err
    body = json.loads(next(r["body"] for r in standin.requests if r["path"].endswith("/SaveKernel")))
    assert body["enableInternet"] is False and body["competitionDataSources"][0].startswith("rsna-2024-lumbar")
    assert 'pip", "list", "--format=freeze"' in nbformat.reads(body["text"], as_version=4).cells[1].source
    profile = read_profile(profile_path("today"))
    assert profile_path("today") == kit_home / "images" / "today.txt"
    assert profile.python == "3.11" and profile.packages["numpy"] and profile.packages["torch"].startswith("2.14")
    assert "packages, Python 3.11" in capsys.readouterr().out


def test_a_record_that_is_not_a_profile_writes_nothing(standin, kit_home, capsys):
    standin.outputs = {"image.txt": b"# python: 3.11\nnot a pin\n"}
    assert main(["kaggle-freeze", "--name", "broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "line 2: 'not a pin' is not name==version" in err and "\n" not in err
    assert not (kit_home / "images" / "broken.txt").exists()
