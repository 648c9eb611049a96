"""CSV submissions: validate, upload, create, poll until scored; and the list of past submissions."""

from __future__ import annotations

import time
from pathlib import Path

from kagglesdk.competitions.types.competition_api_service import (
    ApiCreateCodeSubmissionRequest,
    ApiCreateSubmissionRequest,
    ApiListSubmissionsRequest,
    ApiStartSubmissionUploadRequest,
)

from kit.competitions import get_competition
from kit.errors import KitError
from kit.io import read_csv_file
from kit.kaggle.client import make_client, upload, with_retries


def validated(competition: str, path: Path) -> None:
    comp = get_competition(competition)
    problems = comp.validate(read_csv_file(path), comp.known_sample())
    if problems:
        raise KitError(f"{path}: not submitted; " + "; ".join(problems))


def submit_csv(competition: str, path: Path, message: str, poll_seconds: float = 10.0, timeout: float = 1800.0):
    """Validate, upload and create the submission, then poll until Kaggle scores it. Returns the submission."""
    path = Path(path)
    validated(competition, path)
    slug = get_competition(competition).slug
    client = make_client()
    api = client.competitions.competition_api_client
    start = ApiStartSubmissionUploadRequest()
    start.competition_name, start.file_name = slug, path.name
    start.content_length, start.last_modified_epoch_seconds = path.stat().st_size, int(path.stat().st_mtime)
    ticket = with_retries(lambda: api.start_submission_upload(start), "start the upload")
    upload(ticket.create_url, path, f"upload {path}")
    create = ApiCreateSubmissionRequest()
    create.competition_name, create.blob_file_tokens, create.submission_description = slug, ticket.token, message
    created = with_retries(lambda: api.create_submission(create), "create the submission")
    return wait_for_score(competition, created.ref, poll_seconds, timeout)


def submit_code(
    competition: str,
    owner: str,
    kernel: str,
    version: int,
    message: str,
    file_name: str = "submission.csv",
    poll_seconds: float = 60.0,
    timeout: float = 9 * 3600.0,
):
    """Submit a code-competition notebook version (Kaggle reruns it on the hidden test set); poll until scored."""
    request = ApiCreateCodeSubmissionRequest()
    request.competition_name = get_competition(competition).slug
    request.kernel_owner, request.kernel_slug, request.kernel_version = owner, kernel, version
    request.file_name, request.submission_description = file_name, message
    api = make_client().competitions.competition_api_client
    created = with_retries(lambda: api.create_code_submission(request), f"submit kernel {owner}/{kernel}")
    return wait_for_score(competition, created.ref, poll_seconds, timeout)


def list_submissions(competition: str) -> list:
    request = ApiListSubmissionsRequest()
    request.competition_name = get_competition(competition).slug
    api = make_client().competitions.competition_api_client
    return with_retries(lambda: api.list_submissions(request), "list submissions").submissions


def wait_for_score(competition: str, ref: int, poll_seconds: float, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in list_submissions(competition) if s.ref == ref]
        if found and found[0].status.name != "PENDING":
            return found[0]
        if time.monotonic() > deadline:
            raise KitError(f"submission {ref} still pending after {timeout:.0f} s; see `task submissions`")
        time.sleep(poll_seconds)


def describe(submission) -> str:
    score = submission.public_score or "—"
    error = f"  {submission.error_description}" if submission.error_description else ""
    status = f"{submission.status.name:<8} public {score:<10}"
    return f"{submission.ref}  {submission.date}  {status} {submission.description}{error}"
