"""What the verbs share: the default experiment, an experiment from --exp and overrides, a trained run."""

from __future__ import annotations

import argparse

import pandas as pd

DEFAULT_EXPERIMENT = "rsna_two_stage"  # the best recipe measured on the RSNA phantom (docs/experiments.md)

AFTER_TRAINING = ("oof", "predict", "export", "explain", "package-codabench")


def read_csv(path: str) -> pd.DataFrame:
    from kit.io import read_csv_file

    return read_csv_file(path)


def experiment(args) -> dict:
    from kit.config import apply_overrides, check_config, check_name, load_experiment

    cfg = apply_overrides(load_experiment(args.exp), args.overrides)
    check_name(cfg["name"])
    return check_config(cfg, getattr(args, "fold", None))


def trained_run(args, other_data: bool = False):
    """The trained run a command after training works on: its own config and data (see kit.train.run)."""
    from kit.train.run import Run

    run = Run.open(args.exp, args.overrides, force=args.force, other_data=other_data)
    run.warn_phantom()
    print(run.describe())
    return run


def force_argument(p) -> None:
    p.add_argument("--force", action="store_true", help="use a trained run even though its YAML changed since")


def fold_list(text: str) -> list[int]:
    """`0` or `0,1,2`: one argument, so that overrides after it (task tune … -- data.dir=DIR) stay overrides."""
    folds = [v.strip() for v in text.split(",") if v.strip()]
    if not folds or not all(v.isdigit() for v in folds):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fold numbers such as 0 or 0,1,2")
    return [int(v) for v in folds]
