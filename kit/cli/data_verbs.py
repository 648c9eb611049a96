"""Verbs on data and submission files: synth, inspect, score, validate, folds."""

from __future__ import annotations

from pathlib import Path

from kit.cli.common import read_csv
from kit.errors import KitError


def cmd_synth(args) -> None:
    from kit.competitions import get_competition

    comp = get_competition(args.competition)
    out = Path(args.out) if args.out else comp.synth_dir()
    for option in ("train", "test"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            raise KitError(f"--{option} {getattr(args, option)}: give at least 1 sample")
    path = comp.synth(out, train=args.train, test=args.test, seed=args.seed, force=args.force, size=args.size)
    print(f"wrote synthetic {comp.slug} to {path}")


def cmd_inspect(args) -> None:
    from kit.data.dicom import describe, read_stacks

    stacks = read_stacks(Path(args.series_dir))
    for number, stack in enumerate(stacks, start=1):
        if len(stacks) > 1:
            print(f"{'stack':<16} {number} of {len(stacks)}")
        for name, value in describe(stack):
            print(f"{name:<16} {value}")


def cmd_score(args) -> None:
    from kit.competitions import get_competition

    comp = get_competition(args.competition)
    parts = comp.score(read_csv(args.solution), read_csv(args.submission))
    for name, value in parts.items():
        if name != comp.metric_name:
            print(f"{name:<18} {value:.6f}")
    print(f"{comp.metric_name} {parts[comp.metric_name]:.6f}")


def cmd_validate(args) -> None:
    from kit.competitions import get_competition

    comp = get_competition(args.competition)
    sample = read_csv(args.sample) if args.sample else comp.known_sample()
    frame = read_csv(args.file)
    problems = comp.validate(frame, sample)
    for problem in problems:
        print(f"{args.file}: {problem}")
    if problems:
        return 1
    for warning in comp.warnings(frame):
        print(f"{args.file}: warning: {warning}")
    print(f"{args.file}: valid {comp.slug} submission")
    return 0


def cmd_folds(args) -> None:
    from kit.competitions import get_competition

    if args.k < 2:
        raise KitError(f"--k {args.k}: folds need at least 2 parts")
    comp = get_competition(args.competition)
    data_dir = comp.data_dir(args.data)
    folds = comp.folds(data_dir, n_splits=args.k, seed=args.seed)
    sizes = folds.value_counts().sort_index()
    print(
        f"{folds.attrs.get('path', comp.folds_path(data_dir))}: "
        + ", ".join(f"fold {k}: {n}" for k, n in sizes.items())
    )


def add_verbs(verbs) -> None:
    p = verbs.add_parser("synth", help="write a synthetic competition in the exact Kaggle layout")
    p.add_argument("competition")
    p.add_argument("--out", help="output folder (default: data/<competition>-synth)")
    p.add_argument("--train", type=int, help="labelled samples (studies, images); default: the competition's")
    p.add_argument("--test", type=int, help="unlabelled test samples; default: the competition's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.add_argument("--size", default="default", help="image sizes: default (fast), or real (RSNA: real-sized series)")
    p.set_defaults(func=cmd_synth, on_interrupt="interrupted; nothing written (the folder appears only once complete)")

    p = verbs.add_parser("inspect", help="describe a DICOM series folder")
    p.add_argument("series_dir")
    p.set_defaults(func=cmd_inspect)

    p = verbs.add_parser("score", help="the official metric of a submission against a solution")
    p.add_argument("competition")
    p.add_argument("solution")
    p.add_argument("submission")
    p.set_defaults(func=cmd_score)

    p = verbs.add_parser("validate", help="check a submission file; exit 1 listing every problem")
    p.add_argument("competition")
    p.add_argument("file")
    p.add_argument("--sample", help="sample_submission.csv whose row ids the file must match")
    p.set_defaults(func=cmd_validate)

    p = verbs.add_parser("folds", help="make (once) and show the competition's folds file")
    p.add_argument("competition")
    p.add_argument("--data", help="competition folder (default: the synthetic one)")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_folds)
