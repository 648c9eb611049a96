import numpy as np
import pandas as pd
import pydicom
import pytest

from kit.cli import main
from kit.competitions.rsna.layout import COLUMNS, CONDITION_TITLES, LEVEL_TITLES, SEVERITY_LABELS, TARGETS, VIEWS
from kit.data.dicom import read_series

TITLE_TO_CONDITION = {title: name for name, title in CONDITION_TITLES.items()}
TITLE_TO_LEVEL = {title: name for name, title in LEVEL_TITLES.items()}
READ_ON = {"spinal": "Sagittal T2/STIR", "foraminal": "Sagittal T1", "subarticular": "Axial T2"}


def test_exact_csv_layout(rsna_dir):
    for name, columns in COLUMNS.items():
        assert tuple(pd.read_csv(rsna_dir / name).columns) == columns, name
    labels = pd.read_csv(rsna_dir / "train.csv")
    values = set(labels[list(TARGETS)].stack().dropna().unique())
    assert values <= set(SEVERITY_LABELS) and "Normal/Mild" in values
    assert labels[list(TARGETS)].isna().to_numpy().any()  # a few missing labels
    coords = pd.read_csv(rsna_dir / "train_label_coordinates.csv")
    assert set(coords.condition) == set(CONDITION_TITLES.values())
    assert set(coords.level) == set(LEVEL_TITLES.values())
    sample = pd.read_csv(rsna_dir / "sample_submission.csv")
    assert len(sample) == 25 * 3


def test_dicom_geometry_tags_and_variety(rsna_dir):
    series = pd.read_csv(rsna_dir / "train_series_descriptions.csv")
    assert set(series.series_description) == set(VIEWS)
    sizes, counts, out_of_order, first_numbers = set(), set(), 0, set()
    for row in series.itertuples():
        folder = rsna_dir / "train_images" / str(row.study_id) / str(row.series_id)
        files = list(folder.glob("*.dcm"))
        ds = pydicom.dcmread(files[0])
        for tag in (
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
            "SliceThickness",
            "InstanceNumber",
            "SeriesDescription",
            "Rows",
            "Columns",
            "RescaleSlope",
            "RescaleIntercept",
        ):
            assert tag in ds, (folder, tag)
        assert ds.SeriesDescription == row.series_description
        assert ds.StudyInstanceUID == str(row.study_id)
        volume = read_series(folder)
        sizes.add(volume.pixels.shape[1:])
        counts.add(len(files))
        numbers = volume.instance_numbers
        out_of_order += numbers != sorted(numbers) and numbers != sorted(numbers, reverse=True)
        first_numbers.add(min(numbers))
    assert len(sizes) > 1 and len(counts) > 1
    assert out_of_order > 0  # instance numbers need not follow spatial order
    assert first_numbers != {1}  # nor start at 1


def landmark_brightness(rsna_dir):
    """(condition group, severity, brightness of the 3x3 patch at the label's coordinate relative to its slice)."""
    labels = pd.read_csv(rsna_dir / "train.csv").set_index("study_id")
    coords = pd.read_csv(rsna_dir / "train_label_coordinates.csv")
    series = pd.read_csv(rsna_dir / "train_series_descriptions.csv").set_index("series_id")
    rows = []
    for c in coords.itertuples():
        target = f"{TITLE_TO_CONDITION[c.condition]}_{TITLE_TO_LEVEL[c.level]}"
        group = next(g for g in READ_ON if g in target)
        assert series.loc[c.series_id, "series_description"] == READ_ON[group]
        path = rsna_dir / "train_images" / str(c.study_id) / str(c.series_id) / f"{c.instance_number}.dcm"
        image = pydicom.dcmread(path).pixel_array.astype(float)
        x, y = int(round(c.x)), int(round(c.y))
        assert 0 <= x < image.shape[1] and 0 <= y < image.shape[0]
        # the canal narrows in its anterior-posterior extent (columns) around a centre that stays canal: its patch
        # spans that extent; a foramen or recess shrinks as a whole
        half = 3 if group == "spinal" else 1
        patch = image[max(y - 1, 0) : y + 2, max(x - half, 0) : x + half + 1].mean()
        rows.append((group, SEVERITY_LABELS.index(labels.loc[c.study_id, target]), patch / np.percentile(image, 99)))
    return pd.DataFrame(rows, columns=["group", "severity", "brightness"])


def test_coordinates_point_at_the_structure_that_encodes_the_label(rsna_dir):
    """A normal canal, foramen or recess is bright at its coordinate; narrowing makes it darker there."""
    frame = landmark_brightness(rsna_dir)
    assert len(frame) == pd.read_csv(rsna_dir / "train.csv")[list(TARGETS)].notna().to_numpy().sum()
    for group, rows in frame.groupby("group"):
        normal = rows.loc[rows.severity == 0, "brightness"]
        narrowed = rows.loc[rows.severity == 2, "brightness"]
        assert normal.median() > 0.6, group
        if len(narrowed):
            assert narrowed.median() < normal.median() - 0.15, group


def test_synth_cli_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "comp"
    assert main(["synth", "rsna", "--out", str(out), "--train", "2", "--test", "1"]) == 0
    marker = out / "train.csv"
    before = marker.read_bytes()
    assert main(["synth", "rsna", "--out", str(out), "--train", "2", "--seed", "5"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert marker.read_bytes() == before


@pytest.mark.parametrize("seed", [0, 1])
def test_same_seed_same_labels(tmp_path, seed):
    a = main(["synth", "rsna", "--out", str(tmp_path / "a"), "--train", "2", "--test", "1", "--seed", str(seed)])
    b = main(["synth", "rsna", "--out", str(tmp_path / "b"), "--train", "2", "--test", "1", "--seed", str(seed)])
    assert a == b == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a/train.csv"), pd.read_csv(tmp_path / "b/train.csv"))


def test_the_phantom_carries_the_real_datas_traps(rsna_dir):
    """Angled per-disc axial stacks inside one series folder, gaps from missing slices, and every label's slice kept."""
    from kit.data.dicom import read_stacks

    axial = [
        f
        for f in (rsna_dir / "train_images").glob("*/*")
        if "Axial" in pydicom.dcmread(next(f.iterdir())).SeriesDescription
    ]
    stacks = {f: read_stacks(f) for f in axial}
    angled = [f for f, found in stacks.items() if len(found) > 1]
    assert angled, "some axial series are one angled stack per disc"
    assert all({s.plane for s in stacks[f]} == {"axial"} for f in angled)
    coordinates = pd.read_csv(rsna_dir / "train_label_coordinates.csv")
    for row in coordinates.itertuples():
        assert (
            rsna_dir / "train_images" / str(row.study_id) / str(row.series_id) / f"{row.instance_number}.dcm"
        ).exists()


def test_real_sized_geometry_and_unknown_sizes(tmp_path, capsys):
    from kit.competitions.rsna.phantom import Pose
    from kit.competitions.rsna.synth import GEOMETRIES, axial_planes, sagittal_planes

    rng, pose = np.random.default_rng(0), Pose(np.zeros(3), 1.0, 0.0)
    for _ in range(5):
        sagittal = sagittal_planes(pose, rng, GEOMETRIES["real"])
        axial = axial_planes(pose, ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"], rng, True, GEOMETRIES["real"])
        assert 15 <= len(sagittal) <= 20 and 384 <= sagittal[0].shape[0] <= 512
        assert 20 <= len(axial) <= 50 and axial[0].shape[0] >= 320
    assert main(["synth", "mars", "--out", str(tmp_path / "m"), "--size", "real"]) == 2
    assert capsys.readouterr().err.strip() == "error: --size real: mars has default"
