"""NIH ChestX-ray14's files as released: Data_Entry_2017.csv (a trailing comma; the two bracketed names each span two
value columns), images_001/images/ … images_012/images/ (PNG), train_val_list.txt and test_list.txt."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.errors import DataError, KitError

FINDINGS = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
    "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)  # fmt: skip
NO_FINDING = "No Finding"
ENTRY_FILE = "Data_Entry_2017.csv"
HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
NAMED = HEADER.split(",")[:7]  # the columns the kit reads by name; the rest it reads by position
LISTS = {"train": "train_val_list.txt", "test": "test_list.txt"}
AGE = re.compile(r"^(\d{1,3})([YMD]?)$")


@dataclass
class Split:
    images: list[str]  # Image Index, in list order
    patients: np.ndarray  # patient id per image
    labels: np.ndarray  # (n, 14) uint8
    files: list[Path]


def parse_findings(text: str, where: str) -> np.ndarray:
    row = np.zeros(len(FINDINGS), np.uint8)
    if text == NO_FINDING:
        return row
    for name in text.split("|"):
        if name not in FINDINGS:
            raise DataError(f"{where}: unknown finding {name!r} (known: {', '.join(FINDINGS)} or {NO_FINDING!r})")
        row[FINDINGS.index(name)] = 1
    return row


def parse_age(text: str, where: str) -> float:
    """'058Y' (or a bare 58) in years; months and days as fractions."""
    match = AGE.match(str(text).strip())
    if not match:
        raise DataError(f"{where}: Patient Age {text!r}; expected e.g. 058Y")
    return int(match.group(1)) / {"": 1, "Y": 1, "M": 12, "D": 365}[match.group(2)]


def read_entries(data_dir: Path) -> pd.DataFrame:
    path = data_dir / ENTRY_FILE
    if not path.exists():
        raise KitError(f"{path}: file not found (make the layout with `kit synth chestxray14`)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    if list(frame.columns[:7]) != NAMED:
        raise DataError(f"{path}: columns {list(frame.columns[:7])}; expected the release's header {HEADER!r}")
    for row, (image, age) in enumerate(zip(frame["Image Index"], frame["Patient Age"], strict=True), start=2):
        parse_age(age, f"{path} row {row} ({image})")
    duplicated = frame["Image Index"].duplicated()
    if duplicated.any():
        raise DataError(f"{path}: image {frame['Image Index'][duplicated].iloc[0]!r} listed twice")
    return frame.set_index("Image Index")


def image_files(data_dir: Path) -> dict[str, Path]:
    """Image Index -> its file under images_*/images/."""
    return {p.name: p for p in sorted(data_dir.glob("images_*/images/*.png"))}


def read_split(data_dir: Path, split: str, entries: pd.DataFrame, files: dict[str, Path]) -> Split:
    path = data_dir / LISTS[split]
    if not path.exists():
        raise KitError(f"{path}: file not found (the official split lists)")
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    labels, patients, paths, seen = [], [], [], {}
    for line, name in enumerate(names, start=1):
        where = f"{path} line {line}"
        if name in seen:
            raise DataError(f"{where}: {name} is listed twice (first on line {seen[name]}); each image once")
        seen[name] = line
        if name not in entries.index:
            raise DataError(f"{where}: {name} is not in {ENTRY_FILE}")
        if name not in files:
            raise DataError(f"{where}: {name} has no image under {data_dir}/images_*/images/")
        entry = entries.loc[name]
        labels.append(parse_findings(entry["Finding Labels"], f"{data_dir / ENTRY_FILE} ({name})"))
        patients.append(entry["Patient ID"])
        paths.append(files[name])
    shape = (0, len(FINDINGS))
    return Split(names, np.asarray(patients), np.stack(labels) if labels else np.zeros(shape, np.uint8), paths)


def read_dataset(data_dir: Path) -> tuple[Split, Split]:
    """The official train_val and test splits; a patient in both is an error."""
    data_dir = Path(data_dir)
    entries, files = read_entries(data_dir), image_files(data_dir)
    train, test = (read_split(data_dir, s, entries, files) for s in ("train", "test"))
    both = sorted(set(train.images) & set(test.images))
    if both:
        raise DataError(f"{data_dir}: image {both[0]} is in both {LISTS['train']} and {LISTS['test']}")
    shared = set(train.patients) & set(test.patients)
    if shared:
        raise DataError(f"{data_dir}: patient {sorted(shared)[0]} is in both {LISTS['train']} and {LISTS['test']}")
    return train, test
