"""Model registry: name -> builder(in_channels, num_outputs, **config)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch
from torch import nn

from kit.errors import KitError, UnknownNameError

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    MODELS[fn.__name__] = fn
    return fn


def create_model(name: str, in_channels: int, num_outputs: int, **kwargs) -> nn.Module:
    import kit.models

    for module in pkgutil.iter_modules(kit.models.__path__):  # each module registers its builders
        importlib.import_module(f"kit.models.{module.name}")

    if name not in MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid: {', '.join(sorted(MODELS))}")
    weights = kwargs.pop("encoder_weights", None)
    model = MODELS[name](in_channels=in_channels, num_outputs=num_outputs, **kwargs)
    if weights:
        load_local_weights(model, weights)
    return model


def load_local_weights(model: nn.Module, path: str) -> None:
    """Offline by design: pretrained weights come from a local file (e.g. a Kaggle dataset), never a download."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise KitError(f"{path}: encoder weights not found (the kit never downloads them; give a local file)") from exc
    missing, unexpected = model.load_state_dict(state.get("model", state), strict=False)
    if len(unexpected) == len(state):
        raise KitError(f"{path}: none of its weights fit the model")
