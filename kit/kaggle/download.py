"""`kit download`: a competition's files through the kaggle client (kagglesdk's DownloadDataFiles), unzipped into
data/<slug>/. The zip is written to data/<slug>.zip.part and continued with an HTTP Range request after an
interruption; free disk space is checked first (the zip plus its unzipped size)."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import requests
from kagglesdk.competitions.types.competition_api_service import ApiDownloadDataFilesRequest

from kit import paths
from kit.errors import KitError
from kit.kaggle.client import make_client

CHUNK = 1 << 20
UNZIP_FACTOR = 2.0  # room for the unzipped files beside the zip (image archives barely compress)


def refusal(exc: requests.HTTPError, slug: str) -> KitError:
    """Kaggle's own message, e.g. that the competition's rules are not accepted yet."""
    reply = exc.response
    message = str(exc)
    if reply is not None:
        try:
            message = reply.json().get("message", message)
        except ValueError:
            message = reply.text[:200] or message
        if reply.status_code == 403:
            message += f" (accept the rules at https://www.kaggle.com/competitions/{slug}/rules, then retry)"
    return KitError(f"kaggle refused to download {slug}: {message}")


def check_space(folder: Path, needed: int, slug: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise KitError(
            f"{folder}: {free / 1e9:.1f} GB free, {slug} needs about {needed / 1e9:.1f} GB (the zip and its files)"
        )


def fetch_zip(slug: str, target: Path) -> Path:
    """The competition's zip at `target`, continuing a `.part` file that an interrupted download left."""
    request = ApiDownloadDataFilesRequest()
    request.competition_name = slug
    try:
        with make_client() as client:
            reply = client.competitions.competition_api_client.download_data_files(request)
            return _write(reply, slug, target)
    except requests.HTTPError as exc:
        raise refusal(exc, slug) from exc
    except requests.ConnectionError as exc:
        raise KitError(f"could not reach Kaggle to download {slug} (offline?): {exc.__class__.__name__}") from exc


def _write(reply: requests.Response, slug: str, target: Path) -> Path:
    partial = target.with_name(target.name + ".part")
    total = int(reply.headers.get("Content-Length", 0))
    have = partial.stat().st_size if partial.exists() else 0
    check_space(target.parent, int(max(total - have, 0) + total * UNZIP_FACTOR), slug)
    if have and total and have >= total:
        reply.close()
        partial.replace(target)
        return target
    if have:
        reply.close()
        reply = requests.get(reply.url, headers={"Range": f"bytes={have}-"}, stream=True, timeout=600)
        reply.raise_for_status()
        if reply.status_code != 206:  # the server ignored the range: start over
            have = 0
    with reply, open(partial, "ab" if have else "wb") as handle:
        for chunk in reply.iter_content(chunk_size=CHUNK):
            handle.write(chunk)
    if total and partial.stat().st_size != total:
        raise KitError(f"{partial}: {partial.stat().st_size} of {total} bytes arrived; run the download again")
    partial.replace(target)
    return target


def unzip(archive: Path, out: Path) -> list[str]:
    """Extract into out/, refusing members that would land outside it."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = zipped.namelist()
            root = out.resolve()
            for name in names:
                if not (out / name).resolve().is_relative_to(root):
                    raise KitError(f"{archive}: member {name!r} would be written outside {out}")
            staging = out.with_name(out.name + ".unzipping")
            shutil.rmtree(staging, ignore_errors=True)
            zipped.extractall(staging)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise KitError(f"{archive}: not a complete zip ({exc}); it was removed, run the download again") from exc
    if out.exists():
        shutil.rmtree(out)
    staging.replace(out)
    return names


def download_competition(slug: str, out: Path | None = None) -> Path:
    out = Path(out) if out else paths.data_root() / slug
    out.parent.mkdir(parents=True, exist_ok=True)
    archive = fetch_zip(slug, out.with_name(f"{out.name}.zip"))
    names = unzip(archive, out)
    archive.unlink()
    print(f"{out}: {len(names)} files from {slug}")
    return out
