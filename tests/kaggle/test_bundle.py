import json
import subprocess

import pytest

from kit.errors import KitError
from kit.kaggle.bundle import assemble, dataset_metadata, secret_reason, weights_bundle


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("kaggle.json", b"{}"),
        ("access_token", b"x"),
        (".env", b"A=1"),
        ("notes.txt", b'{"username": "me", "key": "0123456789abcdef0123456789abcdef"}'),
        ("run.sh", b"export KAGGLE_KEY=abcdefghijklmnop1234"),
        ("deploy.txt", b"-----BEGIN OPENSSH PRIVATE KEY-----\n..."),
        ("mine.yaml", b"kaggle:\n  username: me\n  key: 0123456789abcdef0123456789abcdef\n"),
        ("creds.py", b"CREDENTIALS = {'username': 'me', 'key': '0123456789ABCDEF0123456789abcdef'}\n"),
        ("creds2.py", b"key = '0123456789abcdef0123456789abcdef'\n"),
        ("token.txt", b"KGAT_3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6\n"),
    ],
)
def test_secrets_are_recognised(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert secret_reason(path) is not None


@pytest.mark.parametrize(
    "text",
    [
        "trainer:\n  lr: 0.002\n",
        '{"data": {"sha256": "%s", "files": 3}}' % ("ab" * 32),  # a run.json fingerprint: 64 hex digits
        "cache_key: 0123456789abcdef0123456789abcdef\n",  # another name that ends in key
        "weights_sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
    ],
)
def test_ordinary_files_pass(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert secret_reason(path) is None


def git_checkout(root, files: dict[str, str], untracked: dict[str, str]):
    for name, text in {**files, **untracked}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", *files], check=True)


def test_the_wheel_is_built_from_tracked_package_files_only(tmp_path, monkeypatch):
    from kit.kaggle import code

    git_checkout(
        tmp_path,
        {"pyproject.toml": "[project]\n", "README.md": "# kit\n", "kit/__init__.py": "", "kit/a.yaml": "x: 1\n",
         "tests/test_x.py": ""},
        {"kit/notes.yaml": "key: 0123456789abcdef0123456789abcdef\n", "kit/scratch.py": ""},
    )  # fmt: skip
    with pytest.raises(KitError, match=r"2 file\(s\) in the kit's packages are not tracked by git \(kit/notes.yaml, "
                       r"kit/scratch.py\)"):  # fmt: skip
        code.source_files(tmp_path)
    (tmp_path / "kit" / "notes.yaml").unlink()
    (tmp_path / "kit" / "scratch.py").unlink()
    assert code.source_files(tmp_path) == ["kit/__init__.py", "kit/a.yaml", "pyproject.toml", "README.md"]
    (tmp_path / "kit" / "settings.py").write_text("TOKEN = 'KGAT_3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6'\n")
    subprocess.run(["git", "-C", str(tmp_path), "add", "kit/settings.py"], check=True)
    monkeypatch.setattr(code, "PROJECT_ROOT", tmp_path)
    with pytest.raises(KitError, match=r"refusing to build the kit's wheel: kit/settings.py: its content matches"):
        code.build_kit_wheel(tmp_path / "wheels")
    assert not list((tmp_path / "wheels").glob("*.whl"))


def test_a_bundle_with_a_secret_writes_nothing(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"weights")
    (tmp_path / "kaggle.json").write_text('{"username": "u", "key": "k"}')
    out = tmp_path / "bundle"
    with pytest.raises(KitError, match="kaggle.json: its name"):
        assemble(out, {"model.pt": tmp_path / "model.pt", "k.json": tmp_path / "kaggle.json"}, {})
    assert not out.exists()


def test_git_ignored_files_are_refused(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("private/\n")
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "notes.txt").write_text("mine")
    (tmp_path / "public.txt").write_text("ok")
    with pytest.raises(KitError, match="git ignores it"):
        assemble(tmp_path / "b", {"n.txt": tmp_path / "private" / "notes.txt"}, {}, repo=tmp_path)
    bundle = assemble(tmp_path / "b", {"p.txt": tmp_path / "public.txt"}, {}, repo=tmp_path)
    assert [str(f) for f in bundle.files] == ["p.txt", "dataset-metadata.json"]


def test_weights_bundle_lists_checkpoints_configs_and_metadata(tmp_path):
    for fold in (0, 2):
        (tmp_path / "rsna_unet" / f"fold{fold}").mkdir(parents=True)
        (tmp_path / "rsna_unet" / f"fold{fold}" / "model_best.pt").write_bytes(b"\0" * 1000)
        (tmp_path / "rsna_unet" / f"fold{fold}" / "config.yaml").write_text("name: rsna_unet\n")
        (tmp_path / "rsna_unet" / f"fold{fold}" / "summary.json").write_text("{}")
    (tmp_path / "rsna_unet" / "fold1").mkdir()  # untrained: skipped
    (tmp_path / "rsna_unet" / "fold3").mkdir()  # interrupted (no summary.json): skipped
    (tmp_path / "rsna_unet" / "fold3" / "model_best.pt").write_bytes(b"\0" * 1000)
    bundle = weights_bundle(tmp_path / "rsna_unet", tmp_path / "out", owner="me")
    assert sorted(map(str, bundle.files)) == [
        "dataset-metadata.json", "fold0/config.yaml", "fold0/model_best.pt", "fold0/summary.json",
        "fold2/config.yaml", "fold2/model_best.pt", "fold2/summary.json",
    ]  # fmt: skip
    meta = json.loads((tmp_path / "out" / "dataset-metadata.json").read_text())
    assert meta["id"] == "me/rsna-unet-weights" and meta["licenses"] == [{"name": "CC0-1.0"}]
    assert "7 files" in bundle.listing()
    with pytest.raises(KitError, match="6 to 50 characters"):
        dataset_metadata("me", "x", "short")


def test_a_folds_earlier_stage_travels_with_it(tmp_path):
    fold = tmp_path / "rsna_two_stage" / "fold0"
    for folder in (fold, fold / "localiser"):
        folder.mkdir(parents=True)
        for name in ("model_best.pt", "summary.json", "model_last.pt", "history.csv"):
            (folder / name).write_text("x")
        (folder / "config.yaml").write_text("data:\n  dir: /home/me/spine\n")
    (fold / "localiser" / "offsets.json").write_text("{}")
    (fold / "tensorboard").mkdir()  # not a stage: no summary.json
    bundle = weights_bundle(tmp_path / "rsna_two_stage", tmp_path / "out", owner="me")
    assert sorted(map(str, bundle.files)) == [
        "dataset-metadata.json", "fold0/config.yaml", "fold0/localiser/config.yaml", "fold0/localiser/model_best.pt",
        "fold0/localiser/offsets.json", "fold0/localiser/summary.json", "fold0/model_best.pt", "fold0/summary.json",
    ]  # fmt: skip
    assert "/home/me" not in (tmp_path / "out" / "fold0" / "localiser" / "config.yaml").read_text()
