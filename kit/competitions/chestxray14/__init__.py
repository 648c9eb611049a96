"""NIH ChestX-ray14 (Kaggle nih-chest-xrays/data): 14 findings, any number per frontal X-ray; folds over
train_val_list.txt that keep each patient on one side and spread rare findings (multi-label stratification over
patients); mean AUROC over the findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

from kit.competitions import register_competition
from kit.competitions.base import Competition
from kit.data.folds import load_or_make_folds
from kit.errors import KitError

from . import synth
from .table import FINDINGS, read_dataset, read_entries
from .training import ID, ChestTraining, auroc_scores


def patient_folds(patients: np.ndarray, labels: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    """Fold per image: patients (with the union of their images' findings) split by MultilabelStratifiedKFold."""
    unique, index = np.unique(patients, return_inverse=True)
    if len(unique) < n_splits:
        raise KitError(f"cannot make {n_splits} folds from {len(unique)} patients")
    per_patient = np.zeros((len(unique), labels.shape[1]), np.uint8)
    np.maximum.at(per_patient, index, labels)
    splitter = MultilabelStratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    patient_fold = np.full(len(unique), -1, np.int64)
    for fold, (_, valid) in enumerate(splitter.split(np.zeros(len(unique)), per_patient)):
        patient_fold[valid] = fold
    return patient_fold[index]


@register_competition
class ChestXray14(Competition):
    name = "chestxray14"
    slug = "nih-chest-xrays/data"
    id_column = ID
    training_class = ChestTraining
    synth_sizes = {"train": 300, "test": 60}

    def generate(self, out: Path, train: int, test: int, seed: int, force: bool) -> Path:
        return synth.generate(out, train, test, seed, force)

    def strata(self, data_dir: Path) -> pd.Series:
        """The number of findings per image (what a single-label splitter would balance; folds() does better)."""
        train, _ = read_dataset(data_dir)
        return pd.Series(train.labels.sum(axis=1), index=train.images)

    def folds(self, data_dir: Path, n_splits: int = 5, seed: int = 42) -> pd.Series:
        train, _ = read_dataset(data_dir)
        patients = len(set(train.patients))
        if patients < n_splits:
            entries = read_entries(data_dir)
            raise KitError(
                f"{data_dir}: {n_splits} folds need {n_splits} patients; the {len(train.images)} training images "
                f"present ({len(entries)} listed in {entries.attrs['path'].name}) come from {patients}: download "
                "more image archives, or set data.folds"
            )

        def split(ids, strata, groups, n, s):
            return patient_folds(train.patients, train.labels, n, s)

        folds = load_or_make_folds(self.folds_path(data_dir), train.images, None, None, n_splits, seed, split)
        by_position = pd.Series(folds.to_numpy(), index=range(len(train.images)), name="fold")
        by_position.attrs = folds.attrs  # the folds file's path
        return by_position

    def score(self, solution: pd.DataFrame, submission: pd.DataFrame) -> dict[str, float]:
        """The solution holds Image Index and either Finding Labels (as in Data_Entry_2017.csv) or one 0/1 column
        per finding; the submission one probability column per finding."""
        problems = self.validate(submission)
        if problems:
            raise KitError("submission: " + "; ".join(problems))
        if ID not in solution.columns:
            raise KitError(f"solution: no {ID!r} column")
        truth = self._truth(solution)
        merged = truth.merge(submission.set_index(ID), "left", left_index=True, right_index=True, suffixes=("", "_p"))
        absent = merged[f"{FINDINGS[0]}_p"].isna()
        if absent.any():
            raise KitError(
                f"submission: no row for {int(absent.sum())} image(s) of the solution, e.g. {merged.index[absent][0]!r}"
            )
        probs = merged[[f"{f}_p" for f in FINDINGS]].to_numpy(np.float64)
        return auroc_scores(merged[list(FINDINGS)].to_numpy(np.uint8), probs)

    @staticmethod
    def _truth(solution: pd.DataFrame) -> pd.DataFrame:
        from .table import parse_findings

        if "Finding Labels" in solution.columns:
            rows = [parse_findings(str(t), f"solution row {r}") for r, t in enumerate(solution["Finding Labels"])]
            return pd.DataFrame(np.stack(rows), index=solution[ID].astype(str), columns=list(FINDINGS))
        missing = [f for f in FINDINGS if f not in solution.columns]
        if missing:
            raise KitError(f"solution: neither 'Finding Labels' nor a 0/1 column per finding (missing {missing[0]})")
        values = solution[list(FINDINGS)]
        bad = ~values.isin([0, 1])
        if bad.to_numpy().any():
            row, column = np.argwhere(bad.to_numpy())[0]
            raise KitError(
                f"solution: row {row}, column {FINDINGS[column]!r}: {values.iat[row, column]!r} is not 0 or 1"
            )
        return values.set_axis(solution[ID].astype(str)).astype(np.uint8)

    def validate(self, submission: pd.DataFrame, sample: pd.DataFrame | None = None) -> list[str]:
        missing = [c for c in [ID, *FINDINGS] if c not in submission.columns]
        if missing:
            return [f"no column(s) {', '.join(map(repr, missing))}"]
        if submission.empty:
            return ["no rows"]
        problems = []
        if submission[ID].duplicated().any():
            problems.append(f"repeated {ID} {submission[ID][submission[ID].duplicated()].iloc[0]!r}")
        values = submission[list(FINDINGS)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            value = submission[FINDINGS[column]].iloc[row]
            problems.append(f"row {row}, column {FINDINGS[column]!r}: {value!r} is not a probability in [0, 1]")
        if sample is not None:
            expected, got = set(sample[ID].astype(str)), set(submission[ID].astype(str))
            if expected != got:
                problems.append(
                    f"images differ from the sample's: {len(expected - got)} missing, {len(got - expected)} extra"
                )
        return problems

    def test_row_ids(self, data_dir: Path, limit: int | None = None) -> list[str]:
        return read_dataset(data_dir)[1].images[:limit]
