"""Experiment configs: named YAML files in kit/experiments/, `key.sub=value` overrides, the resolved copy per run."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from kit.errors import KitError, UnknownNameError
from kit.io import write_text_atomic
from kit.schema import SECTIONS, Data, Trainer

EXPERIMENTS = Path(__file__).parent / "experiments"


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-3` (no dot) as a string; YAML 1.2 and every user read it as a number."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader with one more float form


BASES = EXPERIMENTS / "_base"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))


def merged(base: dict, update: dict) -> dict:
    """`update` over `base`, mapping by mapping; any other value (a list too) replaces the base's."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _base_path(name: str, of: Path) -> Path:
    """A base: a name in kit/experiments/_base/ or of a kit experiment, or a YAML path relative to the file."""
    if Path(name).suffix:
        path = (of.parent / name).resolve()
    else:
        path = next((p for p in (BASES / f"{name}.yaml", EXPERIMENTS / f"{name}.yaml") if p.exists()), None)
        if path is None:
            valid = sorted({p.stem for p in BASES.glob("*.yaml")} | set(experiment_names()))
            raise KitError(f"{of}: base {name!r} is neither in kit/experiments/_base/ nor an experiment; valid: "
                           f"{', '.join(valid)}")  # fmt: skip
    if not path.exists():
        raise KitError(f"{of}: base {name!r}: {path} not found")
    return path


def nested(cfg: dict, path: Path) -> dict:
    """A file's top-level dotted keys as sections: `trainer.epochs: 90` is `trainer: {epochs: 90}`, the form an
    override takes on the command line."""

    def dotted(key) -> bool:
        return isinstance(key, str) and "." in key

    out = {k: v for k, v in cfg.items() if not dotted(k)}
    for key in filter(dotted, cfg):
        *parents, leaf = key.split(".")
        node = out
        for i, part in enumerate(parents):
            if node.get(part) is None:  # absent, or an empty `trainer:`
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise KitError(f"{path}: {key}: {'.'.join(parents[: i + 1])} is not a section")
        if leaf in node:
            raise KitError(f"{path}: {key} is set twice in this file")
        node[leaf] = cfg[key]
    return out


def read_layered(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping over its `base:` list (each read the same way, in order; later ones win, the file last)."""
    if path in chain:
        raise KitError(f"{path}: its bases include itself ({' -> '.join(p.name for p in (*chain, path))})")
    try:
        cfg = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise KitError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(cfg, dict):
        raise KitError(f"{path}: an experiment is a YAML mapping of sections, got {type(cfg).__name__}")
    cfg = nested(cfg, path)
    bases = cfg.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    layered: dict = {}
    for name in bases:
        layered = merged(layered, read_layered(_base_path(str(name), path), (*chain, path)))
    return merged(layered, cfg)


def load_experiment(name: str) -> dict:
    """A named experiment (kit/experiments/<name>.yaml) or a path to a YAML file, over its bases (`base: [imageclass,
    timm_classifier]`: kit/experiments/_base/; a kit experiment's name; or a YAML path relative to the file)."""
    path = Path(name)
    if not path.suffix:
        path = EXPERIMENTS / f"{name}.yaml"
        if not path.exists():
            raise UnknownNameError(f"unknown experiment {name!r}; valid: {', '.join(experiment_names())}")
    if not path.exists():
        raise KitError(f"{path}: experiment file not found")
    cfg = read_layered(path.resolve())
    if not isinstance(cfg.get("trainer", {}), dict):
        raise KitError(f"{path}: trainer is not a mapping of settings")
    cfg["trainer"] = Trainer.resolved(cfg.get("trainer") or {})  # the schema's defaults under the YAML's values
    cfg.setdefault("name", path.stem)
    cfg.setdefault("experiment", path.stem)  # the experiment a run started from, whatever name= it is given
    cfg["source"] = name if path.parent == EXPERIMENTS else str(path.resolve())  # the YAML file, to read again
    return cfg


def apply_overrides(cfg: dict, overrides: list[str]) -> dict:
    """`trainer.epochs=3`-style overrides; values are parsed as YAML, and only existing keys may be set."""
    cfg = copy.deepcopy(cfg)
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep:
            raise KitError(f"override {override!r} is not of the form key=value")
        if not raw.strip():
            raise KitError(f"override {override!r}: no value; write {key}=null for none")
        *parents, leaf = key.split(".")
        node = cfg
        for i, part in enumerate(parents):
            if not isinstance(node.get(part), dict):
                raise KitError(f"override {override!r}: {'.'.join(parents[: i + 1])} is not a section of the config")
            node = node[part]
        if leaf not in node:
            raise KitError(f"override {override!r}: unknown key {key!r}; known here: {', '.join(sorted(node))}")
        try:
            node[leaf] = read_yaml(raw)
        except yaml.YAMLError as exc:
            raise KitError(f"override {override!r}: the value is not valid YAML") from exc
    return cfg


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(name) -> str:
    """A run's name is one folder under runs/: no separators, no '..', nothing absolute."""
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or ".." in name:
        raise KitError(
            f"config: name={name!r}; a run name is one folder under runs/ (letters, digits, '_', '-', '.'; "
            "no '/' or '..')"
        )
    return name


def check_config(cfg: dict, fold: int | None = None) -> dict:
    """Types and ranges of the keys every run reads, and the fold, before any work starts."""
    for section in ("data", "model", "trainer"):
        if not isinstance(cfg.get(section), dict):
            raise KitError(f"config: the {section!r} section is missing or not a mapping")
    for section in SECTIONS:
        section.check(cfg.get(section.section) or {})
    trainer = Trainer.check(cfg["trainer"])
    if 1 < trainer.epochs <= trainer.warmup_epochs:  # a 1-epoch smoke run may warm up throughout
        raise KitError(
            f"config: trainer.warmup_epochs={trainer.warmup_epochs} is not below trainer.epochs={trainer.epochs}; "
            "the learning rate would never leave its warm-up"
        )
    if fold is not None:
        folds = Data.check(cfg["data"]).folds
        if not isinstance(fold, int) or isinstance(fold, bool) or not 0 <= fold < folds:
            raise KitError(f"--fold {fold}: this experiment has data.folds={folds}, so a fold is 0 to {folds - 1}")
    return cfg


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        name, va, vb = f"{prefix}{key}", a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += config_differences(va, vb, f"{name}.")
        elif va != vb:
            out.append(name)
    return out


def lookup(cfg: dict, dotted: str):
    """The value at a dotted key (None where a section or key is missing)."""
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


def load_config(path: Path) -> dict:
    """A run's resolved config (config.yaml beside its checkpoints)."""
    try:
        cfg = read_yaml(Path(path).read_text())
    except FileNotFoundError as exc:
        raise KitError(
            f"{path}: missing; the fold was trained before configs were kept, or was copied without it"
        ) from exc
    except yaml.YAMLError as exc:
        raise KitError(f"{path}: not valid YAML") from exc
    if not isinstance(cfg, dict):
        raise KitError(f"{path}: not a config mapping")
    return cfg


def dump_config(cfg: dict, path: Path) -> None:
    write_text_atomic(path, yaml.safe_dump(cfg, sort_keys=False))
