"""Checkpoints written atomically: an interrupted save never corrupts the last good one."""

from __future__ import annotations

from pathlib import Path

import torch

from kit.errors import KitError
from kit.io import atomic_path


def save(path: Path, state: dict) -> None:
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as "unexpected pos" from its zip writer
        raise KitError(
            f"{path}: could not write the checkpoint ({exc}); is the disk full or the folder read-only?"
        ) from exc


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def load_weights(module: torch.nn.Module, state: dict, source: Path | str) -> None:
    """load_state_dict, with a mismatch (a fold trained with another model section) as one line naming the file."""
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise KitError(
            f"{source}: its weights do not fit the model this config builds ({mismatch(module, state)}); "
            "was it trained with another model section?"
        ) from exc


def mismatch(module: torch.nn.Module, state: dict) -> str:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    parts = [
        f"{len(keys)} {what}, e.g. {keys[0]}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped))
        if keys
    ]
    return "; ".join(parts) or "no key differs"
