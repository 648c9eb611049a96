"""The code dataset: the kit's wheel plus wheels of the packages the Kaggle image lacks, for an offline install.

The notebook installs every wheel with `pip install --no-index --no-deps`: the image's own torch, numpy, pandas…
stay as they are (the kit's pins are for fresh machines, not for Kaggle's image), and nothing is fetched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from kit.errors import KitError
from kit.kaggle.bundle import SCAN_BYTES, Bundle, assemble, dataset_metadata, secret_in

# Runtime packages of the kit that Kaggle's Python image (checked 2026-11) does not ship.
IMAGE_LACKS = (
    "monai",
    "segmentation-models-pytorch",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def pinned(names: tuple[str, ...]) -> list[str]:
    """name==version as installed here, so that Kaggle runs the versions the tests ran."""
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as exc:
            raise KitError(f"{name} is not installed here; install the kit first (pip install -e .)") from exc
    return pins


def pip(*args: str, what: str) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise KitError(f"{what} failed:\n{result.stderr.strip()[-2000:]}")


def source_files(root: Path) -> list[str]:
    """The checkout's files that git does not ignore (tracked or new); without git, every file outside build/."""
    if (root / ".git").exists():
        command = ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
        listed = subprocess.run(command, capture_output=True, check=True).stdout.decode()
        return [f for f in listed.split("\0") if f and (root / f).is_file()]
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "build" not in p.parts]


def build_wheels(dest: Path, packages: tuple[str, ...] = IMAGE_LACKS) -> list[Path]:
    """The kit's wheel and the listed packages' wheels (from the package index). The wheel is built from a copy of
    the checkout's non-ignored files, so no git-ignored file (and no stale build/ folder) can end up in it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in source_files(PROJECT_ROOT):
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, Path(scratch) / name)
        pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), scratch,
            what="building the kit's wheel")  # fmt: skip
    if packages:
        pip("download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), *pinned(packages),
            what="downloading dependency wheels")  # fmt: skip
    return sorted(dest.glob("*.whl"))


def wheel_secret(path: Path) -> str | None:
    """A credential packed inside a wheel (its members scanned like bundle files), or None."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                reason = secret_in(Path(member.filename), handle.read(SCAN_BYTES))
            if reason:
                return f"{member.filename}: {reason}"
    return None


def code_bundle(out: Path, owner: str, slug: str = "kaggle-kit-code", packages: tuple[str, ...] = IMAGE_LACKS,
                wheels: list[Path] | None = None) -> Bundle:  # fmt: skip
    """A dataset folder of wheels; `wheels` given skips the build (e.g. ones built a moment ago)."""
    with tempfile.TemporaryDirectory() as scratch:
        wheels = wheels if wheels is not None else build_wheels(Path(scratch), packages)
        if not any(w.name.startswith("kaggle_kit-") for w in wheels):
            raise KitError("the code dataset needs the kit's own wheel (kaggle_kit-*.whl)")
        refused = [f"{w.name} holds {reason}" for w in wheels if (reason := wheel_secret(w))]
        if refused:
            raise KitError("refusing to bundle " + "; ".join(refused))
        return assemble(out, {w.name: w for w in wheels}, dataset_metadata(owner, slug, "kaggle-kit code and wheels"))
