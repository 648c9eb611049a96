import io
import zipfile

import pytest

from kit.cli import main
from kit.competitions import get_competition
from kit.errors import KitError
from kit.kaggle import download


def small_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("train.csv", "study_id,spinal\n1,Normal/Mild\n" * 200)
        zipped.writestr("train_images/1/2/3.dcm", b"\0" * 4096)
    return buffer.getvalue()


def test_download_unzips_into_data_slug(standin, kit_home, capsys):
    slug = get_competition("rsna").slug
    standin.competition_files[slug] = small_zip()
    assert main(["download", "rsna"]) == 0
    out = kit_home / "data" / slug
    assert (out / "train.csv").read_text().startswith("study_id") and (out / "train_images/1/2/3.dcm").exists()
    assert not list((kit_home / "data").glob("*.zip*"))
    assert f"data.dir={out}" in capsys.readouterr().out


def test_an_interrupted_download_continues_with_a_range_request(standin, kit_home):
    slug = get_competition("rsna").slug
    data = small_zip()
    standin.competition_files[slug] = data
    (kit_home / "data").mkdir()
    (kit_home / "data" / f"{slug}.zip.part").write_bytes(data[:1000])  # what a killed download left
    download.download_competition(slug)
    ranged = [r for r in standin.requests if r["path"].startswith("/files/") and "Range" in r["headers"]]
    assert ranged and ranged[-1]["headers"]["Range"] == "bytes=1000-"
    assert (kit_home / "data" / slug / "train.csv").exists()


def test_refusals_and_a_full_disk_are_one_line(standin, kit_home, capsys, monkeypatch):
    slug = get_competition("rsna").slug
    standin.rules_not_accepted.add(slug)
    assert main(["download", "rsna"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "You must accept this competition's rules" in err[0] and "/rules" in err[0]
    standin.rules_not_accepted.clear()
    standin.competition_files[slug] = small_zip()
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: type("Usage", (), {"free": 10})())
    with pytest.raises(KitError, match="GB free"):
        download.download_competition(slug)
