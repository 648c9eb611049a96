"""DICOM geometry that holds on real data: a folder split into stacks (series UID × orientation), gaps reported,
mosaics and position-less series refused, each stack's own pixel <-> patient mapping. Checked on a real Siemens
sagittal series (../shared/data) against the geometry its README states, and on pydicom's bundled MR file."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from kit.data.dicom import read_series, read_stacks
from kit.errors import DataError
from tests.test_cli_errors import assert_one_line_error

from .test_dicom import write_series, write_spot_stack

SIEMENS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "dicom-siemens-sag-t1"
real = pytest.mark.skipif(not SIEMENS.is_dir(), reason=f"real DICOM series absent ({SIEMENS})")


def instance(path: Path) -> int:
    return int(pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber)


@real
def test_the_real_siemens_series_is_one_stack_with_its_stated_geometry():
    (stack,) = read_stacks(SIEMENS)
    assert stack.pixels.shape == (35, 256, 256) and stack.plane == "sagittal"
    assert stack.slice_spacing == pytest.approx(4.8, abs=1e-3) and stack.gaps == []
    assert stack.pixel_spacing == pytest.approx((1.015625, 1.015625))
    by_instance = dict(zip(stack.instance_numbers, stack.positions[:, 0], strict=True))
    assert by_instance[1] == pytest.approx(-81.6, abs=0.1) and by_instance[35] == pytest.approx(81.6, abs=0.1)
    assert np.allclose(np.abs(np.diff(stack.positions[:, 0])), 4.8, atol=1e-3), "ordered along the normal"

    # pixel -> patient: column runs along the row direction (+y, anterior->posterior), row along -z (down)
    corner = stack.voxel_to_lps(3, 0, 0)
    np.testing.assert_allclose(corner, stack.positions[3])
    np.testing.assert_allclose(stack.voxel_to_lps(3, 10, 20) - corner, [0, 20 * 1.015625, -10 * 1.015625], atol=1e-6)
    rng = np.random.default_rng(0)
    for k, r, c in rng.uniform([-1, 0, 0], [35, 256, 256], size=(20, 3)):
        np.testing.assert_allclose(stack.lps_to_voxel(stack.voxel_to_lps(k, r, c)), [k, r, c], atol=1e-6)


@real
def test_a_gap_is_reported_not_averaged_away(tmp_path, kit_here):
    folder = tmp_path / "gap"
    folder.mkdir()
    for path in SIEMENS.glob("*.dcm"):
        if not 10 <= instance(path) <= 14:
            shutil.copy(path, folder / path.name)
    (stack,) = read_stacks(folder)
    assert len(stack.pixels) == 30 and stack.slice_spacing == pytest.approx(4.8, abs=1e-3)
    assert [(i, round(mm, 1)) for i, mm in stack.gaps] == [(20, 28.8)]
    # a point in the gap maps between the two slices around it, at its true depth
    middle = (stack.positions[20] + stack.positions[21]) / 2
    assert stack.lps_to_voxel(middle)[0] == pytest.approx(20.5)
    report = kit_here(["inspect", str(folder)], tmp_path)
    assert "28.8 mm after slice 21" in report.stdout and "slice spacing    4.8 mm" in report.stdout


@real
def test_a_folder_mixing_series_and_orientations_is_split_not_merged(tmp_path, kit_here):
    folder = tmp_path / "mixed"
    shutil.copytree(SIEMENS, folder)
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "axial.dcm")
    stacks = read_stacks(folder)
    assert sorted((s.plane, len(s.pixels)) for s in stacks) == [("axial", 1), ("sagittal", 35)]
    with pytest.raises(DataError, match=r"mixed: holds 2 stacks of different orientations \(.*sagittal 35 slices"):
        read_series(folder)
    report = kit_here(["inspect", str(folder)], tmp_path)
    assert report.returncode == 0 and "stack            2 of 2" in report.stdout


def test_slices_sharing_one_position_are_an_error_unless_asked_for(tmp_path, kit_here):
    folder = tmp_path / "mosaic"
    folder.mkdir()
    for k in range(3):  # the same position three times, as a Siemens mosaic or a repeated acquisition gives
        shutil.copy(get_testdata_file("MR_small.dcm"), folder / f"{k}.dcm")
    with pytest.raises(DataError, match=r"mosaic: 3 of 3 slices of series .* share one position"):
        read_stacks(folder)
    assert len(read_stacks(folder, single_images=True)[0].pixels) == 3
    failed = kit_here(["inspect", str(folder)], tmp_path)
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and "share one position" in failed.stderr


def test_a_series_without_position_tags_is_an_error_naming_the_folder(tmp_path):
    folder = write_series(tmp_path / "nopos", [0.0, 3.5, 7.0], [1, 2, 3])
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        ds.save_as(path)
    with pytest.raises(DataError, match=r"nopos: 3 slices of series 2 lack ImagePositionPatient"):
        read_series(folder)


def test_angled_stacks_inside_one_series_are_separate_stacks_of_one_view(tmp_path):
    """An axial series acquired as two stacks tilted 20° apart (one per disc), in one folder with one UID."""
    folder = tmp_path / "axial"
    write_spot_stack(folder / "a", (-32.0, -32.0), 1.0, (32, 32), [0.0, 4.0, 8.0], (0.0, 0.0))
    write_spot_stack(folder / "b", (-32.0, -32.0), 1.0, (32, 32), [40.0, 44.0], (0.0, 0.0), tilt=np.radians(20))
    for sub, offset in (("a", 0), ("b", 10)):
        for path in (folder / sub).glob("*.dcm"):
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = int(ds.InstanceNumber) + offset
            ds.save_as(folder / f"{sub}{path.name}")
        shutil.rmtree(folder / sub)
    stacks = read_stacks(folder)
    assert [len(s.pixels) for s in stacks] == [3, 2] and {s.plane for s in stacks} == {"axial"}
    assert not np.allclose(stacks[0].normal, stacks[1].normal), "each stack keeps its own orientation"
    assert len(read_series(folder).pixels) == 5, "one view: merged onto the first stack's grid"
    # a slightly tilted slice (2°, inside the tolerance) stays in its stack
    write_spot_stack(tmp_path / "c", (-32.0, -32.0), 1.0, (32, 32), [0.0, 4.0], (0.0, 0.0), tilt=np.radians(2))
    assert len(read_stacks(tmp_path / "c")) == 1


def test_a_labelled_point_outside_its_image_is_one_error_line(kit_here, rsna_dir, tmp_path):
    data = tmp_path / "rsna"
    shutil.copytree(rsna_dir, data)
    coordinates = pd.read_csv(data / "train_label_coordinates.csv")
    coordinates.loc[0, "x"] = 4000.0
    coordinates.to_csv(data / "train_label_coordinates.csv", index=False)
    tiny = ["data.folds=2", "data.size=32", "data.slices=2", "trainer.epochs=1", "trainer.batch_size=2"]
    result = kit_here(["train-fold", "--exp", "rsna_unet", f"data.dir={data}", *tiny], tmp_path)
    assert_one_line_error(result, "x=4000", f"instance {coordinates.loc[0, 'instance_number']}", "lies outside its")
