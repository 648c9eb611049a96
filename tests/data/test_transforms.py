import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch

from kit.competitions.rsna.tables import load_studies
from kit.data import transforms
from kit.data.cache import cached_dataset
from kit.data.transforms import MissingViewWarning, study_preprocess

VIEWS = ("sag_t1", "sag_t2", "axial_t2")
SIZE = {"sag_t1": (8, 48, 48), "sag_t2": (8, 48, 48), "axial_t2": (10, 40, 40)}
AXCODES = {"sag_t1": "RIP", "sag_t2": "RIP", "axial_t2": "SPL"}


def items(rsna_dir, split):
    return [
        {"study_id": s.study_id, "series": {v: [str(p) for p in f] for v, f in s.series.items()}}
        for s in load_studies(rsna_dir, split)
    ]


def test_preprocess_shapes_and_range(rsna_dir):
    out = study_preprocess(VIEWS, SIZE, AXCODES)(items(rsna_dir, "train")[0])
    for view in VIEWS:
        assert tuple(out[view].shape) == (1, *SIZE[view])
        assert out[view].dtype == torch.float16
        assert float(out[view].min()) == 0.0 and float(out[view].max()) == 1.0
        assert out["present"][view]


def flip_columns(src, dst):
    """Rewrite a series as a scanner with the opposite row direction would store it."""
    dst.mkdir(parents=True)
    for path in src.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        orientation = [float(v) for v in ds.ImageOrientationPatient]
        row_dir = np.array(orientation[:3])
        shift = (ds.Columns - 1) * float(ds.PixelSpacing[1]) * row_dir
        ds.ImagePositionPatient = [float(v) + d for v, d in zip(ds.ImagePositionPatient, shift, strict=True)]
        ds.ImageOrientationPatient = [*(-row_dir).tolist(), *orientation[3:]]
        ds.PixelData = np.ascontiguousarray(ds.pixel_array[:, ::-1]).tobytes()
        ds.save_as(dst / path.name)


def test_orientation_is_canonical(rsna_dir, tmp_path):
    item = items(rsna_dir, "train")[0]
    flipped = {**item, "series": {**item["series"], "sag_t2": [str(tmp_path / "flipped")]}}
    flip_columns(Path(item["series"]["sag_t2"][0]), tmp_path / "flipped")
    preprocess = study_preprocess(VIEWS, SIZE, AXCODES)
    a, b = preprocess(item)["sag_t2"], preprocess(flipped)["sag_t2"]
    np.testing.assert_allclose(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), atol=2e-3)
    # Canonical axial images put the canal (bright on T2) posterior: below the middle row.
    axial = preprocess(item)["axial_t2"][0].float().mean(dim=(0, 2))
    assert int(axial.argmax()) > SIZE["axial_t2"][1] // 2


def test_missing_view_is_zero_filled_with_a_warning(rsna_dir):
    test_items = items(rsna_dir, "test")
    lacking = next(item for item in test_items if len(item["series"]) < 3)
    missing = next(v for v in VIEWS if v not in lacking["series"])
    with pytest.warns(MissingViewWarning, match=f"study {lacking['study_id']}: no {missing} series"):
        out = study_preprocess(VIEWS, SIZE, AXCODES)(lacking)
    assert tuple(out[missing].shape) == (1, *SIZE[missing])
    assert float(out[missing].abs().max()) == 0.0
    assert out["present"][missing] is False


def test_cache_decodes_dicom_once(rsna_dir, tmp_path, monkeypatch):
    calls = []
    real = transforms.read_view
    monkeypatch.setattr(transforms, "read_view", lambda folder: calls.append(folder) or real(folder))
    data = items(rsna_dir, "train")[:3]
    config = {"views": VIEWS, "size": SIZE}
    first = [x[VIEWS[0]] for x in cached_dataset(data, study_preprocess(VIEWS, SIZE, AXCODES), tmp_path, config)]
    decoded = len(calls)
    assert decoded >= 9
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = cached_dataset(data, study_preprocess(VIEWS, SIZE, AXCODES), tmp_path, config)  # a later epoch/run
        second = [x[VIEWS[0]] for x in again]
    assert len(calls) == decoded
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    other = cached_dataset(data, study_preprocess(VIEWS, SIZE, AXCODES), tmp_path, {**config, "size": "other"})
    other[0]
    assert len(calls) > decoded  # another preprocessing config does not reuse the cache


def test_cache_notices_dicoms_rewritten_in_place(rsna_dir, tmp_path):
    import shutil

    copy = tmp_path / "comp"
    shutil.copytree(rsna_dir, copy)
    data = items(copy, "train")[:1]
    config = {"views": VIEWS, "size": SIZE}
    cache = tmp_path / "cache"
    before = np.asarray(cached_dataset(data, study_preprocess(VIEWS, SIZE, AXCODES), cache, config)[0][VIEWS[0]])
    folder = Path(data[0]["series"][VIEWS[0]][0])
    for path in sorted(
        p for p in folder.rglob("*") if p.is_file()
    ):  # the same study, re-exported with other pixel values
        ds = pydicom.dcmread(path)
        ds.PixelData = (ds.pixel_array.max() - ds.pixel_array).astype(ds.pixel_array.dtype).tobytes()
        ds.save_as(path)
    after = np.asarray(cached_dataset(data, study_preprocess(VIEWS, SIZE, AXCODES), cache, config)[0][VIEWS[0]])
    assert not np.array_equal(before, after)
