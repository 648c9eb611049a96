"""The code dataset: the kit's wheel, wheels of the packages Kaggle's image may lack (binary ones for every CPython
the image may run), and requirements.json, which the notebook's first cell reads to decide, package by package,
whether to keep the image's version or install the dataset's. The image's torch, numpy, pandas… are never replaced.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from kit.errors import KitError
from kit.kaggle.bundle import SCAN_BYTES, Bundle, assemble, dataset_metadata, secret_in, secret_reason
from kit.kaggle.image import profile_path, read_profile

# Runtime packages of the kit that Kaggle's Python image (checked 2026-11) does not ship.
IMAGE_LACKS = (
    "monai",
    "segmentation-models-pytorch",
    "pylibjpeg",
    "pylibjpeg-libjpeg",
    "pylibjpeg-openjpeg",
    "pylibjpeg-rle",
)
# Also carried, for an image that lacks them or has one too old (pydicom 2 has no pydicom.pixels): pure Python.
MAY_LACK = ("pydicom", "iterative-stratification", "imagehash")
BUNDLED = IMAGE_LACKS + MAY_LACK
BACKEND_PACKAGES = {"torch": (), "onnxruntime": ("onnxruntime",)}
PYTHONS = ("3.10", "3.11", "3.12")
# Kaggle's image runs Ubuntu 22.04 (glibc 2.35) on x86_64; pip matches --platform tags exactly, so list them all.
PLATFORMS = ("manylinux2014_x86_64", *(f"manylinux_2_{minor}_x86_64" for minor in (17, 24, 27, 28, 31, 34, 35)))
# The kit's dependencies that only this machine's commands need (building, pushing, exporting, notebooks, tasks,
# `task explain` and `task tune`).
NOT_AT_RUN_TIME = {"kaggle", "go-task-bin", "setuptools", "nbformat", "nbclient", "ipykernel", "onnx", "onnxscript",
                   "six", "triton", "grad-cam", "optuna"}  # fmt: skip
MANIFEST = "requirements.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError as exc:
        raise KitError(f"{name} is not installed here; install the kit first (pip install -e .)") from exc


def lower_bounds() -> dict[str, str]:
    """The kit's runtime dependencies and the lowest version pyproject.toml allows (or "0")."""
    bounds = {}
    for line in metadata.requires("kaggle-kit") or []:
        requirement = Requirement(line)
        if requirement.marker and "extra" in str(requirement.marker):
            continue
        floors = [s.version for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        bounds[canonicalize_name(requirement.name)] = floors[0] if floors else "0"
    return bounds


def runtime_needs(backend: str = "torch") -> dict[str, str]:
    """What `kit predict` needs on Kaggle, each with its minimum: the oldest version rehearsed (the `old` image
    profile) where that profile names it, else pyproject.toml's lower bound."""
    if backend not in BACKEND_PACKAGES:
        raise KitError(f"--backend {backend}: expected one of {', '.join(BACKEND_PACKAGES)}")
    oldest = read_profile(profile_path("old")).packages
    optional = {canonicalize_name(n) for names in BACKEND_PACKAGES.values() for n in names}
    wanted = {canonicalize_name(n) for n in BACKEND_PACKAGES[backend]}
    needs = {}
    for name, bound in lower_bounds().items():
        if name in NOT_AT_RUN_TIME or (name in optional and name not in wanted):
            continue
        needs[name] = oldest.get(name, bound) if name not in BUNDLED else bound
    return needs


def pip(*args: str, what: str) -> str:
    result = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        missing = re.search(r"No matching distribution found for (\S+)", result.stderr)
        if missing:
            raise KitError(f"{what}: no wheel of {missing.group(1)} on the package index")
        raise KitError(f"{what} failed:\n{result.stderr.strip()[-2000:]}")
    return result.stdout


PACKAGED = ("kit/", "kernels/")  # what the wheel is built from: the packages, pyproject.toml and the README
BUILD_FILES = ("pyproject.toml", "README.md")


def git_listed(root: Path, *flags: str) -> list[str]:
    command = ["git", "-C", str(root), "ls-files", "-z", *flags, "--", *PACKAGED]
    return [f for f in subprocess.run(command, capture_output=True, check=True).stdout.decode().split("\0") if f]


def source_files(root: Path) -> list[str]:
    """The files the kit's wheel is built from: git-tracked files of the packages (an allowlist: a scratch note or a
    copied credential never travels unless someone tracks it, and an untracked file there is refused by name rather
    than silently missing on Kaggle), pyproject.toml and the README. Without git, the packages' .py/.yaml/.txt."""
    if (root / ".git").exists():
        tracked = [f for f in git_listed(root, "--cached") if (root / f).is_file()]
        untracked = git_listed(root, "--others", "--exclude-standard")
        if untracked:
            raise KitError(
                f"{len(untracked)} file(s) in the kit's packages are not tracked by git ({', '.join(untracked[:5])}); "
                "the wheel for Kaggle is built from tracked files only, so the notebook would lack them: git add "
                "them, or move them out of kit/ and kernels/"
            )
    else:
        tracked = [
            str(p.relative_to(root)) for folder in PACKAGED for p in sorted((root / folder).rglob("*"))
            if p.suffix in (".py", ".yaml", ".txt") and "__pycache__" not in p.parts
        ]  # fmt: skip
    return [*tracked, *(name for name in BUILD_FILES if (root / name).is_file())]


def build_kit_wheel(dest: Path) -> Path:
    """The kit's wheel, built from a copy of source_files (so that no untracked file and no stale build/ folder can
    end up in it); a file that looks like a credential stops the build, named."""
    dest.mkdir(parents=True, exist_ok=True)
    files = source_files(PROJECT_ROOT)
    refused = [f"{name}: {reason}" for name in files if (reason := secret_reason(PROJECT_ROOT / name))]
    if refused:
        raise KitError("refusing to build the kit's wheel: " + "; ".join(refused))
    with tempfile.TemporaryDirectory() as scratch:
        for name in files:
            (Path(scratch) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_ROOT / name, Path(scratch) / name)
        pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(dest), scratch,
            what="building the kit's wheel")  # fmt: skip
    return next(dest.glob("kaggle_kit-*.whl"))


def download_wheels(dest: Path, packages: tuple[str, ...], pythons: tuple[str, ...] = PYTHONS) -> None:
    """For each CPython, the newest wheel of each package between the kit's lower bound and the version installed
    here (an older one where a release dropped that Python, e.g. onnxruntime 1.23 on 3.10)."""
    bounds = lower_bounds()
    wanted = [f"{n}>={bounds.get(canonicalize_name(n), '0')},<={installed(n)}" for n in packages]
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    for python in pythons:
        pip("download", "--no-deps", "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
            *platforms, "--dest", str(dest), *wanted, what=f"wheels for CPython {python}")  # fmt: skip


def build_wheels(dest: Path, packages: tuple[str, ...] = BUNDLED, pythons: tuple[str, ...] = PYTHONS) -> list[Path]:
    """The kit's wheel and the listed packages' wheels (from the package index) for every CPython in `pythons`."""
    build_kit_wheel(dest)
    if packages:
        download_wheels(dest, packages, pythons)
    return sorted(dest.glob("*.whl"))


def wheel_tags(path: Path) -> tuple[str, set[str]]:
    """(canonical name, the CPython versions it installs on, e.g. {"3.11"}; {"any"} for a pure-Python wheel)."""
    name, _, _, tags = parse_wheel_filename(path.name)
    pythons = {f"{t.interpreter[2]}.{t.interpreter[3:]}" for t in tags if t.interpreter.startswith("cp")}
    return str(name), pythons if pythons and not any(t.abi == "none" for t in tags) else {"any"}


def check_coverage(wheels: list[Path], needs: dict[str, str], pythons: tuple[str, ...]) -> None:
    """Every package in `needs` that the dataset carries binary wheels of has one for each CPython."""
    covered: dict[str, set[str]] = {}
    for wheel in wheels:
        name, tags = wheel_tags(wheel)
        covered.setdefault(name, set()).update(tags)
    for name in needs:
        if name in covered and "any" not in covered[name]:
            lacking = sorted(set(pythons) - covered[name], key=lambda v: tuple(map(int, v.split("."))))
            if lacking:
                raise KitError(f"the code dataset has no {name} wheel for CPython {', '.join(lacking)}")


def manifest(wheels: list[Path], backend: str, pythons: tuple[str, ...]) -> dict:
    """requirements.json: for each runtime need, its minimum and whether the dataset carries a wheel of it."""
    needs = runtime_needs(backend)
    carried = {wheel_tags(w)[0] for w in wheels}
    missing = [n for n in BUNDLED + BACKEND_PACKAGES[backend] if canonicalize_name(n) in needs and
               canonicalize_name(n) not in carried]  # fmt: skip
    if missing:
        raise KitError(f"the code dataset lacks wheels of {', '.join(missing)} (backend {backend})")
    check_coverage(wheels, needs, pythons)
    kit = next(w.name for w in wheels if w.name.startswith("kaggle_kit-"))
    packages = {name: {"minimum": minimum, "bundled": name in carried} for name, minimum in sorted(needs.items())}
    return {"kit": kit, "backend": backend, "pythons": list(pythons), "packages": packages}


def wheel_secret(path: Path) -> str | None:
    """A credential packed inside a wheel (its members scanned like bundle files), or None."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.infolist():
            with archive.open(member) as handle:
                reason = secret_in(Path(member.filename), handle.read(SCAN_BYTES))
            if reason:
                return f"{member.filename}: {reason}"
    return None


def code_bundle(out: Path, owner: str, slug: str = "kaggle-kit-code", wheels: list[Path] | None = None,
                backend: str = "torch", pythons: tuple[str, ...] = PYTHONS) -> Bundle:  # fmt: skip
    """A dataset folder of wheels and requirements.json; `wheels` given skips the build (e.g. ones built a moment
    ago), else the backend's packages are added to the bundled ones."""
    with tempfile.TemporaryDirectory() as scratch:
        if wheels is None:
            wheels = build_wheels(Path(scratch), BUNDLED + BACKEND_PACKAGES[backend], pythons)
        if not any(w.name.startswith("kaggle_kit-") for w in wheels):
            raise KitError("the code dataset needs the kit's own wheel (kaggle_kit-*.whl)")
        refused = [f"{w.name} holds {reason}" for w in wheels if (reason := wheel_secret(w))]
        if refused:
            raise KitError("refusing to bundle " + "; ".join(refused))
        needs = Path(scratch) / MANIFEST
        needs.write_text(json.dumps(manifest(wheels, backend, pythons), indent=1))
        sources = {w.name: w for w in wheels} | {MANIFEST: needs}
        return assemble(out, sources, dataset_metadata(owner, slug, "kaggle-kit code and wheels"))
