"""A saved stack applied to a test set: each base experiment predicts it (its trained folds averaged), then the
stack's fold meta-models combine those predictions into a validated submission. The code-competition notebook runs
this against the hidden test set."""

from __future__ import annotations

from pathlib import Path

from kit import paths
from kit.errors import KitError
from kit.stack.inputs import align
from kit.stack.meta import StackModel
from kit.train.outputs import predict_test, test_predictions_path
from kit.train.run import Run


def predict_stack(stack_dir: Path, runs: list[Run]) -> Path:
    """submissions/<slug>/<stack folder>.csv from the stack in stack_dir and its base experiments' runs."""
    model = StackModel.load(stack_dir)
    by_name = {run.name: run for run in runs}
    missing = [name for name in model.names if name not in by_name]
    if missing:
        raise KitError(f"{stack_dir}: the stack combines {model.names}; no run given for {missing}")
    comp, training, _ = by_name[model.names[0]].prepare()
    ids = training.ids("test")
    probs = []
    for name in model.names:
        predict_test(by_name[name])
        probs.append(align(*training.load_predictions(test_predictions_path(by_name[name], training)), ids))
    path = paths.submissions_root() / comp.slug / f"{stack_dir.name}.csv"
    return training.write_submission(path, ids, model.predict(training, probs))
