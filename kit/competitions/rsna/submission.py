"""Submission writer and validator (25 rows per study), and the hidden-solution layout built from labels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import KitError
from kit.io import atomic_path

from .layout import MISSING, SEVERITY_COLUMNS, SEVERITY_WEIGHTS, TARGETS, row_id

SUBMISSION_COLUMNS = ("row_id", *SEVERITY_COLUMNS)
ROW_SUM_TOLERANCE = 1e-4
_TARGET_SET = frozenset(TARGETS)


class SubmissionError(KitError):
    pass


def row_ids(study_ids: Iterable[int]) -> list[str]:
    return [row_id(study_id, target) for study_id in study_ids for target in TARGETS]


def submission_frame(study_ids: Sequence[int], probs: np.ndarray) -> pd.DataFrame:
    """probs (studies, 25, 3) of non-negative scores -> a submission frame with rows normalised to sum to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(study_ids), len(TARGETS), len(SEVERITY_COLUMNS)):
        raise SubmissionError(f"predictions have shape {probs.shape}; expected ({len(study_ids)}, 25, 3)")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise SubmissionError("predictions must be finite and non-negative")
    flat = probs.reshape(-1, len(SEVERITY_COLUMNS))
    sums = flat.sum(axis=1, keepdims=True)
    flat = np.where(sums > 0, flat / np.where(sums > 0, sums, 1), 1 / len(SEVERITY_COLUMNS))
    frame = pd.DataFrame(flat, columns=list(SEVERITY_COLUMNS))
    frame.insert(0, "row_id", row_ids(study_ids))
    return frame


def split_row_id(value: str) -> tuple[str, str] | None:
    """'123_spinal_canal_stenosis_l1_l2' -> ('123', 'spinal_canal_stenosis_l1_l2'), or None if malformed."""
    study, _, target = str(value).partition("_")
    if not study.isdigit() or target not in _TARGET_SET:
        return None
    return study, target


def validate_submission(frame: pd.DataFrame, expected_row_ids: Iterable[str] | None = None) -> list[str]:
    """Every problem found, as readable lines; an empty list means the frame is a valid submission."""
    problems: list[str] = []
    columns = list(frame.columns)
    if columns != list(SUBMISSION_COLUMNS):
        missing = [c for c in SUBMISSION_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in SUBMISSION_COLUMNS]
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(map(str, extra))}" if extra else "",
                "wrong order" if not missing and not extra else "",
            )
            if part
        )
        problems.append(f"columns are {columns}; expected {list(SUBMISSION_COLUMNS)} ({detail})")
    if "row_id" not in columns:
        return problems
    if len(frame) == 0:
        return [*problems, "no rows: a submission needs 25 rows per test study"]

    ids = frame["row_id"].astype(str)
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        problems.append(f"{len(duplicated)} duplicate row_id(s), e.g. {duplicated.iloc[:3].tolist()}")
    malformed = [value for value in ids if split_row_id(value) is None]
    if malformed:
        problems.append(f"{len(malformed)} malformed row_id(s) (want '<study_id>_<target>'), e.g. {malformed[:3]}")
    padded = [value for value in ids if (parts := split_row_id(value)) and len(parts[0]) > 1 and parts[0][0] == "0"]
    if padded:
        problems.append(
            f"{len(padded)} row_id(s) whose study id has a leading zero, e.g. {padded[:3]} (Kaggle matches row ids "
            "as text: '0123_…' is not study 123)"
        )

    if expected_row_ids is not None:
        expected = pd.Index(list(expected_row_ids))
        missing_ids = expected.difference(pd.Index(ids))
        extra_ids = pd.Index(ids).difference(expected)
        if len(missing_ids):
            problems.append(f"{len(missing_ids)} missing row_id(s), e.g. {missing_ids[:3].tolist()}")
        if len(extra_ids):
            problems.append(f"{len(extra_ids)} unexpected row_id(s), e.g. {extra_ids[:3].tolist()}")
    else:
        per_study = pd.Series([p[0] for p in map(split_row_id, ids) if p]).value_counts()
        incomplete = per_study[per_study != len(TARGETS)]
        if len(incomplete):
            problems.append(
                f"{len(incomplete)} study(ies) without exactly {len(TARGETS)} rows, "
                f"e.g. study {incomplete.index[0]} has {incomplete.iloc[0]}"
            )

    value_columns = [c for c in SEVERITY_COLUMNS if c in columns]
    booleans = [c for c in value_columns if frame[c].dtype.kind == "b"]
    if booleans:
        problems.append(f"column(s) {', '.join(booleans)} hold True/False; give probabilities")
    values = frame[value_columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    checks = (
        (np.isnan(values).any(axis=1), "NaN or non-numeric values"),
        (np.isinf(values).any(axis=1), "infinite values"),
        ((values < 0).any(axis=1), "negative values"),
    )
    for rows, what in checks:
        if rows.any():
            problems.append(f"{int(rows.sum())} row(s) with {what}, e.g. {ids[rows].iloc[:3].tolist()}")
    if len(value_columns) == len(SEVERITY_COLUMNS):
        sums = values.sum(axis=1)
        off = np.isfinite(sums) & (np.abs(sums - 1) > ROW_SUM_TOLERANCE)
        if off.any():
            problems.append(
                f"{int(off.sum())} row(s) do not sum to 1 (±{ROW_SUM_TOLERANCE}), "
                f"e.g. {ids[off].iloc[0]} sums to {sums[off][0]:.6f}"
            )
    return problems


def write_submission(path: str | Path, frame: pd.DataFrame, expected_row_ids: Iterable[str] | None = None) -> Path:
    """Validate, then write atomically; an invalid frame never replaces a file already there."""
    problems = validate_submission(frame, expected_row_ids)
    if problems:
        raise SubmissionError(f"{path}: invalid submission:\n  " + "\n  ".join(problems))
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def solution_frame(labels: pd.DataFrame) -> pd.DataFrame:
    """Kaggle's hidden-solution layout from a (studies × 25) label-code frame; unlabelled cells are left out."""
    codes = labels[list(TARGETS)].to_numpy()
    study_ids = np.repeat(labels.index.to_numpy(), len(TARGETS))
    targets = np.tile(np.array(TARGETS), len(labels))
    flat = codes.reshape(-1)
    keep = flat != MISSING
    one_hot = np.eye(len(SEVERITY_COLUMNS))[flat[keep]]
    frame = pd.DataFrame(one_hot, columns=list(SEVERITY_COLUMNS))
    frame.insert(0, "row_id", [f"{s}_{t}" for s, t in zip(study_ids[keep], targets[keep], strict=True)])
    frame["sample_weight"] = np.asarray(SEVERITY_WEIGHTS)[flat[keep]]
    return frame
