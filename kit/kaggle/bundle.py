"""Bundles pushed to Kaggle as datasets: listed file by file, never a credential, never a git-ignored file."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kit.errors import KitError
from kit.train.identity import RUN_FILE

SECRET_NAMES = re.compile(
    r"(^kaggle\.json$|^access_token$|^\.env(\..*)?$|^\.netrc$|^id_(rsa|dsa|ecdsa|ed25519)(\.pub)?$|\.pem$|\.key$|"
    r"^credentials(\.json)?$|^\.git-credentials$|^\.pypirc$)"
)
SECRET_DIRS = {".kaggle", ".ssh", ".aws", ".git"}
SECRET_CONTENT = [
    # a Kaggle key (32 hex digits) under a "key" name: kaggle.json, a YAML `key: ...`, a Python dict or assignment
    re.compile(rb"""(?<![A-Za-z0-9_])['"]?key['"]?\s*[:=]\s*['"]?[0-9a-f]{32}(?![0-9a-f])""", re.IGNORECASE),
    re.compile(rb"KGAT_[A-Za-z0-9]{16,}"),  # a Kaggle API token, also bare
    re.compile(rb"KAGGLE_(KEY|API_TOKEN)\s*[=:]\s*['\"]?[A-Za-z0-9_\-]{16,}"),
    re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(rb"AKIA[0-9A-Z]{16}"),  # an AWS access key id
    re.compile(rb"gh[pousr]_[A-Za-z0-9]{36}"),  # a GitHub token
]
SCAN_BYTES = 4 * 2**20  # content is scanned in the first 4 MiB of each file (weights are large and binary)


@dataclass
class Bundle:
    root: Path
    files: list[Path] = field(default_factory=list)  # relative to root

    def listing(self) -> str:
        sizes = [(f, (self.root / f).stat().st_size) for f in self.files]
        lines = [f"{size / 1e6:10.2f} MB  {f}" for f, size in sizes]
        return "\n".join(lines + [f"{sum(s for _, s in sizes) / 1e6:10.2f} MB  total, {len(sizes)} files"])


def secret_reason(path: Path) -> str | None:
    """Why a file looks like a credential, or None."""
    with open(path, "rb") as handle:
        return secret_in(path, handle.read(SCAN_BYTES))


def secret_in(path: Path, head: bytes) -> str | None:
    """Why a file of this name and these first bytes looks like a credential, or None."""
    if SECRET_NAMES.search(path.name):
        return f"its name ({path.name}) is a credential's"
    hidden = SECRET_DIRS.intersection(path.parts)
    if hidden:
        return f"it lies under {hidden.pop()}/"
    for pattern in SECRET_CONTENT:
        if pattern.search(head):
            return f"its content matches a credential pattern ({pattern.pattern[:40]!r})"
    return None


def git_ignored(paths: list[Path], repo: Path) -> set[Path]:
    """The paths git ignores in `repo` (none when git or the repository is absent)."""
    if not (repo / ".git").exists() or not paths:
        return set()
    result = subprocess.run(
        ["git", "-C", str(repo), "check-ignore", "--stdin", "-z"],
        input="\0".join(str(p) for p in paths).encode(),
        capture_output=True,
        check=False,
    )
    return {Path(p) for p in result.stdout.decode().split("\0") if p}


def assemble(out: Path, sources: dict[str, Path], metadata: dict, repo: Path | None = None) -> Bundle:
    """Copy `sources` (name in the bundle -> file) into `out` with its dataset-metadata.json; refuse any secret and,
    when `repo` is given, any file git ignores there. Nothing is written when a file is refused."""
    refused = []
    ignored = git_ignored([p.resolve() for p in sources.values()], repo) if repo else set()
    for path in sources.values():
        reason = "git ignores it" if path.resolve() in ignored else secret_reason(path)
        if reason:
            refused.append(f"{path}: {reason}")
    if refused:
        raise KitError("refusing to bundle " + "; ".join(refused))
    out.mkdir(parents=True, exist_ok=True)
    bundle = Bundle(out)
    for name, path in sources.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        bundle.files.append(Path(name))
    (out / "dataset-metadata.json").write_text(json.dumps(metadata, indent=1))
    bundle.files.append(Path("dataset-metadata.json"))
    return bundle


def dataset_metadata(owner: str, slug: str, title: str) -> dict:
    if not 6 <= len(title) <= 50:
        raise KitError(f"dataset title {title!r} must have 6 to 50 characters")
    return {"title": title, "id": f"{owner}/{slug}", "licenses": [{"name": "CC0-1.0"}]}


def fold_sources(exp_root: Path, prefix: str = "", files: tuple[str, ...] = ()) -> dict[str, Path]:
    """The finished folds' model_best.pt, resolved config.yaml and summary.json (and `files`) of an experiment,
    named <prefix>fold<k>/<file>; an interrupted fold (no summary.json) is left out."""
    folds = sorted(
        p for p in exp_root.glob("fold*") if (p / "model_best.pt").exists() and (p / "summary.json").exists()
    )
    if not folds:
        raise KitError(f"{exp_root}: no finished fold to bundle")
    absent = [str(p / name) for p in folds for name in files if not (p / name).exists()]
    if absent:
        raise KitError(f"{absent[0]}: missing (task export exp={exp_root.name} fold=k writes it)")
    sources = {f"{prefix}{p.name}/{name}": p / name for p in folds for name in (*FOLD_FILES, *files)}
    sources.update({f"{prefix}{p.name}/{RUN_FILE}": p / RUN_FILE for p in folds if (p / RUN_FILE).exists()})
    for fold in folds:  # earlier stages (fold<k>/<stage>/) travel with their fold: weights, config, small records
        for stage in stage_folders(fold):
            for path in sorted(stage.iterdir()):
                if path.name in FOLD_FILES or path.suffix == ".json":
                    sources[f"{prefix}{fold.name}/{stage.name}/{path.name}"] = path
    return sources


FOLD_FILES = ("model_best.pt", "config.yaml", "summary.json")


def stage_folders(fold: Path) -> list[Path]:
    """A fold's finished earlier stages (e.g. rsna_two_stage's fold0/localiser/)."""
    return sorted(p for p in fold.iterdir() if p.is_dir() and (p / "summary.json").exists())


def weights_metadata(owner: str, name: str) -> dict:
    return dataset_metadata(owner, f"{name.replace('_', '-')}-weights"[-50:].lstrip("-"), f"{name} weights"[:50])


def scrub_local_paths(bundle: Bundle) -> Bundle:
    """The shipped configs and run records name no folder of this machine: the notebook reads the competition's
    data where Kaggle mounts it, and the run's data fingerprint still travels."""
    for name in bundle.files:
        path = bundle.root / name
        if path.name == "config.yaml":
            cfg = yaml.safe_load(path.read_text())
            if isinstance(cfg.get("data"), dict):
                cfg["data"]["dir"] = None
            if str(cfg.get("source", "")).startswith("/"):
                cfg["source"] = Path(cfg["source"]).name
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        elif path.name == RUN_FILE:
            record = json.loads(path.read_text())
            record["data"] = {**record["data"], "dir": None, "path": Path(record["data"]["path"]).name}
            if str(record.get("experiment", "")).startswith("/"):
                record["experiment"], record["experiment_yaml"] = Path(record["experiment"]).name, None
            path.write_text(json.dumps(record, indent=1))
    return bundle


def weights_bundle(exp_root: Path, out: Path, owner: str, files: tuple[str, ...] = ()) -> Bundle:
    """An experiment's trained folds (with `files` of each, e.g. model.onnx), as a dataset."""
    return scrub_local_paths(assemble(out, fold_sources(exp_root, files=files), weights_metadata(owner, exp_root.name)))


def stack_weights_bundle(stack_dir: Path, exp_roots: list[Path], out: Path, owner: str) -> Bundle:
    """A stack's base experiments' trained folds under <exp>/ and its fold meta-models under stack/, as one dataset."""
    sources = {name: path for root in exp_roots for name, path in fold_sources(root, f"{root.name}/").items()}
    meta = [*sorted(stack_dir.glob("meta_fold*.txt")), stack_dir / "stack_model.json"]
    sources.update({f"stack/{path.name}": path for path in meta})
    return scrub_local_paths(assemble(out, sources, weights_metadata(owner, stack_dir.name)))
