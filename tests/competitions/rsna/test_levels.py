"""A spinal level point on Sagittal T2, carried through patient coordinates, lands on the axial slice that the
labelled lateral-recess point of the same level lies on: across series, and across angled per-disc stacks."""

import pandas as pd
import pytest

from kit.competitions.rsna.levels import nearest_slice, point_lps
from kit.competitions.rsna.tables import load_studies
from kit.data.dicom import read_stacks
from kit.errors import DataError


def test_sagittal_level_points_pick_the_axial_slice_of_their_disc(rsna_dir):
    coordinates = pd.read_csv(rsna_dir / "train_label_coordinates.csv")
    checked, exact = 0, 0
    for study in load_studies(rsna_dir, "train"):
        rows = coordinates[coordinates.study_id == study.study_id]
        axial = [s for folder in study.series["axial_t2"] for s in read_stacks(folder)]
        sagittal = {f.name: read_stacks(f)[0] for f in study.series["sag_t2"]}
        for level in rows.level.unique():
            spinal = rows[(rows.level == level) & (rows.condition == "Spinal Canal Stenosis")]
            recess = rows[(rows.level == level) & rows.condition.str.contains("Subarticular")]
            if spinal.empty or recess.empty:
                continue
            s, r = spinal.iloc[0], recess.iloc[0]
            point = point_lps(sagittal[str(s.series_id)], int(s.instance_number), s.x, s.y)
            hit = nearest_slice(point, axial)
            assert hit is not None and hit.distance_mm < 6.0
            # the labelled recess slice: its series, then the stack of that series holding its instance
            holder = next(
                a for a in axial if a.folder.name == str(r.series_id) and r.instance_number in a.instance_numbers
            )
            index = holder.instance_numbers.index(int(r.instance_number))
            assert abs((point - holder.positions[index]) @ holder.normal) < 6.0, "within a slice gap of the label"
            exact += axial[hit.stack] is holder and hit.slice == index
            checked += 1
    assert checked >= 30 and exact / checked >= 0.9, (exact, checked)


def test_an_unknown_instance_is_an_error_naming_the_series(rsna_dir):
    study = load_studies(rsna_dir, "train")[0]
    stack = read_stacks(study.series["sag_t2"][0])[0]
    with pytest.raises(DataError, match="no slice with InstanceNumber 9999"):
        point_lps(stack, 9999, 10.0, 10.0)
