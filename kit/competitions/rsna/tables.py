"""Reads the competition's CSVs into checked tables and a list of studies (series per view, integer labels)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import DataError
from kit.schema import Data

from .layout import (
    COLUMNS,
    CONDITION_TITLES,
    CONDITIONS,
    COORDINATES_CSV,
    IMAGE_DIRS,
    LEVEL_TITLES,
    LEVELS,
    MISSING,
    SERIES_CSVS,
    SEVERITY_LABELS,
    TARGETS,
    TRAIN_CSV,
    VIEW_OF_CONDITION,
    VIEWS,
)

LABEL_CODES = {label: code for code, label in enumerate(SEVERITY_LABELS)}


@dataclass
class Study:
    study_id: int
    series: dict[str, list[Path]] = field(default_factory=dict)  # view name -> series folders
    labels: np.ndarray | None = None  # (25,) int, MISSING where unlabelled; None for test studies

    def as_item(self) -> dict:
        """The dict form that MONAI datasets and transforms take."""
        item = {"study_id": self.study_id, "series": {v: [str(p) for p in s] for v, s in self.series.items()}}
        if self.labels is not None:
            item["labels"] = self.labels
        return item


def read_csv_checked(path: Path, dtypes: dict | None = None) -> pd.DataFrame:
    """Read one of the competition's CSVs, insisting on its exact column names."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frame = pd.read_csv(path, dtype=dtypes)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    expected = COLUMNS[path.name]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        extra = [c for c in frame.columns if c not in expected]
        hint = f"; unexpected column(s) {', '.join(map(str, extra))}" if extra else ""
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}{hint}")
    return frame


def parse_labels(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Label strings to integer codes 0/1/2, empty cells to MISSING; anything else is an error naming the cell."""
    codes = frame[list(TARGETS)].apply(lambda col: col.map(LABEL_CODES))
    bad = codes.isna() & frame[list(TARGETS)].notna()
    if bad.to_numpy().any():
        row, col = np.argwhere(bad.to_numpy())[0]
        value = frame[TARGETS[col]].iloc[row]
        raise DataError(
            f"{path}: row {row + 2} (study_id {frame['study_id'].iloc[row]}), column {TARGETS[col]}: "
            f"label {value!r} is not one of {', '.join(SEVERITY_LABELS)}"
        )
    labels = codes.fillna(MISSING).astype(np.int64)
    labels.index = frame["study_id"].astype(np.int64)
    return labels


def read_labels(data_dir: Path) -> pd.DataFrame:
    """train.csv as a (studies × 25) frame of integer codes indexed by study_id."""
    path = Path(data_dir) / TRAIN_CSV
    frame = read_csv_checked(path)
    repeated = frame["study_id"].duplicated(keep="first")
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        first = int(np.flatnonzero((frame["study_id"] == frame["study_id"].iloc[row]).to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 2} repeats study_id {frame['study_id'].iloc[row]} (first on row {first + 2})"
        )
    return parse_labels(frame, path)


def fallback(study_id, what: str, rest: bool = True) -> None:
    """One log line for a test study predicted without some of its data (the notebook never stops for one study)."""
    _say(f"study {study_id}: {what}" + ("; predicted from the rest" if rest else ""))


@functools.cache  # the test studies are read by each stage: each line once
def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_series_descriptions(data_dir: Path, split: str) -> pd.DataFrame:
    path = Path(data_dir) / SERIES_CSVS[split]
    frame = read_csv_checked(path)
    repeated = frame.duplicated(["study_id", "series_id"])
    if repeated.any():
        row = int(np.flatnonzero(repeated.to_numpy())[0])
        raise DataError(
            f"{path}: row {row + 2} repeats study_id {frame['study_id'].iloc[row]}, series_id "
            f"{frame['series_id'].iloc[row]}"
        )
    unknown = ~frame["series_description"].isin(list(VIEWS))
    if unknown.any() and split == "test":  # a hidden test study predicts from the series it has
        for row in frame[unknown].itertuples(index=False):
            fallback(row.study_id, f"series {row.series_id}: unknown description {row.series_description!r}, left out")
        frame = frame[~unknown].reset_index(drop=True)
    elif unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        study, series = frame["study_id"].iloc[row], frame["series_id"].iloc[row]
        raise DataError(
            f"{path}: row {row + 2} (study_id {study}, series_id {series}): "
            f"unknown series_description {frame['series_description'].iloc[row]!r}; expected one of {', '.join(VIEWS)}"
        )
    frame["view"] = frame["series_description"].map(VIEWS)
    return frame


def absent_studies(cfg: dict, data_dir: Path, missing: list, total: int) -> None:
    """Folds listing studies without images: one error line, unless data.studies=present (runs recorded before the
    key existed: the schema's default, all)."""
    if (cfg["data"].get("studies") or Data.defaults()["studies"]) == "present":
        return
    raise DataError(
        f"{Path(data_dir) / IMAGE_DIRS['train']}: {len(missing):,} of the {total:,} studies in {TRAIN_CSV} have no "
        f"folder here (e.g. {missing[0]}); data.studies=present trains on the {total - len(missing):,} with images"
    )


def load_studies(data_dir: Path, split: str = "train") -> list[Study]:
    """Every study of a split with its series folders by view; train studies carry their labels (those without a
    folder under train_images/ are left out: `absent_studies` decides whether a fold may train without them)."""
    data_dir = Path(data_dir)
    if split not in IMAGE_DIRS:
        raise KeyError(f"unknown split {split!r}; valid: {', '.join(IMAGE_DIRS)}")
    series = read_series_descriptions(data_dir, split)
    images = data_dir / IMAGE_DIRS[split]
    studies: dict[int, Study] = {}
    for row in series.sort_values(["study_id", "series_id"]).itertuples(index=False):
        study = studies.setdefault(int(row.study_id), Study(int(row.study_id)))
        folder = images / str(row.study_id) / str(row.series_id)
        if split == "test" and not folder.is_dir():
            fallback(row.study_id, f"series {row.series_id} ({row.series_description}): no folder {folder}, left out")
            continue
        study.series.setdefault(row.view, []).append(folder)
    if split == "train":
        labels = read_labels(data_dir)
        unlisted = sorted(set(labels.index) - set(studies))
        if unlisted:
            raise DataError(f"{data_dir / TRAIN_CSV}: study_id {unlisted[0]} has no series in {SERIES_CSVS[split]}")
        present = [int(sid) for sid in labels.index if (images / str(int(sid))).is_dir()]
        return [Study(sid, studies[sid].series, labels.loc[sid].to_numpy()) for sid in present]
    return list(studies.values())


CONDITION_CODES = {title: code for code, title in enumerate(CONDITION_TITLES.values())}
LEVEL_CODES = {title: code for code, title in enumerate(LEVEL_TITLES.values())}


def read_coordinates(data_dir: Path) -> pd.DataFrame:
    """train_label_coordinates.csv with condition and level as codes (indices into CONDITIONS and LEVELS)."""
    path = Path(data_dir) / COORDINATES_CSV
    frame = read_csv_checked(path)
    for column, codes in (("condition", CONDITION_CODES), ("level", LEVEL_CODES)):
        coded = frame[column].map(codes)
        if coded.isna().any():
            row = int(np.flatnonzero(coded.isna().to_numpy())[0])
            raise DataError(
                f"{path}: row {row + 2} (study_id {frame['study_id'].iloc[row]}): unknown {column} "
                f"{frame[column].iloc[row]!r}; expected one of {', '.join(codes)}"
            )
        frame[column] = coded.astype(np.int64)
    bad = ~np.isfinite(frame[["instance_number", "x", "y"]].to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        study = frame["study_id"].iloc[row]
        raise DataError(f"{path}: row {row + 2} (study_id {study}): instance_number, x or y is empty")
    return frame


def landmark_points(data_dir: Path, conditions: Sequence[str]) -> dict[int, dict[str, list[list[float]]]]:
    """Per study and view, [channel, series_id, instance_number, x, y] of every labelled point of `conditions`, each
    on its condition's view (VIEW_OF_CONDITION); channel = (position of the condition in `conditions`) × 5 + level,
    so a single condition's channels are its levels and all five conditions' are the 25 targets in order."""
    frame = read_coordinates(data_dir)
    points: dict[int, dict[str, list[list[float]]]] = {}
    for position, condition in enumerate(conditions):
        view = VIEW_OF_CONDITION[condition]
        for row in frame[frame["condition"] == CONDITIONS.index(condition)].itertuples(index=False):
            channel = position * len(LEVELS) + int(row.level)
            points.setdefault(int(row.study_id), {}).setdefault(view, []).append(
                [channel, int(row.series_id), int(row.instance_number), float(row.x), float(row.y)]
            )
    return points
