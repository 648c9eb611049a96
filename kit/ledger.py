"""The submissions ledger (submissions/ledger.csv): every CSV submitted with the kit, the run that wrote it (found by
the file's SHA-256, which `kit predict` and `kit stack` record in runs/<run>/submission.sha256) and Kaggle's scores,
refreshed by `kit submissions`."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from kit import paths
from kit.io import atomic_path, exclusive, sha256, write_text_atomic

COLUMNS = ["ref", "competition", "run", "file", "sha256", "data", "message", "submitted", "status", "public_score"]


def ledger_path() -> Path:
    return paths.submissions_root() / "ledger.csv"


def record_written(run_dir: Path, submission: Path, data: dict | None = None) -> None:
    """Called where a run writes its submission: the hash that later ties an upload back to this run, and the data
    it predicted (submission.json)."""
    digest = sha256(submission)
    write_text_atomic(Path(run_dir) / "submission.sha256", digest + "\n")
    record = {"file": str(Path(submission).absolute()), "sha256": digest, "data": data}
    write_text_atomic(Path(run_dir) / "submission.json", json.dumps(record, indent=1))


def data_of(run: str) -> str:
    """The data folder a run's last submission predicted ('' where not recorded)."""
    path = paths.runs_root() / run / "submission.json"
    if not path.exists():
        return ""
    data = json.loads(path.read_text()).get("data") or {}
    return data.get("dir", "")


def run_of(digest: str) -> str | None:
    for stamp in paths.runs_root().glob("*/submission.sha256"):
        if stamp.read_text().strip() == digest:
            return stamp.parent.name
    return None


def load() -> pd.DataFrame:
    path = ledger_path()
    if not path.exists():
        return pd.DataFrame(columns=COLUMNS)
    frame = pd.read_csv(path, dtype={"ref": "int64", "public_score": "string", "status": "string", "data": "string"})
    return frame.reindex(columns=COLUMNS)  # a ledger written before the data column gains it empty


def save(frame: pd.DataFrame) -> None:
    with atomic_path(ledger_path()) as tmp:
        frame[COLUMNS].to_csv(tmp, index=False)


def record_submission(competition: str, file: Path, message: str, submission) -> dict:
    digest = sha256(file)
    run = run_of(digest)
    row = {
        "ref": int(submission.ref),
        "competition": competition,
        "run": run or Path(file).stem,
        "file": str(Path(file).absolute()),
        "sha256": digest,
        "data": data_of(run) if run else "",
        "message": message,
        "submitted": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "status": submission.status.name,
        "public_score": submission.public_score or "",
    }
    with exclusive(ledger_path(), "updating the ledger"):  # two submissions at once: both rows kept
        frame = load()
        frame = pd.concat([frame[frame["ref"] != row["ref"]], pd.DataFrame([row])], ignore_index=True)
        save(frame)
    return row


def refresh(submissions) -> int:
    """Kaggle's current status and public score for every ledger row it lists; how many rows changed."""
    with exclusive(ledger_path(), "updating the ledger"):
        return _refresh(submissions)


def _refresh(submissions) -> int:
    frame = load()
    changed = 0
    by_ref = {int(s.ref): s for s in submissions}
    for index, ref in frame["ref"].items():
        found = by_ref.get(int(ref))
        if found is None:
            continue
        status, score = found.status.name, found.public_score or ""
        if (frame.at[index, "status"], str(frame.at[index, "public_score"] or "")) != (status, score):
            frame.at[index, "status"], frame.at[index, "public_score"] = status, score
            changed += 1
    if changed:
        save(frame)
    return changed


def latest_public(run: str) -> float | None:
    frame = load()
    scores = pd.to_numeric(frame.loc[frame["run"] == run, "public_score"], errors="coerce").dropna()
    return None if scores.empty else float(scores.iloc[-1])
