"""`kit stack COMP EXP EXP …`: stack base experiments into runs/stack-<name>/ and a submission, with a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kit import paths
from kit.competitions import get_competition
from kit.io import write_text_atomic
from kit.ledger import record_written
from kit.report.stack import write_report
from kit.stack.inputs import load_bases
from kit.stack.meta import stack


def run_stack(
    competition: str,
    names: list[str],
    name: str | None = None,
    seed: int = 0,
    max_rows: int = 200_000,
    force: bool = False,
    cv_only: bool = False,
) -> tuple[Path, dict]:
    """The stack's folder and its OOF scores; cv_only: scored by CV alone, without the bases' test predictions, so
    no test predictions and no submission (a recipe comparison before anything is predicted)."""
    training, folds, train_ids, test_ids, bases, runs = load_bases(competition, names, force, with_test=not cv_only)
    comp = get_competition(competition)
    result = stack(training, folds, bases, seed=seed, max_rows=max_rows)
    base_names = [b.name for b in bases]
    metric = training.metric_name
    scores = {base.name: training.evaluate(train_ids, base.oof)[metric] for base in bases}
    scores["mean blend"] = training.evaluate(train_ids, np.mean([b.oof for b in bases], axis=0))[metric]
    scores["pool"] = training.evaluate(train_ids, result.pooled_oof)[metric]
    scores["stack"] = training.evaluate(train_ids, result.oof)[metric]
    pools = [pool.described(base_names) for pool in result.model.pools]

    out = paths.runs_root() / f"stack-{name or '-'.join(base_names)}"
    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out)
    training.save_predictions(out / training.oof_file, train_ids, result.oof)
    submission = None
    if result.test is not None:
        training.save_predictions(out / training.test_file(), test_ids, result.test)
        submission = training.write_submission(
            paths.submissions_root() / comp.slug / f"{out.name}.csv", test_ids, result.test
        )
        record_written(out, submission, runs[0].data_record())
    else:
        (out / training.test_file()).unlink(missing_ok=True)  # an earlier stack's, of other meta-models
    write_report(out, scores, metric, training.metric_mode, result.importance, base_names, submission, pools)
    write_text_atomic(
        out / "scores.json",
        json.dumps(
            {
                "competition": competition,
                "metric": metric,
                "scores": scores,
                "cv_only": cv_only,
                "pools": pools,
                "data": runs[0].data_record(),
            },
            indent=1,
        ),  # fmt: skip
    )
    return out, scores
