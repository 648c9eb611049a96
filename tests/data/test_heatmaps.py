import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from kit.competitions.rsna.layout import CONDITIONS, COORDINATES_CSV, LEVELS, TARGETS
from kit.competitions.rsna.tables import landmark_points, load_studies, read_coordinates
from kit.competitions.rsna.training import augmentation
from kit.data.heatmaps import gaussian_heatmaps, spatial_softmax_loss
from kit.data.transforms import study_preprocess
from kit.errors import DataError

VIEWS = ("sag_t1", "sag_t2", "axial_t2")
SIZE = {"sag_t1": (6, 64, 64), "sag_t2": (6, 64, 64), "axial_t2": (6, 64, 64)}
AXCODES = {"sag_t1": "RIP", "sag_t2": "RIP", "axial_t2": "SPL"}


def test_level_points_land_on_the_canal_in_the_resampled_sagittal_t2(rsna_dir):
    """The spinal canal is the brightest tissue on T2: every projected level point must sit on it, top to bottom."""
    points = landmark_points(rsna_dir, ["spinal_canal_stenosis"])
    preprocess = study_preprocess(VIEWS, SIZE, AXCODES)
    checked = 0
    for study in load_studies(rsna_dir, "train")[:4]:
        assert set(points[study.study_id]) == {"sag_t2"}
        item = {**study.as_item(), "points": points[study.study_id]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = preprocess(item)
        projected = out["points"]["sag_t2"]
        image = np.asarray(out["sag_t2"][0], dtype=np.float32)
        labelled = sorted(point[0] for point in points[study.study_id]["sag_t2"])  # a study may miss a label
        assert sorted(projected[:, 0].tolist()) == labelled and len(labelled) >= 3
        rows = projected[np.argsort(projected[:, 0]), 2]
        assert np.all(np.diff(rows) > 5), "L1/L2 lies above L5/S1, levels evenly apart"
        for _, slice_, row, col in projected:
            assert 0 <= slice_ <= SIZE["sag_t2"][0] - 1
            plane = image[int(round(slice_))]
            assert plane[int(round(row)), int(round(col))] > 0.8 > plane.mean() + 0.4
            checked += 1
        assert out["points"]["sag_t1"].shape == (0, 4)
    assert checked == sum(len(points[s.study_id]["sag_t2"]) for s in load_studies(rsna_dir, "train")[:4])


def test_every_condition_lands_on_its_tissue_on_its_side(rsna_dir):
    """All 25 condition × level channels: foramina on Sagittal T1 (bright there), lateral recesses on Axial T2, each
    on the patient's correct side (sagittal slices run towards the right, axial columns towards the left)."""
    points = landmark_points(rsna_dir, CONDITIONS)
    preprocess = study_preprocess(VIEWS, SIZE, AXCODES)
    oracle = pd.read_csv(rsna_dir / "oracle.csv").set_index("row_id")["normal_mild"].to_dict()
    n = len(LEVELS)
    for study in load_studies(rsna_dir, "train")[:3]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = preprocess({**study.as_item(), "points": points[study.study_id]})
        for view, conditions in (("sag_t2", [0]), ("sag_t1", [1, 2]), ("axial_t2", [3, 4])):
            projected = out["points"][view]
            channels = projected[:, 0].astype(int)
            assert set(channels // n) <= set(conditions) and len(channels) == len(points[study.study_id][view])
            image = np.asarray(out[view][0], dtype=np.float32)
            for channel, _, row, col in projected:  # a structure the phantom did not narrow is bright at its point
                peak = image[:, int(round(row)), int(round(col))].max()
                normal = oracle.get(f"{study.study_id}_{TARGETS[int(channel)]}", 0.0) > 0.95
                assert peak > (0.6 if normal else 0.45) and peak > image.mean() + 0.2
        sag_t1, axial = out["points"]["sag_t1"], out["points"]["axial_t2"]
        left_slices, right_slices = (sag_t1[sag_t1[:, 0] // n == c, 1] for c in (1, 2))
        assert left_slices.max() < right_slices.min()
        left_cols, right_cols = (axial[axial[:, 0] // n == c, 3] for c in (3, 4))
        assert left_cols.min() > right_cols.max()


def test_coordinates_errors_name_the_row(rsna_dir, tmp_path):
    frame = pd.read_csv(rsna_dir / COORDINATES_CSV)
    assert set(read_coordinates(rsna_dir)["level"]) <= set(range(len(LEVELS)))
    frame.loc[3, "level"] = "L6/S2"
    (tmp_path / COORDINATES_CSV).write_text(frame.to_csv(index=False))
    with pytest.raises(DataError, match=r"row 5 .*unknown level 'L6/S2'"):
        read_coordinates(tmp_path)
    frame = pd.read_csv(rsna_dir / COORDINATES_CSV)
    frame.loc[0, "x"] = np.nan
    (tmp_path / COORDINATES_CSV).write_text(frame.to_csv(index=False))
    with pytest.raises(DataError, match="row 2 .*x or y is empty"):
        read_coordinates(tmp_path)


def test_gaussian_heatmaps_peak_at_the_points():
    maps = gaussian_heatmaps(np.array([[0, 1, 10.0, 20.0], [2, 0, 5.4, 3.0]]), 3, (32, 40), sigma=2.0)
    assert maps.shape == (3, 32, 40)
    assert np.unravel_index(maps[0].argmax(), maps[0].shape) == (10, 20) and maps[0].max() == pytest.approx(1.0)
    assert np.unravel_index(maps[2].argmax(), maps[2].shape) == (5, 3)
    assert not maps[1].any()


def test_spatial_softmax_loss_prefers_the_right_place_and_skips_empty_channels():
    target = torch.from_numpy(gaussian_heatmaps(np.array([[0, 0, 8.0, 8.0]]), 2, (16, 16), 1.5))[None]
    right = target.clone() * 10
    wrong = torch.roll(target, shifts=5, dims=-1) * 10
    assert spatial_softmax_loss(right, target) < spatial_softmax_loss(wrong, target)
    # channel 1 has no landmark: changing its logits changes nothing
    noisy = right.clone()
    noisy[:, 1] = torch.randn(16, 16) * 5
    assert spatial_softmax_loss(noisy, target) == pytest.approx(float(spatial_softmax_loss(right, target)))
    half = spatial_softmax_loss(right[..., ::2, ::2], target)  # coarser logits: the target is resized to them
    assert torch.isfinite(half)
    empty = torch.zeros_like(target)
    logits = torch.randn_like(target, requires_grad=True)
    loss = spatial_softmax_loss(logits, empty)
    loss.backward()
    assert loss == 0 and not logits.grad.any()


def test_augmentation_moves_heatmaps_with_the_image():
    maps = torch.from_numpy(gaussian_heatmaps(np.array([[0, 0, 20.0, 30.0]]), 1, (64, 64), 2.0))
    image = torch.cat([maps, torch.zeros(2, 64, 64)])  # channel 0 of the image is the heatmap itself
    moved = 0
    for seed in range(8):
        out = augmentation(seed)({"image": image.clone(), "heatmap": maps.clone()})
        img_peak = np.unravel_index(int(out["image"][0].argmax()), (64, 64))
        map_peak = np.unravel_index(int(out["heatmap"][0].argmax()), (64, 64))
        assert img_peak == map_peak
        assert float(out["heatmap"].max()) <= 1.0 + 1e-5, "intensity changes leave heatmaps alone"
        moved += map_peak != (20, 30)
    assert moved >= 3
