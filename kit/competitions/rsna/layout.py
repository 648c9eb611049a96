"""Names, label strings and file layout of RSNA 2024 Lumbar Spine Degenerative Classification."""

from __future__ import annotations

SLUG = "rsna-2024-lumbar-spine-degenerative-classification"

CONDITIONS = (
    "spinal_canal_stenosis",
    "left_neural_foraminal_narrowing",
    "right_neural_foraminal_narrowing",
    "left_subarticular_stenosis",
    "right_subarticular_stenosis",
)
LEVELS = ("l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1")
TARGETS = tuple(f"{condition}_{level}" for condition in CONDITIONS for level in LEVELS)

SEVERITY_LABELS = ("Normal/Mild", "Moderate", "Severe")
SEVERITY_COLUMNS = ("normal_mild", "moderate", "severe")
SEVERITY_WEIGHTS = (1.0, 2.0, 4.0)
MISSING = -1

# train_label_coordinates.csv spells conditions in title case and levels as "L1/L2".
CONDITION_TITLES = {condition: condition.replace("_", " ").title() for condition in CONDITIONS}
LEVEL_TITLES = {level: level.upper().replace("_", "/") for level in LEVELS}

# The series description each condition is read on, and the short view name the kit uses for it.
VIEWS = {"Sagittal T1": "sag_t1", "Sagittal T2/STIR": "sag_t2", "Axial T2": "axial_t2"}
VIEW_OF_CONDITION = {
    "spinal_canal_stenosis": "sag_t2",
    "left_neural_foraminal_narrowing": "sag_t1",
    "right_neural_foraminal_narrowing": "sag_t1",
    "left_subarticular_stenosis": "axial_t2",
    "right_subarticular_stenosis": "axial_t2",
}
METRIC_GROUPS = ("spinal", "foraminal", "subarticular")

TRAIN_CSV = "train.csv"
COORDINATES_CSV = "train_label_coordinates.csv"
TRAIN_SERIES_CSV = "train_series_descriptions.csv"
TEST_SERIES_CSV = "test_series_descriptions.csv"
SAMPLE_SUBMISSION_CSV = "sample_submission.csv"
ORACLE_CSV = "oracle.csv"  # the phantom's true label probabilities (kit synth only; no real competition has one)
IMAGE_DIRS = {"train": "train_images", "test": "test_images"}
SERIES_CSVS = {"train": TRAIN_SERIES_CSV, "test": TEST_SERIES_CSV}

COLUMNS = {
    TRAIN_CSV: ("study_id", *TARGETS),
    COORDINATES_CSV: ("study_id", "series_id", "instance_number", "condition", "level", "x", "y"),
    TRAIN_SERIES_CSV: ("study_id", "series_id", "series_description"),
    TEST_SERIES_CSV: ("study_id", "series_id", "series_description"),
    SAMPLE_SUBMISSION_CSV: ("row_id", *SEVERITY_COLUMNS),
}


def row_id(study_id: int | str, target: str) -> str:
    return f"{study_id}_{target}"
