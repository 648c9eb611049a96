"""Image profiles and the code dataset's coverage of Kaggle's Pythons (kit.kaggle.image, kit.kaggle.code)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kit.cli import main
from kit.errors import KitError
from kit.kaggle import code
from kit.kaggle.image import Profile, linked_stack, profile_path, read_profile, stand_in, to_install

# the session's wheel fixtures are built once, on one xdist worker (`--dist loadgroup`)
pytestmark = pytest.mark.xdist_group("wheels")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_shipped_old_profile_reads_and_names_its_python():
    profile = read_profile(profile_path("old"))
    assert profile.python == "3.11"
    assert profile.packages["scikit-learn"] == "1.2.2" and profile.packages["pydicom"] == "2.4.4"
    assert "Stands in for Kaggle" in profile_path("old").read_text().splitlines()[0]


def test_a_pip_list_freeze_is_a_profile_and_bad_lines_are_named(tmp_path):
    good = write(tmp_path / "kaggle.txt", "# python: 3.10\nNumPy==1.26.4\ntorch==2.5.1+cu121\nfoo @ file:///x\n")
    profile = read_profile(good)
    assert profile.python == "3.10" and profile.packages == {"numpy": "1.26.4", "torch": "2.5.1+cu121"}
    with pytest.raises(KitError, match=r"bad.txt, line 2: 'pandas>=2' is not name==version"):
        read_profile(write(tmp_path / "bad.txt", "numpy==1.26.4\npandas>=2\n"))
    with pytest.raises(KitError, match=r"line 1: 'one' is not a version of numpy"):
        read_profile(write(tmp_path / "v.txt", "numpy==one\n"))
    with pytest.raises(KitError, match="--image nope: no such profile"):
        profile_path("nope")


def test_profile_logic_on_a_small_package_set(tmp_path):
    """What the stand-in installs and what it links from this machine: torch's stack minus what the profile pins."""
    profile = Profile(tmp_path / "p.txt", {"numpy": "1.26.4", "torch": "2.14.1", "pandas": "2.2.2"})
    needs = {"numpy": "1.26.4", "pandas": "2.2.2", "torch": "2.14", "timm": "1.0"}
    assert to_install(profile, needs) == ["numpy==1.26.4", "pandas==2.2.2", "ipykernel", "packaging"]
    linked = linked_stack(profile)
    assert {"torch", "torchvision"} <= linked and "numpy" not in linked and "pandas" not in linked
    assert "filelock" in linked, "torch's own requirements come with it"


def test_a_profile_naming_a_version_that_does_not_exist_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    profile = read_profile(write(tmp_path / "typo.txt", "numpy==1.0.99999\n"))
    with pytest.raises(KitError, match=r"typo.txt: numpy==1.0.99999 does not exist on the package index"):
        stand_in(profile, {"numpy": "1.0"}, echo=lambda _: None)
    assert not any((tmp_path / "cache" / "kit" / "images").iterdir()), "a failed build leaves nothing to reuse"


def test_the_code_dataset_lists_binary_wheels_for_each_python(wheels, tmp_path):
    bundle = code.code_bundle(tmp_path / "code", "me", wheels=wheels)
    manifest = json.loads((bundle.root / "requirements.json").read_text())
    assert manifest["pythons"] == ["3.10", "3.11", "3.12"] and manifest["kit"].startswith("kaggle_kit-")
    assert manifest["packages"]["monai"]["bundled"] and not manifest["packages"]["torch"]["bundled"]
    assert manifest["packages"]["pydicom"] == {"minimum": "3.0", "bundled": True}, "pydicom 2 is replaced"
    assert manifest["packages"]["scikit-learn"]["minimum"] == "1.2.2", "the oldest rehearsed version"
    assert "onnxruntime" not in manifest["packages"] and "optuna" not in manifest["packages"]
    for package in ("pylibjpeg_libjpeg", "pylibjpeg_openjpeg", "pylibjpeg_rle"):
        for tag in ("cp310", "cp311", "cp312"):
            assert any(f.name.startswith(f"{package}-") and f"-{tag}-" in f.name for f in bundle.files), (package, tag)

    without = [w for w in wheels if not (w.name.startswith("pylibjpeg_rle") and "-cp310-" in w.name)]
    with pytest.raises(KitError, match="no pylibjpeg-rle wheel for CPython 3.10"):
        code.code_bundle(tmp_path / "short", "me", wheels=without)


@pytest.mark.parametrize("python", code.PYTHONS)
def test_the_kit_and_its_wheels_install_on_each_kaggle_python(wheels, tmp_path, python):
    """pip resolves the code dataset alone (no index) for that CPython on Kaggle's platform."""
    for wheel in wheels:
        shutil.copy2(wheel, tmp_path)
    names = sorted({code.wheel_tags(w)[0] for w in wheels})
    platforms = [arg for tag in code.PLATFORMS for arg in ("--platform", tag)]
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--find-links",
               str(tmp_path), "--only-binary=:all:", "--implementation", "cp", "--python-version", python, *platforms,
               "--target", str(tmp_path / "target"), *names]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1500:]
    assert "kaggle-kit-0.1.0" in result.stdout and "pylibjpeg-rle" in result.stdout


def test_bad_package_options_are_one_error_line(capsys):
    assert main(["rehearse", "--exp", "rsna_unet", "--pythons", "3.x"]) == 2
    assert capsys.readouterr().err.strip() == "error: --pythons 3.x: expected CPython versions such as 3.10,3.11,3.12"
    assert main(["rehearse", "--exp", "rsna_unet", "--pythons", "3.9,3.11"]) == 2
    assert capsys.readouterr().err.strip() == "error: --pythons 3.9,3.11: the kit runs on Python 3.10 or newer, not 3.9"
    assert main(["rehearse", "--exp", "rsna_unet", "--backend", "tensorrt"]) == 2
    assert capsys.readouterr().err.strip() == "error: --backend tensorrt: expected one of torch, onnxruntime"
