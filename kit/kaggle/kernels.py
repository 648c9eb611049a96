"""Push a notebook folder (notebook.ipynb + kernel-metadata.json) as a Kaggle kernel, wait for its run, fetch its
outputs."""

from __future__ import annotations

import time
from pathlib import Path

from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

from kit.errors import KitError
from kit.kaggle import client
from kit.kaggle.client import download, kaggle_api, make_client, with_retries

METADATA = "kernel-metadata.json"
FINISHED = {"COMPLETE", "ERROR", "CANCEL_ACKNOWLEDGED"}


def read_metadata(folder: Path) -> dict:
    metadata = client.read_metadata(Path(folder) / METADATA, "a notebook folder needs its kernel metadata")
    code = Path(folder) / metadata.get("code_file", "")
    if not code.is_file():
        raise KitError(f"{Path(folder) / METADATA}: code_file {metadata.get('code_file')!r} not found in {folder}")
    return {**metadata, "code": code}


def push(folder: Path) -> int:
    """Save (and so run) a new version of the kernel through `KaggleApi.kernels_push`, which checks the metadata
    (language, kernel type, sources, docker pinning) and strips the notebook's outputs; returns its version number."""
    metadata = read_metadata(folder)
    ref = f"{metadata['owner']}/{metadata['slug']}"
    api = kaggle_api()
    try:
        response = with_retries(lambda: api.kernels_push(str(folder)), f"push kernel {ref}")
    except ValueError as exc:
        raise KitError(f"{Path(folder) / METADATA}: {exc}") from exc
    invalid = [*response.invalid_dataset_sources, *response.invalid_competition_sources]
    if response.error or invalid:
        raise KitError(f"kernel {ref}: {response.error or 'invalid sources ' + ', '.join(invalid)}")
    return int(response.version_number)


def status(owner: str, slug: str) -> tuple[str, str]:
    """The kernel's latest run (`KaggleApi.kernels_status`): its state and Kaggle's failure message."""
    ref = f"{owner}/{slug}"
    try:
        response = with_retries(lambda: kaggle_api().kernels_status(ref), f"status of kernel {ref}")
    except ValueError as exc:  # the kaggle package refuses a malformed reference, or a kernel one cannot see (401/403)
        raise KitError(f"kernel {ref}: {exc}") from exc
    return response.status.name, response.failure_message or ""


def wait(owner: str, slug: str, poll_seconds: float = 30.0, timeout: float = 9 * 3600.0, echo=print) -> str:
    """Poll until the kernel's run ends; a failed or cancelled run is an error carrying Kaggle's message."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        state, failure = status(owner, slug)
        if state != last:
            echo(f"kernel {owner}/{slug}: {state.lower()}")
            last = state
        if state == "COMPLETE":
            return state
        if state in FINISHED:
            raise KitError(f"kernel {owner}/{slug} ended {state.lower()}: {failure or 'see its log on Kaggle'}")
        if time.monotonic() > deadline:
            raise KitError(f"kernel {owner}/{slug} still {state.lower()} after {timeout:.0f} s")
        time.sleep(poll_seconds)


def pull(owner: str, slug: str, dest: Path, prefix: str = "") -> list[Path]:
    """Download the latest run's output files whose names start with `prefix` into dest (their relative paths
    kept), and its log as dest/<prefix>/kernel.log. Files already there are replaced only once a download completes."""
    api = make_client().kernels.kernels_api_client
    files, log, token = [], "", None
    while True:
        request = ApiListKernelSessionOutputRequest()
        request.user_name, request.kernel_slug = owner, slug
        if token:
            request.page_token = token
        response = with_retries(lambda r=request: api.list_kernel_session_output(r), f"outputs of {owner}/{slug}")
        files.extend(response.files)
        log = log or response.log or ""
        token = response.next_page_token
        if not token:
            break
    dest = Path(dest)
    written = []
    for file in files:
        name = Path(file.file_name)
        if name.is_absolute() or ".." in name.parts:
            raise KitError(f"kernel {owner}/{slug}: refusing output path {file.file_name!r}")
        if str(name).startswith(prefix):
            written.append(download(file.url, dest / name, f"download {file.file_name}"))
    if log:
        (dest / prefix).mkdir(parents=True, exist_ok=True)
        (dest / prefix / "kernel.log").write_text(log)
    return written
