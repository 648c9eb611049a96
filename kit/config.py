"""Experiment configs: named YAML files in kit/experiments/, `key.sub=value` overrides, the resolved copy per run."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from kit.errors import KitError, UnknownNameError
from kit.io import write_text_atomic

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
    bases = cfg.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    layered: dict = {}
    for name in bases:
        layered = merged(layered, read_layered(_base_path(str(name), path), (*chain, path)))
    return merged(layered, cfg)


def load_experiment(name: str) -> dict:
    """A named experiment (kit/experiments/<name>.yaml) or a path to a YAML file, over its bases (`base: [trainer,
    imageclass]`: kit/experiments/_base/; a kit experiment's name; or a YAML path relative to the file)."""
    path = Path(name)
    if not path.suffix:
        path = EXPERIMENTS / f"{name}.yaml"
        if not path.exists():
            raise UnknownNameError(f"unknown experiment {name!r}; valid: {', '.join(experiment_names())}")
    if not path.exists():
        raise KitError(f"{path}: experiment file not found")
    cfg = read_layered(path.resolve())
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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# (section, key) -> (what is expected, check); a missing key is left to the defaults of the code that reads it
CHECKS = {
    ("trainer", "epochs"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("trainer", "batch_size"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("trainer", "warmup_epochs"): ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    ("trainer", "early_stopping"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("trainer", "early_stopping_smoothing"): (
        "null or a number in [0, 1)",
        lambda v: v is None or (_is_number(v) and 0 <= v < 1),
    ),
    ("trainer", "seed"): ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    ("trainer", "accumulate"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("trainer", "num_workers"): ("a whole number >= 0, or null", lambda v: v is None or (_is_int(v) and v >= 0)),
    ("trainer", "lr"): ("a number > 0", lambda v: _is_number(v) and v > 0),
    ("trainer", "weight_decay"): ("a number >= 0", lambda v: _is_number(v) and v >= 0),
    ("trainer", "grad_clip"): ("a number > 0", lambda v: _is_number(v) and v > 0),
    ("trainer", "ema"): ("a decay in (0, 1), or null", lambda v: v is None or (_is_number(v) and 0 < v < 1)),
    ("trainer", "precision"): ("one of auto, bf16, fp16, fp32", lambda v: v in ("auto", "bf16", "fp16", "fp32")),
    ("trainer", "compile"): ("true or false", lambda v: isinstance(v, bool)),
    ("trainer", "channels_last"): ("true or false", lambda v: isinstance(v, bool)),
    ("trainer", "augment"): ("true or false", lambda v: isinstance(v, bool)),
    ("trainer", "freeze_epochs"): ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    ("trainer", "unfreeze_stages"): (
        "a whole number >= 0, or null (all)",
        lambda v: v is None or (_is_int(v) and v >= 0),
    ),
    ("trainer", "backbone_lr"): ("a factor > 0 of trainer.lr", lambda v: _is_number(v) and v > 0),
    ("trainer", "lr_decay"): ("a factor in (0, 1]", lambda v: _is_number(v) and 0 < v <= 1),
    ("trainer", "plateau_patience"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("trainer", "tta"): ("true or false", lambda v: isinstance(v, bool)),
    ("trainer", "randaugment"): (
        "a timm RandAugment string (e.g. rand-m9-n2-mstd0.5), or null",
        lambda v: v is None or (isinstance(v, str) and v.startswith("rand")),
    ),
    ("trainer", "mixup"): ("a probability in [0, 1]", lambda v: _is_number(v) and 0 <= v <= 1),
    ("data", "folds"): ("a whole number >= 2", lambda v: _is_int(v) and v >= 2),
    ("data", "fold_seed"): ("a whole number >= 0", lambda v: _is_int(v) and v >= 0),
    ("data", "slices"): ("a whole number >= 1", lambda v: _is_int(v) and v >= 1),
    ("data", "size"): ("a whole number >= 8", lambda v: _is_int(v) and v >= 8),
    ("data", "dir"): (
        "a folder path, or null (the synthetic data); an empty value names no folder",
        lambda v: v is None or (isinstance(v, str) and v.strip() != ""),
    ),
    ("loss", "label_smoothing"): ("a number in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
    ("loss", "class_weights"): (
        "balanced, null, or a list of one number > 0 per class",
        lambda v: (
            v is None or v == "balanced" or (isinstance(v, list) and v and all(_is_number(x) and x > 0 for x in v))
        ),
    ),
    ("model", "head"): (
        "null (timm's classifier) or a mapping of hidden, se_reduction, dropout",
        lambda v: v is None or (isinstance(v, dict) and set(v) <= {"hidden", "se_reduction", "dropout"}),
    ),
    ("model", "dropout"): ("a probability in [0, 1)", lambda v: _is_number(v) and 0 <= v < 1),
}

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
    for (section, key), (expected, ok) in CHECKS.items():
        if isinstance(cfg.get(section), dict) and key in cfg[section] and not ok(cfg[section][key]):
            raise KitError(f"config: {section}.{key}={cfg[section][key]!r}; expected {expected}")
    trainer = cfg["trainer"]
    if 1 < trainer.get("epochs", 1) <= trainer.get("warmup_epochs", 0):  # a 1-epoch smoke run may warm up throughout
        raise KitError(
            f"config: trainer.warmup_epochs={trainer['warmup_epochs']} is not below trainer.epochs="
            f"{trainer.get('epochs')}; the learning rate would never leave its warm-up"
        )
    if fold is not None:
        folds = cfg["data"].get("folds", 5)
        if not _is_int(fold) or not 0 <= fold < folds:
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
