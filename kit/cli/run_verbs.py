"""Verbs across runs: download, runs, compare, stack."""

from __future__ import annotations

from pathlib import Path

from kit.cli.common import force_argument


def cmd_download(args) -> None:
    from kit.competitions import get_competition
    from kit.kaggle.download import download_competition

    slug = get_competition(args.competition).slug
    out = download_competition(slug, Path(args.out) if args.out else None)
    print(f"train on it: task train-fold fold=0 -- data.dir={out}")


def cmd_runs(args) -> None:
    from kit.train.runs_table import run_rows

    frame = run_rows()
    if frame.empty:
        from kit import paths

        print(f"no runs under {paths.runs_root()} yet (task train-fold fold=0)")
        return
    print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
    if args.plot:
        from kit import paths
        from kit.train.runs_table import plot_cv_against_lb

        print(f"wrote {plot_cv_against_lb(frame, paths.runs_root() / 'cv_vs_lb.png')}")


def cmd_compare(args) -> None:
    from kit.report.compare import compare

    frame, out = compare(args.experiments)
    print(frame.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out}")


def cmd_stack(args) -> None:
    from kit.stack.run import run_stack

    out, scores = run_stack(args.competition, args.experiments, args.name, args.seed, args.max_rows, args.force,
                            args.cv_only)  # fmt: skip
    for name, value in scores.items():
        print(f"{name:<24} {value:.6f}")
    print(f"{out}/report.md")
    print(f"stack {scores['stack']:.6f}")


def add_verbs(verbs) -> None:
    p = verbs.add_parser("compare", help="experiments' fold metrics, mean, spread and CV side by side, and a plot")
    p.add_argument("experiments", nargs="+", help="run names under runs/ (experiment names, or their name= override)")
    p.set_defaults(func=cmd_compare)
    p = verbs.add_parser("download", help="fetch a competition's files from Kaggle into data/<slug>/")
    p.add_argument("competition")
    p.add_argument("--out", help="folder to unzip into (default: data/<slug>)")
    p.set_defaults(func=cmd_download)
    p = verbs.add_parser("runs", help="one table of every run: overrides, finished folds, CV, time, public score")
    p.add_argument("--plot", action="store_true", help="also draw CV against public LB: runs/cv_vs_lb.png")
    p.set_defaults(func=cmd_runs)
    p = verbs.add_parser("stack", help="stack experiments' OOF with a LightGBM meta-model (fold by fold)")
    p.add_argument("competition")
    p.add_argument("experiments", nargs="+", help="two or more trained and predicted experiments")
    p.add_argument("--name", help="runs/stack-<name> (default: the experiment names joined by '-')")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-rows", type=int, default=200_000, help="meta-model training rows per fold (sampled)")
    p.add_argument("--cv-only", action="store_true", help="score blend, pool and stack by CV alone: no `predict` "
                   "needed, no test predictions or submission written")  # fmt: skip
    force_argument(p)
    p.set_defaults(func=cmd_stack)
