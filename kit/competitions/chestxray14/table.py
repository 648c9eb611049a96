"""NIH ChestX-ray14's label files and images as users download them, each label format found by its name and header:
Kaggle's full copy (Data_Entry_2017.csv with a trailing comma: the two bracketed names each span two value columns;
images_001/images/ … images_012/images/; train_val_list.txt and test_list.txt), NIH's 2020 revision
(Data_Entry_2017_v2020.csv: 11 columns, integer ages, CRLF) and Kaggle's sample (sample_labels.csv: 11 columns with
plain names; sample/images/; no split lists). The kit reads the first seven columns by name in every format."""

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
ENTRY_FILES = (ENTRY_FILE, "Data_Entry_2017_v2020.csv", "sample_labels.csv", "sample/sample_labels.csv")
IMAGE_FOLDERS = ("images_*/images", "images", "sample/images", "sample/sample/images")
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


def entries_path(data_dir: Path) -> Path:
    """The label file: one of ENTRY_FILES, else the one Data_Entry*.csv in data_dir (a renamed or partial copy)."""
    for name in ENTRY_FILES:
        if (data_dir / name).exists():
            return data_dir / name
    others = sorted(data_dir.glob("Data_Entry*.csv"))
    if len(others) == 1:
        return others[0]
    raise KitError(
        f"{data_dir}: no label file ({', '.join(ENTRY_FILES)}"
        + (f"; several Data_Entry*.csv: {', '.join(p.name for p in others)}" if others else "")
        + "; make the layout with `kit synth chestxray14`)"
    )


def entries_format(frame: pd.DataFrame) -> str:
    """Which release a label file is, by its header."""
    last = str(frame.columns[-1])
    if last.startswith("Unnamed"):
        return "Kaggle's Data_Entry_2017 (trailing comma)"
    if "OriginalImageWidth" in frame.columns:
        return "Kaggle's sample_labels"
    return "NIH's 2020 revision"


def read_entries(data_dir: Path) -> pd.DataFrame:
    path = entries_path(data_dir)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    if list(frame.columns[:7]) != NAMED:
        raise DataError(f"{path}: columns {list(frame.columns[:7])}; expected the release's header {HEADER!r}")
    for row, (image, age) in enumerate(zip(frame["Image Index"], frame["Patient Age"], strict=True), start=2):
        parse_age(age, f"{path} row {row} ({image})")
    duplicated = frame["Image Index"].duplicated()
    if duplicated.any():
        raise DataError(f"{path}: image {frame['Image Index'][duplicated].iloc[0]!r} listed twice")
    frame.attrs["path"], frame.attrs["format"] = path, entries_format(frame)
    return frame.set_index("Image Index")


def image_files(data_dir: Path) -> dict[str, Path]:
    """Image Index -> its file, under any of IMAGE_FOLDERS."""
    return {p.name: p for pattern in IMAGE_FOLDERS for p in sorted(data_dir.glob(f"{pattern}/*.png"))}


def _split(names: list[str], entries: pd.DataFrame, files: dict[str, Path]) -> Split:
    labels, patients = [], []
    for name in names:
        entry = entries.loc[name]
        labels.append(parse_findings(entry["Finding Labels"], f"{entries.attrs['path']} ({name})"))
        patients.append(entry["Patient ID"])
    shape = (0, len(FINDINGS))
    return Split(names, np.asarray(patients), np.stack(labels) if labels else np.zeros(shape, np.uint8),
                 [files[n] for n in names])  # fmt: skip


def read_split(data_dir: Path, split: str, entries: pd.DataFrame, files: dict[str, Path]) -> Split:
    path = data_dir / LISTS[split]
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    seen: dict[str, int] = {}
    for line, name in enumerate(names, start=1):
        where = f"{path} line {line}"
        if name in seen:
            raise DataError(f"{where}: {name} is listed twice (first on line {seen[name]}); each image once")
        seen[name] = line
        if name not in entries.index:
            raise DataError(f"{where}: {name} is not in {entries.attrs['path'].name}")
    absent = [name for name in names if name not in files]
    if absent:
        raise DataError(
            f"{path}: {len(absent)} of {len(names)} listed images have no file under {data_dir}/images_*/images/ "
            f"(e.g. {absent[0]}, line {seen[absent[0]]}); download the rest, or remove {LISTS['train']} and "
            f"{LISTS['test']} to train on the {len(files)} images present"
        )
    return _split(names, entries, files)


def read_dataset(data_dir: Path) -> tuple[Split, Split]:
    """The official train_val and test splits, a patient in both being an error; without split lists (Kaggle's
    sample, NIH's label file beside some of its image archives) every labelled image present is a training image
    and there is no test split."""
    data_dir = Path(data_dir)
    entries, files = read_entries(data_dir), image_files(data_dir)
    lists = [data_dir / LISTS[s] for s in ("train", "test")]
    if not any(p.exists() for p in lists):
        present = [name for name in entries.index if name in files]
        if not present:
            raise DataError(
                f"{data_dir}: none of the {len(entries)} images of {entries.attrs['path'].name} is under "
                f"{' or '.join(f'{p}/' for p in IMAGE_FOLDERS)}"
            )
        return _split(present, entries, files), _split([], entries, files)
    missing = [p for p in lists if not p.exists()]
    if missing:
        raise KitError(f"{missing[0]}: file not found (the official split lists come as a pair)")
    train, test = (read_split(data_dir, s, entries, files) for s in ("train", "test"))
    both = sorted(set(train.images) & set(test.images))
    if both:
        raise DataError(f"{data_dir}: image {both[0]} is in both {LISTS['train']} and {LISTS['test']}")
    shared = set(train.patients) & set(test.patients)
    if shared:
        raise DataError(f"{data_dir}: patient {sorted(shared)[0]} is in both {LISTS['train']} and {LISTS['test']}")
    return train, test
