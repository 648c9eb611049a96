"""Experiment configs: named YAML files in kit/experiments/, `key.sub=value` overrides, the resolved copy per run."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from kit.errors import KitError, UnknownNameError
from kit.io import write_text_atomic

EXPERIMENTS = Path(__file__).parent / "experiments"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))


def load_experiment(name: str) -> dict:
    """A named experiment (kit/experiments/<name>.yaml) or a path to a YAML file."""
    path = Path(name)
    if not path.suffix:
        path = EXPERIMENTS / f"{name}.yaml"
        if not path.exists():
            raise UnknownNameError(f"unknown experiment {name!r}; valid: {', '.join(experiment_names())}")
    if not path.exists():
        raise KitError(f"{path}: experiment file not found")
    cfg = yaml.safe_load(path.read_text()) or {}
    cfg.setdefault("name", path.stem)
    return cfg


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """`trainer.epochs=3`-style overrides; values are parsed as YAML, and only existing keys may be set."""
    cfg = copy.deepcopy(cfg)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise KitError(f"override {override!r} is not of the form key=value")
        *parents, leaf = key.split(".")
        node = cfg
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise KitError(f"override {override!r}: {'.'.join(parents[: i + 1])} is not a section of the config")
            node = node[part]
        if leaf not in node:
            raise KitError(f"override {override!r}: unknown key {key!r}; known here: {', '.join(sorted(node))}")
        node[leaf] = yaml.safe_load(raw)
    return cfg


def dump_config(cfg: dict, path: Path) -> None:
    write_text_atomic(path, yaml.safe_dump(cfg, sort_keys=False))
