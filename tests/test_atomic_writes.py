"""Atomic writes as a user meets them: `kit synth` cut short keeps the old data; files follow the umask."""

import pytest

import kit.io
from kit.cli import main
from kit.competitions import get_competition
from kit.io import atomic_folder, write_text_atomic


def test_an_interrupted_synth_leaves_the_old_data_and_no_debris(tmp_path, monkeypatch, capsys):
    out = tmp_path / "chest"
    assert main(["synth", "chestxray14", "--out", str(out), "--train", "12", "--test", "4"]) == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["synth", "chestxray14", "--out", str(out), "--train", "12", "--test", "4"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err

    comp = get_competition("chestxray14")
    real_generate = type(comp).generate

    def cut_short(self, staging, *args, **kwargs):
        real_generate(self, staging, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(comp), "generate", cut_short)
    with pytest.raises(KeyboardInterrupt):
        comp.synth(out, train=20, test=4, seed=3, force=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chest"], "no staging folder is left behind"

    monkeypatch.setattr(type(comp), "generate", real_generate)
    comp.synth(out, train=20, test=4, seed=3, force=True)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chest"]


def test_files_and_folders_follow_the_umask(tmp_path, monkeypatch):
    monkeypatch.setattr(kit.io, "UMASK", 0o027)  # read by the kit once, at import
    path = write_text_atomic(tmp_path / "a.txt", "x")
    with atomic_folder(tmp_path / "f") as staging:
        (staging / "b").write_text("y")
    assert oct(path.stat().st_mode & 0o777) == oct(0o640), "mkstemp alone makes 0600"
    assert oct((tmp_path / "f").stat().st_mode & 0o777) == oct(0o750), "mkdtemp alone makes 0700"
