"""Create or version a Kaggle dataset from a bundle folder (its dataset-metadata.json names the dataset).

Files at the top of the folder are uploaded as they are; each sub-folder is zipped first, as the kaggle CLI's
`--dir-mode zip` does, and Kaggle unpacks it to a folder of the same name. Local files are only read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from kagglesdk.blobs.types.blob_api_service import ApiBlobType, ApiStartBlobUploadRequest
from kagglesdk.datasets.types.dataset_api_service import (
    ApiCreateDatasetRequest,
    ApiCreateDatasetVersionRequest,
    ApiCreateDatasetVersionRequestBody,
    ApiDatasetNewFile,
)

from kit.errors import KitError
from kit.kaggle import client
from kit.kaggle.client import make_client, upload, with_retries

METADATA = "dataset-metadata.json"


def read_metadata(folder: Path) -> dict:
    return client.read_metadata(Path(folder) / METADATA, "a dataset folder needs its metadata (id 'owner/slug', title)")


def upload_blobs(kaggle, folder: Path) -> list[str]:
    """Upload every file (and every zipped sub-folder) of a bundle; the blob tokens, in name order."""
    tokens = []
    with tempfile.TemporaryDirectory() as scratch:
        for entry in sorted(Path(folder).iterdir()):
            if entry.name == METADATA:
                continue
            path = Path(shutil.make_archive(str(Path(scratch) / entry.name), "zip", entry)) if entry.is_dir() else entry
            request = ApiStartBlobUploadRequest()
            request.type, request.name = ApiBlobType.DATASET, path.name
            request.content_length, request.last_modified_epoch_seconds = path.stat().st_size, int(path.stat().st_mtime)
            ticket = with_retries(lambda r=request: kaggle.blobs.blob_api_client.start_blob_upload(r), f"start {path}")
            upload(ticket.create_url, path, f"upload {path.name}")
            tokens.append(ticket.token)
    return tokens


def new_files(tokens: list[str]) -> list[ApiDatasetNewFile]:
    files = []
    for token in tokens:
        file = ApiDatasetNewFile()
        file.token = token
        files.append(file)
    return files


def not_found(exc: Exception) -> bool:
    response = getattr(exc.__cause__, "response", None)  # a requests.Response is falsy when not ok: no `or` here
    return response is not None and response.status_code == 404


def publish(folder: Path, notes: str) -> str:
    """A new version of the bundle's dataset, or the dataset itself (private) when it does not exist yet.
    Returns the dataset's reference (owner/slug)."""
    metadata = read_metadata(folder)
    kaggle = make_client()
    api = kaggle.datasets.dataset_api_client
    tokens = upload_blobs(kaggle, folder)
    version = ApiCreateDatasetVersionRequest()
    version.owner_slug, version.dataset_slug = metadata["owner"], metadata["slug"]
    version.body = ApiCreateDatasetVersionRequestBody()
    version.body.version_notes, version.body.files = notes, new_files(tokens)
    ref = f"{metadata['owner']}/{metadata['slug']}"
    try:
        response = with_retries(lambda: api.create_dataset_version(version), f"version dataset {ref}")
        missing = bool(response.error) and "not found" in response.error.lower()
    except KitError as exc:
        if not not_found(exc):
            raise
        missing = True
    if missing:
        create = ApiCreateDatasetRequest()
        create.owner_slug, create.slug, create.title = metadata["owner"], metadata["slug"], metadata["title"]
        create.license_name = metadata.get("licenses", [{"name": "CC0-1.0"}])[0]["name"]
        create.is_private, create.files = True, new_files(tokens)
        response = with_retries(lambda: api.create_dataset(create), f"create dataset {ref}")
    if response.error:
        raise KitError(f"dataset {ref}: {response.error}")
    return ref
