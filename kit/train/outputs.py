"""After training: OOF merged over finished folds, and test predictions averaged over trained folds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from kit import paths
from kit.competitions.parts import Oracle, gap_closed
from kit.errors import KitError
from kit.io import write_text_atomic
from kit.ledger import record_written
from kit.runtime import clock
from kit.runtime.inference import fold_average
from kit.train.run import Run

TIMINGS_FILE = "timings.json"  # seconds per stage of the last test prediction, and the samples it covered


def test_predictions_path(run: Run, training) -> Path:
    """runs/<exp>/test_pred.* : the fold-averaged test probabilities, in the OOF's format (for stacking)."""
    return run.root / training.test_file()


def merge_oof(run: Run) -> tuple[Path, dict[str, float], int]:
    """runs/<exp>/oof.* from the finished folds only (rows of untrained folds are absent), and its CV metric's parts
    (the official one named under 'metric'), scored against the labels of the data the folds were trained on."""
    _, training, folds = run.prepare()
    missing = [f.name for f in run.folds if not (f / training.oof_file).exists()]
    if missing:
        raise KitError(f"{run.root}: {', '.join(missing)} finished without {training.oof_file}; retrain them")
    parts = [training.load_predictions(f / training.oof_file) for f in run.folds]
    ids = [i for part_ids, _ in parts for i in part_ids]
    probs = np.concatenate([part_probs for _, part_probs in parts])
    scores = {**training.evaluate(ids, probs), **against_prior_and_oracle(training, folds, parts, ids, probs)}
    path = run.root / training.oof_file
    training.save_predictions(path, ids, probs)
    cv = {"metric": training.metric_name, "folds": [f.name for f in run.folds], "data": run.data_record(), **scores}
    write_text_atomic(path.parent / "cv.json", json.dumps(cv, indent=1))
    return path, {"metric": training.metric_name, **scores}, len(run.folds)


def against_prior_and_oracle(training, folds, parts: list, ids: list, probs: np.ndarray) -> dict[str, float]:
    """The CV's yardsticks on the same rows: the prior baseline (each fold's class frequencies of its own training
    rows) and, on a phantom, the oracle, with the regret (model - oracle) / (prior - oracle)."""
    metric = training.metric_name
    priors = []
    for part_ids, _ in parts:
        prior = training.prior(folds.index[~folds.index.isin(part_ids)].tolist())
        priors.append(np.broadcast_to(prior, (len(part_ids), *prior.shape)))
    out = {f"prior_baseline_{metric}": training.evaluate(ids, np.concatenate(priors))[metric]}
    truth = training.oracle(ids) if isinstance(training, Oracle) else None
    if truth is not None:
        out[f"oracle_{metric}"] = training.evaluate(ids, truth)[metric]
        out.update(gap_closed(training.evaluate(ids, probs)[metric], out[f"prior_baseline_{metric}"],
                              out[f"oracle_{metric}"]))  # fmt: skip
    return out


def trained_fold(run: Run, fold: int):
    """A finished fold's folder, the run's config, the training object and the folds."""
    folder = run.fold(fold).path
    _, training, folds = run.prepare()
    return folder, run.config, training, folds


def predict_test(run: Run, backend: str = "torch") -> tuple[Path, int, dict[str, float] | None]:
    """Average the test predictions of every trained fold's best model into runs/<exp>/test_pred.*; write a
    validated submission. Each file written says which data it predicted."""
    run.warn_phantom()
    comp, training, _ = run.prepare()
    ids = training.ids("test")
    if not ids:
        raise KitError(f"{run.data_dir}: no test split to predict; the CV of `task oof` is the figure")
    if backend == "onnxruntime":
        from kit.runtime.onnx_model import require_current_export

        for fold in run.folds:
            require_current_export(fold.path, run.name, fold.index)
    clock.reset()
    start = time.perf_counter()
    with clock.stage(getattr(training, "final_stage", "model")):
        folders = [f.path for f in run.folds]
        mean = fold_average(run.config, training, folders, training.dataset(ids, "test"), ids, backend)
    write_text_atomic(run.root / TIMINGS_FILE, json.dumps({"samples": len(ids), "folds": len(run.folds),
                      "seconds": clock.seconds(), "total": time.perf_counter() - start}, indent=1))  # fmt: skip
    training.save_predictions(test_predictions_path(run, training), ids, mean)
    scores = training.evaluate(ids, mean) if training.test_labelled() else None
    scores_path = run.root / "test_scores.json"
    if scores:
        record = {"metric": training.metric_name, "folds": [f.name for f in run.folds], "backend": backend,
                  "data": run.data_record(), **scores}  # fmt: skip
        write_text_atomic(scores_path, json.dumps(record, indent=1))
    else:
        scores_path.unlink(missing_ok=True)  # it described predictions that no longer exist
    path = paths.submissions_root() / comp.slug / f"{run.name}.csv"
    training.write_submission(path, ids, mean)
    record_written(run.root, path, run.data_record())
    return path, len(run.folds), scores
