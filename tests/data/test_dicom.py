import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from kit.cli import main
from kit.competitions.rsna.synth import Plane, write_slice
from kit.data.dicom import Series, merge_series, read_series, read_slice
from kit.errors import DataError

META = {"study_id": 1, "series_id": 2, "description": "Sagittal T1", "thickness": 3.0, "gap": 3.5}


def write_series(folder, z_positions, numbers, slope=1.0, intercept=0.0):
    """One slice per z position (axial, normal +z); slice i is filled with 10 * (its z rank + 1) + its row index."""
    folder.mkdir(parents=True, exist_ok=True)
    ranks = np.argsort(np.argsort(z_positions))
    for z, number, rank in zip(z_positions, numbers, ranks, strict=True):
        plane = Plane(np.array([-10.0, -20.0, z]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), 0.5, (6, 5))
        pixels = 10.0 * (rank + 1) + np.arange(6, dtype=np.float32)[:, None].repeat(5, axis=1)
        meta = {**META, "slope": slope, "intercept": intercept, "instance_number": number}
        write_slice(folder / f"{number}.dcm", pixels, plane, meta)
    return folder


def test_slices_ordered_by_position_not_instance_number(tmp_path):
    rng = np.random.default_rng(0)
    z = rng.permutation(np.arange(9) * 3.5 - 10)  # files written in shuffled spatial order
    numbers = rng.permutation(np.arange(40, 49))  # instance numbers unrelated to position
    series = read_series(write_series(tmp_path / "s", z, numbers))
    np.testing.assert_allclose(series.pixels[:, 0, 0], 10.0 * np.arange(1, 10))
    np.testing.assert_allclose(series.positions[:, 2], np.sort(z))
    assert series.instance_numbers == [int(numbers[i]) for i in np.argsort(z)]
    assert series.slice_spacing == pytest.approx(3.5)
    assert series.plane == "axial"


def write_spot_stack(folder, corner, spacing, shape, z_positions, spot, tilt=0.0):
    """Axial-ish slices (tilted by `tilt` radians about x) showing one bright Gaussian spot at world (x, y) `spot`."""
    folder.mkdir(parents=True, exist_ok=True)
    col_dir = np.array([0.0, np.cos(tilt), np.sin(tilt)])
    for number, z in enumerate(z_positions, start=1):
        plane = Plane(np.array([corner[0], corner[1], z]), np.array([1.0, 0, 0]), col_dir, spacing, shape)
        world = plane.points()
        pixels = 1000.0 * np.exp(-((world[..., 0] - spot[0]) ** 2 + (world[..., 1] - spot[1]) ** 2) / 8.0)
        write_slice(folder / f"{number}.dcm", pixels, plane, {**META, "instance_number": number, "slope": 1.0,
                                                               "intercept": 0.0})  # fmt: skip
    return read_series(folder)


def test_merged_stacks_share_the_first_ones_pixel_grid(tmp_path):
    """A second stack with another field of view, matrix, spacing and a slight tilt is resampled onto the first
    stack's grid: the same anatomy (a spot at world x=5, y=-8) lands on the same pixel in every merged slice."""
    spot = (5.0, -8.0)
    first = write_spot_stack(tmp_path / "a", (-32.0, -32.0), 1.0, (64, 64), [0.0, 4.0, 8.0], spot)
    second = write_spot_stack(tmp_path / "b", (-41.0, -27.0), 1.6, (48, 56), [20.0, 24.0], spot, tilt=0.05)
    merged = merge_series([second, first][::-1])
    assert merged.pixels.shape == (5, 64, 64)
    np.testing.assert_allclose(merged.positions[:, 2], [0, 4, 8, 20, 24], atol=1e-6)
    for image in merged.pixels:
        row, col = np.unravel_index(np.argmax(image), image.shape)
        assert abs(row - (spot[1] + 32)) <= 1 and abs(col - (spot[0] + 32)) <= 1
        assert image.max() > 500
    np.testing.assert_allclose(merged.positions[3:, :2], [[-32.0, -32.0]] * 2, atol=1e-6)  # the first grid's origin


def test_rescale_slope_and_intercept_applied(tmp_path):
    series = read_series(write_series(tmp_path / "s", [0.0, 4.0], [1, 2], slope=2.0, intercept=-100.0))
    np.testing.assert_allclose(series.pixels[0, :, 0], 10 + np.arange(6), atol=1.0)  # stored (v+100)/2, read back v


TRANSFER_SYNTAXES = {
    "MR_small.dcm": "Explicit VR Little Endian",
    "MR_small_implicit.dcm": "Implicit VR Little Endian",
    "MR_small_bigendian.dcm": "Explicit VR Big Endian",
    "MR_small_RLE.dcm": "RLE Lossless",
    "MR_small_jpeg_ls_lossless.dcm": "JPEG-LS Lossless",
    "MR_small_jp2klossless.dcm": "JPEG 2000",
}


@pytest.mark.parametrize("name", list(TRANSFER_SYNTAXES))
def test_inspect_reads_pydicom_transfer_syntaxes(tmp_path, capsys, name):
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(get_testdata_file(name), folder / "1.dcm")
    assert main(["inspect", str(folder)]) == 0
    report = {line[:16].strip(): line[16:].strip() for line in capsys.readouterr().out.splitlines()}
    assert TRANSFER_SYNTAXES[name] in report["transfer syntax"]
    assert report["slices"] == "1"
    assert report["rows x columns"] == "64 x 64"
    assert report["pixel spacing"] == "0.3125 x 0.3125 mm"
    assert report["intensity"] == "127 .. 2145"  # every decoder yields the same pixels
    assert report["orientation"].startswith("axial")


def test_inspect_synthetic_series(rsna_dir, capsys):
    folder = next((rsna_dir / "train_images").glob("*/*"))
    assert main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    for field in ("slices", "rows x columns", "pixel spacing", "slice spacing", "orientation", "description"):
        assert field in out


@pytest.mark.parametrize("degrees", [0.0, 12.5, 20.0])
def test_tilt_is_the_angle_between_the_slices_and_their_plane(degrees):
    """By hand: rows along x, columns turned by θ from y towards z, so the normal is (0, -sin θ, cos θ)."""
    theta = np.radians(degrees)
    orientation = np.array([1.0, 0.0, 0.0, 0.0, np.cos(theta), np.sin(theta)])
    series = Series(Path("s"), np.zeros((1, 2, 2), np.float32), np.zeros((1, 3)), orientation, (1.0, 1.0), 1.0,
                    [1], "Axial T2")  # fmt: skip
    assert series.plane == "axial" and series.tilt == pytest.approx(degrees, abs=1e-6)


REAL_STUDY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "rsna-2024-lumbar" / "train_images"


@pytest.mark.skipif(not REAL_STUDY.is_dir(), reason="../shared/data/rsna-2024-lumbar is absent")
def test_inspect_lists_the_real_axial_series_stacks_with_their_tilts_and_gaps(capsys):
    assert main(["inspect", str(REAL_STUDY / "100206310" / "1012284084")]) == 0
    out = capsys.readouterr().out
    stacks = [line for line in out.splitlines() if line.startswith("stack ")]
    tilts = [float(line.split()[1].rstrip("°")) for line in out.splitlines() if line.startswith("tilt ")]
    assert [s.split()[-1] for s in stacks] == ["4"] * 4 and len(tilts) == 4
    assert max(tilts) > 25 and min(tilts) < 8, "the stacks are angled along different discs"
    assert "mm after slice" in out, "a stack with a gap names it"


def test_non_dicom_file(tmp_path, capsys):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "1.dcm").write_text("this is not a DICOM file\n" * 20)
    with pytest.raises(DataError, match=r"1\.dcm: not a DICOM file"):
        read_series(folder)
    assert main(["inspect", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "1.dcm" in err and "Traceback" not in err


@pytest.mark.parametrize("keep", [0.3, 0.97])
def test_truncated_file(tmp_path, keep):
    folder = write_series(tmp_path / "s", [0.0, 4.0], [1, 2])
    data = (folder / "2.dcm").read_bytes()
    (folder / "2.dcm").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"2\.dcm: unreadable DICOM"):
        read_series(folder)


def test_folder_without_dicom(tmp_path, capsys):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="holds no DICOM"):
        read_series(folder)
    assert main(["inspect", str(folder)]) == 2
    assert "holds no DICOM" in capsys.readouterr().err


def test_read_slice_geometry(tmp_path):
    folder = write_series(tmp_path / "s", [7.0], [3])
    s = read_slice(folder / "3.dcm")
    np.testing.assert_allclose(s.position, [-10, -20, 7])
    assert s.pixel_spacing == (0.5, 0.5) and s.instance_number == 3 and s.description == "Sagittal T1"
