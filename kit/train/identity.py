"""What a fold records about where it came from, beside its config.yaml: run.json holds the experiment YAML as it
read when the fold started, the data folder (absolute) and that folder's fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

from kit.config import load_config, load_experiment
from kit.data.fingerprint import fingerprint
from kit.errors import KitError
from kit.io import write_text_atomic

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"


def recorded_config(folder: Path) -> dict:
    """The resolved config a fold trained with (its config.yaml). Folds trained before 2026-12-08 also wrote
    their fold number into it; the folder says which fold it is, so that key is dropped."""
    cfg = load_config(Path(folder) / CONFIG_FILE)
    cfg.pop("fold", None)
    return cfg


def yaml_snapshot(source: str | None) -> dict | None:
    """The experiment YAML a run started from, as it reads now (None where it is gone or was never a file)."""
    try:
        return load_experiment(source) if source else None
    except KitError:
        return None


def identity(cfg: dict, data_dir: Path) -> dict:
    return {
        "experiment": cfg.get("source"),
        "experiment_yaml": yaml_snapshot(cfg.get("source")),
        "data": {"dir": cfg["data"].get("dir"), "path": str(Path(data_dir).resolve()), **fingerprint(data_dir)},
        "weights": (cfg.get("model") or {}).get("weights"),
    }


def write_identity(record: dict, folder: Path) -> None:
    write_text_atomic(Path(folder) / RUN_FILE, json.dumps(record, indent=1))


def read_identity(folder: Path) -> dict | None:
    """A fold's run.json; None for a fold trained before runs recorded it."""
    path = Path(folder) / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise KitError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("data"), dict):
        raise KitError(f"{path}: not a run record (expected experiment, experiment_yaml and data)")
    return record


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_data(data: dict) -> str:
    return f"{data['path']} ({plural(data['files'], 'file')}, fingerprint {data['sha256'][:12]})"
