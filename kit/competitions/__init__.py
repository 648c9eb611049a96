"""Registry of competitions: name -> Competition."""

from __future__ import annotations

from kit.competitions.base import Competition
from kit.errors import UnknownNameError


def _registry() -> dict[str, Competition]:
    from kit.competitions import mars, rsna

    return {c.name: c for c in (rsna.COMPETITION, mars.COMPETITION)}


def get_competition(name: str) -> Competition:
    registry = _registry()
    if name not in registry:
        raise UnknownNameError(f"unknown competition {name!r}; valid: {', '.join(sorted(registry))}")
    return registry[name]


def competition_names() -> list[str]:
    return sorted(_registry())
