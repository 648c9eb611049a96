"""The one table of losses: (kind of target, name) -> the loss's class."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from kit.errors import UnknownNameError

LOSSES: dict[str, dict[str, Callable[..., nn.Module]]] = {}


def register_loss(kind: str, name: str):
    def wrap(cls):
        LOSSES.setdefault(kind, {})[name] = cls
        return cls

    return wrap


def build_loss(kind: str, spec: dict) -> nn.Module:
    """The loss named by spec['name'] among the kind's, built with the spec's other keys."""
    spec = dict(spec)
    name = spec.pop("name")
    known = LOSSES.get(kind, {})
    if name not in known:
        raise UnknownNameError(f"unknown loss {name!r}; valid: {', '.join(sorted(known))}")
    return known[name](**spec)


register_loss("reconstruction", "mse")(nn.MSELoss)
