"""Copies of a real test study, each broken as a hidden test study may be: what the notebook must survive."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom
from pydicom.uid import ExplicitVRLittleEndian

SERIES_CSV = "test_series_descriptions.csv"


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve(), target_is_directory=True)


def damaged_copies(real: Path, out: Path) -> dict[int, str]:
    """out/ in the competition's layout (the real train CSVs, so that the reader finds them) with one test study per
    damage, numbered from the real study's id + 1; returns {study_id: damage}."""
    out.mkdir(parents=True)
    for csv in ("train.csv", "train_series_descriptions.csv", "sample_submission.csv"):
        shutil.copy(real / csv, out / csv)
    rows = pd.read_csv(real / SERIES_CSV)
    study = int(rows["study_id"].iloc[0])
    by_view = {r.series_description: int(r.series_id) for r in rows.itertuples()}
    source = real / "test_images" / str(study)
    damages = ["a series listed but absent", "a study without one of its series", "a series of one slice",
               "an extra series of an unknown description", "series whose orientation contradicts their description",
               "another transfer syntax", "every series listed but absent"]  # fmt: skip
    listing = []
    for k in range(1, len(damages) + 1):
        sid, folder = study + k, out / "test_images" / str(study + k)
        series = {desc: series_id for desc, series_id in by_view.items()}
        descriptions = {series_id: desc for desc, series_id in series.items()}
        for desc, series_id in series.items():
            if k == 1 and desc == "Axial T2" or k == 7:
                continue  # listed below, never written
            if k == 2 and desc == "Sagittal T2/STIR":
                descriptions.pop(series_id)
                continue
            if k == 3 and desc == "Sagittal T1":
                files = sorted((source / str(series_id)).glob("*.dcm"), key=lambda p: int(p.stem))
                (folder / str(series_id)).mkdir(parents=True)
                shutil.copy(files[len(files) // 2], folder / str(series_id) / files[len(files) // 2].name)
                continue
            if k == 6 and desc == "Sagittal T1":
                (folder / str(series_id)).mkdir(parents=True)
                for path in (source / str(series_id)).glob("*.dcm"):
                    ds = pydicom.dcmread(path)
                    ds.decompress()  # RLE Lossless -> Explicit VR Little Endian, uncompressed
                    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
                    ds.save_as(folder / str(series_id) / path.name)
                continue
            _link(source / str(series_id), folder / str(series_id))
        if k == 4:
            _link(source / str(series["Axial T2"]), folder / "1")
            descriptions[1] = "Coronal T2"
        if k == 5:
            axial, sagittal = series["Axial T2"], series["Sagittal T2/STIR"]
            descriptions[axial], descriptions[sagittal] = "Sagittal T2/STIR", "Axial T2"
        listing += [{"study_id": sid, "series_id": s, "series_description": d} for s, d in descriptions.items()]
    pd.DataFrame(listing).to_csv(out / SERIES_CSV, index=False)
    return {study + k: damage for k, damage in enumerate(damages, start=1)}
