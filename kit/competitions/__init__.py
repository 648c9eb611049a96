"""Registry of competitions: `@register_competition` on a Competition class; every sub-package registers its own."""

from __future__ import annotations

import importlib
import pkgutil

from kit.competitions.base import Competition
from kit.errors import UnknownNameError

COMPETITIONS: dict[str, Competition] = {}


def register_competition(cls: type[Competition]) -> type[Competition]:
    """Registers an instance; a class that leaves a required member undefined fails here, not at rehearsal."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    for part in ("name", "slug", "id_column", "training_class", "synth_sizes"):
        if not hasattr(cls, part):
            missing.append(part)
    training = getattr(cls, "training_class", None)
    if training is not None:
        missing += [f"training_class.{m}" for m in sorted(getattr(training, "__abstractmethods__", ()))]
        missing += [f"training_class.{m}" for m in ("metric_name", "metric_mode", "losses", "oof_file")
                    if not hasattr(training, m)]  # fmt: skip
    if missing:
        raise TypeError(f"competition {cls.__name__} lacks {', '.join(missing)}")
    if cls.name in COMPETITIONS and type(COMPETITIONS[cls.name]) is not cls:
        raise TypeError(f"competition name {cls.name!r} is taken by {type(COMPETITIONS[cls.name]).__name__}")
    COMPETITIONS[cls.name] = cls()
    return cls


def _discover() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            importlib.import_module(f"{__name__}.{module.name}")


def get_competition(name: str) -> Competition:
    _discover()
    if name not in COMPETITIONS:
        raise UnknownNameError(f"unknown competition {name!r}; valid: {', '.join(competition_names())}")
    return COMPETITIONS[name]


def competition_names() -> list[str]:
    _discover()
    return sorted(COMPETITIONS)


__all__ = ["Competition", "register_competition", "get_competition", "competition_names"]
