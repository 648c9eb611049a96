"""Image profiles: a `pip freeze` of a Kaggle Python image (shipped: `old`; captured: `task kaggle-freeze`), and the
virtual environment that stands in for that image in a rehearsal (`task rehearse exp=... -- --image old`).

The stand-in installs, at the profile's versions, what the kit's notebook needs from the image, and takes torch and
torchvision (with the CUDA runtime they bring, several GB) from this machine: it cannot install another build of them
offline. It is built once per profile under ~/.cache/kit/images/ and reused.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from kit.errors import KitError

SHIPPED = Path(__file__).parent / "images"
LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")
LINKED = ("torch", "torchvision")
# What the rehearsal kernel itself needs beside the kit's runtime packages.
KERNEL = ("ipykernel", "packaging")


@dataclass
class Profile:
    path: Path
    packages: dict[str, str] = field(default_factory=dict)  # canonical name -> version
    python: str | None = None


def profile_path(image: str) -> Path:
    """A shipped profile by name (`old`), one `task kaggle-freeze` wrote (images/<name>.txt under KIT_HOME), or a
    path."""
    from kit import paths

    for candidate in (SHIPPED / f"{image}.txt", paths.home() / "images" / f"{image}.txt", Path(image)):
        if candidate.is_file():
            return candidate
    shipped = sorted(p.stem for p in SHIPPED.glob("*.txt"))
    raise KitError(f"--image {image}: no such profile (shipped: {', '.join(shipped)}; or a file path)")


def read_profile(path: Path) -> Profile:
    """name==version lines; `# python: X.Y` says the image's Python; other lines (comments, `@ file://`) are skipped
    unless they look like a pin and are not one."""
    profile = Profile(path)
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if line.lower().startswith("# python:"):
            profile.python = line.split(":", 1)[1].strip()
        if not line or line.startswith("#") or " @ " in line or line.startswith("-"):
            continue
        match = LINE.match(line)
        if not match:
            raise KitError(f"{path}, line {number}: {line!r} is not name==version")
        try:
            Version(match.group(2))
        except InvalidVersion as exc:
            raise KitError(f"{path}, line {number}: {match.group(2)!r} is not a version of {match.group(1)}") from exc
        profile.packages[canonicalize_name(match.group(1))] = match.group(2)
    return profile


def requirement_closure(names) -> set[str]:
    """The installed distributions `names` need, recursively (extras left out), by canonical name."""
    environment, seen, todo = default_environment(), set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return seen


def distribution_roots(names) -> set[str]:
    """Top-level names in site-packages (packages, modules, dist-info folders) that belong to these distributions."""
    roots = set()
    for name in names:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        roots.update(f.parts[0] for f in files if f.parts and f.parts[0] != "..")
    return roots


def link_distributions(dest: Path, names: set[str]) -> None:
    """Symbolic links in `dest` to this environment's files of the distributions `names`."""
    dest.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for root in distribution_roots(names):
        if (site / root).exists() and not (dest / root).exists():
            (dest / root).symlink_to((site / root).absolute())


def linked_stack(profile: Profile) -> set[str]:
    """torch, torchvision and what they need, except what the profile pins itself (numpy, pillow…)."""
    return {n for n in requirement_closure(LINKED) if n in LINKED or n not in profile.packages}


def to_install(profile: Profile, needs: dict[str, str]) -> list[str]:
    """name==version for each runtime need the profile has (and the kernel's own packages), apart from torch's."""
    wanted = [n for n in needs if n in profile.packages and n not in LINKED]
    wanted += [n for n in map(canonicalize_name, KERNEL) if n not in wanted]
    return [f"{n}=={profile.packages[n]}" if n in profile.packages else n for n in wanted]


def cache_folder(profile: Profile) -> Path:
    digest = hashlib.sha256(profile.path.read_bytes() + sys.version.encode()).hexdigest()[:12]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "kit" / "images" / f"{profile.path.stem}-{digest}"


def stand_in(profile: Profile, needs: dict[str, str], echo=print) -> list[Path]:
    """The folders that make up the stand-in image (its site-packages, then torch's linked stack), built if new."""
    folder = cache_folder(profile)
    torch_stack = folder / "torch"
    if (folder / "ready").exists():
        return [Path((folder / "ready").read_text().splitlines()[0]), torch_stack]
    shutil.rmtree(folder, ignore_errors=True)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if profile.python and profile.python != here:
        echo(f"{profile.path.name} says Python {profile.python}; the stand-in runs this machine's {here}")
    for name in LINKED:
        version = metadata.version(name)
        pinned = profile.packages.get(name)
        if pinned and Version(pinned).base_version != Version(version).base_version:
            echo(f"{profile.path.name} pins {name} {pinned}; the stand-in has this machine's {version}")
    link_distributions(torch_stack, linked_stack(profile))
    requirements = to_install(profile, needs)
    echo(f"building the stand-in image {folder} ({len(requirements)} packages from the package index)")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())  # fmt: skip
    # The linked torch is on the venv's path while pip resolves, so pip keeps it and installs the rest at the pins.
    (site / "torch_stack.pth").write_text(f"{torch_stack}\n")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--only-binary=:all:",
               *requirements]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        shutil.rmtree(folder, ignore_errors=True)
        missing = re.search(r"No matching distribution found for (\S+)", result.stderr)
        if missing:
            raise KitError(f"{profile.path}: {missing.group(1)} does not exist on the package index for Python {here}")
        raise KitError(f"{profile.path}: building the stand-in image failed:\n{result.stderr.strip()[-1500:]}")
    (site / "torch_stack.pth").unlink()  # the rehearsal's environment lists both folders itself
    (folder / "ready").write_text("\n".join([str(site), *requirements]) + "\n")
    return [site, torch_stack]
