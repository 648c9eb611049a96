"""The Kaggle API client (kagglesdk, as the kaggle package uses it), with credentials from the kaggle package's usual
places, an endpoint override for tests (KIT_KAGGLE_API_ENDPOINT) and retries of transient failures."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
from kagglesdk import KaggleClient, KaggleEnv

from kit.errors import KitError

ENDPOINT_VARIABLE = "KIT_KAGGLE_API_ENDPOINT"
NO_CREDENTIALS = (
    "no Kaggle credentials: set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json (kaggle.com → Settings → API → "
    "Create New Token) as ~/.kaggle/kaggle.json with mode 600, or set KAGGLE_API_TOKEN"
)
T = TypeVar("T")


def config_dir() -> Path:
    return Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))


def credentials() -> dict:
    """{'username', 'password'} (legacy key) or {'api_token'}, looked up where the kaggle package looks."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return {"username": os.environ["KAGGLE_USERNAME"], "password": os.environ["KAGGLE_KEY"]}
    if os.environ.get("KAGGLE_API_TOKEN"):
        return {"api_token": os.environ["KAGGLE_API_TOKEN"]}
    path = config_dir() / "kaggle.json"
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            return {"username": saved["username"], "password": saved["key"]}
        except (json.JSONDecodeError, KeyError) as exc:
            raise KitError(f"{path}: expected JSON with 'username' and 'key' ({exc})") from exc
    token = config_dir() / "access_token"
    if token.exists():
        return {"api_token": token.read_text().strip()}
    raise KitError(NO_CREDENTIALS)


def username() -> str | None:
    return credentials().get("username") or os.environ.get("KAGGLE_USERNAME")


def make_client() -> KaggleClient:
    endpoint = os.environ.get(ENDPOINT_VARIABLE)
    client = KaggleClient(env=KaggleEnv.LOCAL if endpoint else None, **credentials())
    if endpoint:
        # kagglesdk serves non-production environments under <endpoint>/api/v1/<service>/<Method>
        client.http_client()._endpoint = endpoint.rstrip("/")
    return client


def kaggle_api():
    """The kaggle package's `KaggleApi`, calling through the kit's client (its credentials, the stand-in endpoint).
    Importing the package signs in and prints a sign-in banner when there are no credentials: the banner is
    silenced here, and a missing credential is the kit's one-line error from `credentials()` instead."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from kaggle.api.kaggle_api_extended import KaggleApi

    class Api(KaggleApi):
        def build_kaggle_client(self) -> KaggleClient:
            return make_client()

    return Api()


def read_metadata(path: Path, needed_for: str) -> dict:
    """A dataset-metadata.json or kernel-metadata.json, with its 'id' split into 'owner' and 'slug'."""
    if not path.exists():
        raise KitError(f"{path}: not found; {needed_for}")
    metadata = json.loads(path.read_text())
    owner, _, slug = str(metadata.get("id", "")).partition("/")
    if not owner or not slug:
        raise KitError(f"{path}: 'id' must be 'owner/slug', got {metadata.get('id')!r}")
    return {**metadata, "owner": owner, "slug": slug}


def transient(exc: Exception) -> bool:
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    response = getattr(exc, "response", None)
    return response is not None and response.status_code >= 500


def with_retries(call: Callable[[], T], what: str, attempts: int = 5, delay: float = 1.0) -> T:
    """`call()`, retried with exponential backoff on 5xx responses, timeouts and dropped connections."""
    for attempt in range(attempts):
        try:
            return call()
        except (requests.RequestException, OSError) as exc:
            if not transient(exc):
                raise KitError(f"{what}: {exc}") from exc
            if attempt == attempts - 1:
                raise KitError(f"{what}: still failing after {attempts} attempts ({exc})") from exc
            time.sleep(delay * 2**attempt)
    raise AssertionError("unreachable")


def upload(url: str, path: Path, what: str) -> None:
    """PUT a file to an upload URL the API handed out (no auth header: the URL is the credential)."""

    def put():
        with open(path, "rb") as handle:
            requests.put(url, data=handle, timeout=600).raise_for_status()

    with_retries(put, what)


def download(url: str, target: Path, what: str) -> Path:
    """GET an output file URL the API handed out into `target`, written whole or not at all."""

    def fetch():
        with requests.get(url, stream=True, timeout=600) as reply:
            reply.raise_for_status()
            partial = target.with_name(target.name + ".part")
            with open(partial, "wb") as handle:
                for chunk in reply.iter_content(chunk_size=1 << 20):
                    handle.write(chunk)
            partial.replace(target)

    target.parent.mkdir(parents=True, exist_ok=True)
    with_retries(fetch, what)
    return target
