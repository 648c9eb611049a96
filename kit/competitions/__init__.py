"""Registry of competitions: `@register_competition` on a Competition class; every sub-package registers its own.
A family (`@register_family`) also makes competitions from the `dataset:` section of experiment YAMLs."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from kit.competitions.base import Competition
from kit.errors import KitError, UnknownNameError

COMPETITIONS: dict[str, Competition] = {}
FAMILIES: dict[str, Callable[[str, dict], type[Competition]]] = {}


def register_competition(cls: type[Competition]) -> type[Competition]:
    """Registers an instance; a class that leaves a required member undefined fails here, not at rehearsal."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    for part in ("name", "slug", "id_column", "training_class", "synth_sizes"):
        if not hasattr(cls, part):
            missing.append(part)
    training = getattr(cls, "training_class", None)
    if training is not None:
        missing += [f"training_class.{m}" for m in sorted(getattr(training, "__abstractmethods__", ()))]
        missing += [f"training_class.{m}" for m in ("metric_name", "metric_mode", "loss_kind", "oof_file")
                    if not hasattr(training, m)]  # fmt: skip
    if missing:
        raise TypeError(f"competition {cls.__name__} lacks {', '.join(missing)}")
    if cls.name in COMPETITIONS and type(COMPETITIONS[cls.name]) is not cls:
        raise TypeError(f"competition name {cls.name!r} is taken by {type(COMPETITIONS[cls.name]).__name__}")
    COMPETITIONS[cls.name] = cls()
    return cls


def register_family(name: str):
    """`declare(competition name, dataset section) -> registered Competition class` for datasets of one family."""

    def wrap(declare):
        FAMILIES[name] = declare
        return declare

    return wrap


def declare_competition(name: str, spec: dict, source: str = "") -> Competition:
    """The competition a `dataset:` section declares (the same section declared twice is one competition)."""
    if not isinstance(spec, dict) or spec.get("family") not in FAMILIES:
        _discover()
    where = f"{source}: " if source else ""
    if not isinstance(spec, dict) or spec.get("family") not in FAMILIES:
        family = spec.get("family") if isinstance(spec, dict) else spec
        raise KitError(f"{where}dataset.family={family!r}; valid: {', '.join(sorted(FAMILIES))}")
    existing = COMPETITIONS.get(name)
    if existing is not None:
        if getattr(existing, "declared", None) != spec:
            raise KitError(f"{where}competition {name!r} is already declared with another dataset section")
        return existing
    FAMILIES[spec["family"]](name, spec)
    return COMPETITIONS[name]


def competition_of(cfg: dict) -> Competition:
    """An experiment's competition, declaring it first when the experiment carries its dataset section."""
    name = cfg.get("competition")
    if not isinstance(name, str) or not name:
        raise KitError(f"{cfg.get('experiment', 'config')}: competition={name!r}; expected a competition's name")
    if "dataset" in cfg:
        return declare_competition(cfg["competition"], cfg["dataset"], cfg.get("experiment", ""))
    return get_competition(cfg["competition"])


_discovered = False


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")
    from kit.config import EXPERIMENTS, read_layered

    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        cfg = read_layered(path)
        if "dataset" in cfg:
            declare_competition(cfg["competition"], cfg["dataset"], str(path))


def get_competition(name: str) -> Competition:
    _discover()
    if name not in COMPETITIONS:
        raise UnknownNameError(f"unknown competition {name!r}; valid: {', '.join(competition_names())}")
    return COMPETITIONS[name]


def competition_names() -> list[str]:
    _discover()
    return sorted(COMPETITIONS)


__all__ = [
    "Competition",
    "register_competition",
    "register_family",
    "get_competition",
    "competition_names",
    "competition_of",
    "declare_competition",
]
