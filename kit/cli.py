"""The `kit` command: thin verbs over the package. Bad input ends with one 'error:' line and exit status 2."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from pathlib import Path

import pandas as pd

from kit.errors import KitError
from kit.kaggle.code import PYTHONS

DEFAULT_EXPERIMENT = "rsna_two_stage"  # the best recipe measured on the RSNA phantom (docs/experiments.md)


def _read_csv(path: str) -> pd.DataFrame:
    from kit.io import read_csv_file

    return read_csv_file(path)


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
    parts = comp.score(_read_csv(args.solution), _read_csv(args.submission))
    for name, value in parts.items():
        if name != comp.metric_name:
            print(f"{name:<18} {value:.6f}")
    print(f"{comp.metric_name} {parts[comp.metric_name]:.6f}")


def cmd_validate(args) -> None:
    from kit.competitions import get_competition

    comp = get_competition(args.competition)
    sample = _read_csv(args.sample) if args.sample else comp.known_sample()
    frame = _read_csv(args.file)
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


def _experiment(args) -> dict:
    from kit.config import apply_overrides, check_config, check_name, load_experiment

    cfg = apply_overrides(load_experiment(args.exp), args.overrides)
    check_name(cfg["name"])
    return check_config(cfg, getattr(args, "fold", None))


def _run(args, other_data: bool = False):
    """The trained run a command after training works on: its own config and data (see kit.train.run)."""
    from kit.train.run import Run

    run = Run.open(args.exp, args.overrides, force=args.force, other_data=other_data)
    run.warn_phantom()
    print(run.describe())
    return run


def cmd_train_fold(args) -> None:
    from kit.train.runner import train_fold

    summary = train_fold(_experiment(args), args.fold, resume=args.resume, force=args.force)
    if summary["rank"] == 0:
        metric = summary["metric"]
        baseline = summary[f"prior_baseline_{metric}"]
        minutes, seconds = divmod(round(summary["seconds"]), 60)
        if summary.get("parts"):  # the metric's parts at the best epoch (per-class IoU, AUC beside accuracy...)
            print(", ".join(f"{k} {v:.4f}" for k, v in summary["parts"].items()))
        print(f"fold {args.fold}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
              f"{summary['samples_per_s']:.1f} samples/s, {minutes} min {seconds} s in all")  # fmt: skip
        against = f"prior baseline {baseline:.4f} ({summary['ratio_to_baseline']:.2f}x)"
        if f"oracle_{metric}" in summary:
            against += (f", oracle {summary[f'oracle_{metric}']:.4f}: {100 * summary['gap_closed']:.0f}% of the "
                        f"prior-to-oracle gap closed, regret {summary['regret']:.2f}")  # fmt: skip
        print(against)
        print(f"{metric} {summary[metric]:.4f}")


def cmd_train_all(args) -> None:
    from kit.train.runner import train_fold

    cfg = _experiment(args)
    folds = range(cfg["data"]["folds"])  # a finished fold is kept, an interrupted one resumes (--restart: neither)
    summaries = [train_fold(cfg, fold, resume=not args.restart, force=args.force) for fold in folds]
    scores = [s[s["metric"]] for s in summaries]
    print("fold scores: " + ", ".join(f"{s:.4f}" for s in scores))
    cmd_oof(args)


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


def cmd_oof(args) -> None:
    from kit.train.outputs import merge_oof

    path, scores, n_folds = merge_oof(_run(args))
    metric = scores["metric"]
    print(f"{path}: {n_folds} fold(s) merged")
    against = f"prior baseline {scores[f'prior_baseline_{metric}']:.4f}"
    if f"oracle_{metric}" in scores:
        against += f", oracle {scores[f'oracle_{metric}']:.4f}: regret {scores['regret']:.2f}"
    print(against)
    print(f"CV {metric} {scores[metric]:.4f}")


def cmd_predict(args) -> None:
    from kit.runtime.inference import BACKENDS
    from kit.train.outputs import predict_test

    if args.backend not in BACKENDS:
        raise KitError(f"--backend {args.backend}: expected one of {', '.join(BACKENDS)}")
    path, n_folds, scores = predict_test(_run(args, other_data=True), args.backend)
    print(f"{path}: test predictions averaged over {n_folds} fold(s)")
    if scores:
        print(
            "labelled test split (runs/<exp>/test_scores.json): " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        )


def cmd_package_codabench(args) -> None:
    from kit.codabench.package import package

    path, found = package(_run(args))
    print(f"{path}: {found['zip_mb']:.1f} MB, model.py + model.pt2 ({found['classes']} classes)")
    print(
        f"rehearsal without the kit: ({found['images']},) {found['dtype']} labels in range, equal to the kit's "
        f"predictions (probabilities within {found['max_prob_diff']:.1e}); load {found['load_s']:.1f} s, "
        f"{found['s_per_1000']:.2f} s per 1,000 images"
    )


def cmd_explain(args) -> None:
    from kit.explain import explain_fold

    written = explain_fold(_run(args), args.fold)
    print(f"{len(written)} picture(s) in {written[0].parent}")


def cmd_export(args) -> None:
    from kit.export.onnx import export_fold
    from kit.export.quantize import MODES

    if args.quantize and args.quantize not in MODES:
        raise KitError(f"--quantize {args.quantize}: expected one of {', '.join(MODES)}")
    run = _run(args)
    path, record = export_fold(run, args.fold, args.opset)
    worst = max(record["max_abs_difference"].values())
    print(
        f"{path}: outputs {', '.join(record['outputs'])}; ONNX Runtime vs PyTorch on {record['batch']} validation "
        f"images: max |difference| {worst:.1e} (tolerance {record['tolerance']:.0e}); {record['export_s']} s"
    )
    if args.quantize:
        from kit.export.quantize import quantize_fold

        path, record = quantize_fold(run, args.fold, args.quantize)
        for name in ("fp32", "int8"):
            part = record[name]
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in part["metrics"].items())
            print(f"{name}: {part['ms_per_batch']} ms per batch of {record['batch']}, {part['mb']} MB; {metrics}")
        print(f"{path}: {record['speedup']}x fp32's speed on {record['validation_samples']} validation samples")


def cmd_tune(args) -> None:
    from kit.train.tune import tune

    table, best = tune(_experiment(args), args.trials, args.folds)
    print(table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    print(f"best configuration: {best} (task train-fold exp={best} fold=0)")


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


def cmd_submit(args) -> None:
    from kit.kaggle.submit import describe, submit_csv
    from kit.ledger import record_submission

    submission = submit_csv(args.competition, Path(args.file), args.message, args.poll)
    row = record_submission(args.competition, Path(args.file), args.message, submission)
    print(describe(submission))
    print(f"status {submission.status.name}  public score {submission.public_score or '—'}  (run {row['run']})")


def cmd_submissions(args) -> None:
    from kit.kaggle.submit import describe, list_submissions
    from kit.ledger import refresh

    submissions = list_submissions(args.competition)
    for submission in submissions:
        print(describe(submission))
    changed = refresh(submissions)
    if changed:
        print(f"updated {changed} row(s) of submissions/ledger.csv with Kaggle's scores")


def _inference_package(args, owner: str, **options):
    """The inference package of --stack NAME when given, else of --exp."""
    from kit.kaggle.push import build_inference, build_stack_inference

    if args.stack:
        return build_stack_inference(args.stack, owner, **options)
    return build_inference(_run(args), owner, **options)


def _fold_list(text: str) -> list[int]:
    """`0` or `0,1,2`: one argument, so that overrides after it (task tune … -- data.dir=DIR) stay overrides."""
    folds = [v.strip() for v in text.split(",") if v.strip()]
    if not folds or not all(v.isdigit() for v in folds):
        raise argparse.ArgumentTypeError(f"{text!r}: expected fold numbers such as 0 or 0,1,2")
    return [int(v) for v in folds]


def _pythons(text: str) -> tuple[str, ...]:
    pythons = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in pythons if not re.fullmatch(r"3\.\d+", v)]
    if bad or not pythons:
        raise KitError(f"--pythons {text}: expected CPython versions such as 3.10,3.11,3.12")
    old = [v for v in pythons if int(v.split(".")[1]) < 10]
    if old:
        raise KitError(f"--pythons {text}: the kit runs on Python 3.10 or newer, not {', '.join(old)}")
    return pythons


def _code_options(args) -> dict:
    """What goes in the code dataset: the inference backend's packages, wheels for these CPythons. The rehearsal's
    image profile is checked here too, before anything is built."""
    from kit.kaggle.push import check_backend

    if args.image != "here":
        from kit.kaggle.image import profile_path

        profile_path(args.image)
    return {"backend": check_backend(args.backend), "pythons": _pythons(args.pythons)}


def cmd_kaggle_freeze(args) -> None:
    from kit.competitions import get_competition
    from kit.kaggle.freeze import kaggle_freeze
    from kit.kaggle.push import owner_or_default

    kaggle_freeze(owner_or_default(args.owner), get_competition(args.competition).slug, args.gpu, args.name)


def cmd_push_notebook(args) -> None:
    from kit.kaggle.push import owner_or_default, publish_and_run
    from kit.kaggle.rehearse import rehearse_or_fail
    from kit.kaggle.submit import describe, submit_code

    package = _inference_package(args, owner_or_default(args.owner), gpu=args.gpu, **_code_options(args))
    print(f"built {package.root}/{{code,weights,notebook}}")
    if not args.skip_rehearsal:
        rehearse_or_fail(package, package.competition, image=args.image)
    version = publish_and_run(package, args.message, wait=args.submit or not args.no_wait)
    if args.submit:
        submission = submit_code(package.competition, package.owner, package.kernel, version, args.message)
        print(describe(submission))


def cmd_push_train(args) -> None:
    from kit.kaggle.push import build_training, owner_or_default, publish_and_run

    package = build_training(args.exp, args.fold, owner_or_default(args.owner), args.overrides,
                             pythons=_pythons(args.pythons), accelerator=args.accelerator)  # fmt: skip
    publish_and_run(package, f"train {args.exp} fold {args.fold}", wait=not args.no_wait)
    print(f"then: task pull exp={args.exp} fold={args.fold}")


def cmd_pull(args) -> None:
    from kit.kaggle.push import owner_or_default, pull_fold

    files = pull_fold(args.exp, args.fold, owner_or_default(args.owner))
    for path in files:
        print(path)


def cmd_rehearse(args) -> None:
    from kit.kaggle.rehearse import rehearse_or_fail

    given = Path(args.input) if args.input else None
    if given is not None and not given.is_dir():
        raise KitError(f"--input {args.input}: no such folder (the competition's input, as /kaggle/input/<slug>/)")
    package = _inference_package(args, args.owner or "rehearsal", **_code_options(args))
    rehearse_or_fail(package, package.competition, test_samples=args.test_samples, image=args.image, given=given,
                     hidden=args.hidden_samples)  # fmt: skip
    print(f"rehearsal passed: {package.notebook / 'notebook.ipynb'} is ready to push")


AFTER_TRAINING = ("oof", "predict", "export", "explain", "package-codabench")


def _force_argument(p) -> None:
    p.add_argument("--force", action="store_true", help="use a trained run even though its YAML changed since")


def _package_arguments(p, overrides_help: str = "name=<run> (another run of the experiment), data.dir=...") -> None:
    p.add_argument("--backend", default="torch", help="torch, or onnxruntime (ships each fold's model.onnx)")
    p.add_argument("--pythons", default=",".join(PYTHONS), help="CPythons the code dataset carries wheels for")
    p.add_argument("--image", default="here", help="rehearse on: here (this machine's packages), old, or a profile")
    _force_argument(p)
    p.add_argument("overrides", nargs="*", help=overrides_help)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description="Train, stack and submit Kaggle image-competition models.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for add in (_data_verbs, _experiment_verbs, _run_verbs, _kaggle_verbs):
        add(verbs)
    return parser


def _data_verbs(verbs) -> None:
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


def _experiment_verbs(verbs) -> None:
    for verb, func, help_text in (
        ("train-fold", cmd_train_fold, "train fold(s) of an experiment: runs/<exp>/fold<k>/"),
        ("train-all", cmd_train_all, "train every fold, then merge the OOF"),
        ("oof", cmd_oof, "merge finished folds' OOF into runs/<exp>/ and print the CV metric"),
        ("predict", cmd_predict, "average trained folds' test predictions into submissions/<slug>/<exp>.csv"),
        ("export", cmd_export, "a fold's best model as ONNX, checked against PyTorch: runs/<exp>/fold<k>/model.onnx"),
        ("tune", cmd_tune, "Optuna search over the experiment's search: ranges: runs/<exp>/tune/"),
        ("explain", cmd_explain, "where a fold's model looks (Grad-CAM, attention maps): runs/<exp>/fold<k>/explain/"),
        ("package-codabench", cmd_package_codabench, "zip model.py + weights for Codabench, then rehearse it"),
    ):
        p = verbs.add_parser(verb, help=help_text)
        p.add_argument("--exp", default=DEFAULT_EXPERIMENT, help="experiment name (kit/experiments/) or YAML path")
        if verb == "predict":
            p.add_argument("--backend", default="torch", help="torch, or onnxruntime (each fold's model.onnx)")
        if verb == "export":
            p.add_argument("--opset", type=int, default=18, help="ONNX opset (17 or newer)")
            p.add_argument("--quantize", help="int8 (static, calibrated) or int8-dynamic: also write model.int8.onnx "
                           "and report its validation metrics and speed against fp32")  # fmt: skip
        if verb in ("train-fold", "explain", "export"):
            p.add_argument("--fold", type=int, default=0)
        if verb == "train-fold":
            p.add_argument("--resume", action="store_true", help="continue from model_last.pt (a finished fold: kept)")
        if verb == "train-all":
            p.add_argument("--restart", action="store_true", help="retrain every fold from scratch (by default a "
                           "finished fold is kept and an interrupted one resumes)")  # fmt: skip
        if verb.startswith("train"):
            p.add_argument("--force", action="store_true", help="continue even when the config changed")
            p.set_defaults(on_interrupt="interrupted; the fold continues where it stopped with --resume (train-all: "
                           "by default)")  # fmt: skip
        elif verb in AFTER_TRAINING:
            _force_argument(p)
        if verb == "tune":
            p.add_argument("--trials", type=int, default=20, help="trials in all (a resumed search counts done ones)")
            p.add_argument(
                "--folds", type=_fold_list, default=[0], help="folds each trial trains, e.g. 0 or 0,1,2 (mean)"
            )
        p.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
        p.set_defaults(func=func)


def _run_verbs(verbs) -> None:
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
    _force_argument(p)
    p.set_defaults(func=cmd_stack)


def _kaggle_verbs(verbs) -> None:
    p = verbs.add_parser("submit", help="validate a CSV, submit it to Kaggle, wait for its score")
    p.add_argument("competition")
    p.add_argument("file")
    p.add_argument("-m", "--message", default="submitted with the kit")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between status checks")
    p.set_defaults(func=cmd_submit)

    p = verbs.add_parser("submissions", help="list past Kaggle submissions of a competition")
    p.add_argument("competition")
    p.set_defaults(func=cmd_submissions)

    p = verbs.add_parser("push-notebook", help="build, rehearse and push an experiment's offline inference notebook")
    p.add_argument("--exp", default=DEFAULT_EXPERIMENT)
    p.add_argument("--stack", help="a stack's notebook instead (runs/stack-<STACK>/): its bases predict, it combines")
    p.add_argument("--owner", help="Kaggle username owning the datasets and notebook (default: your credentials')")
    p.add_argument("--gpu", action="store_true", help="run the notebook on a GPU")
    p.add_argument("--submit", action="store_true", help="when its run completes, submit its submission.csv")
    p.add_argument("--no-wait", action="store_true", help="return once pushed")
    p.add_argument("--skip-rehearsal", action="store_true", help="push without the local rehearsal first")
    _package_arguments(p)
    p.add_argument("-m", "--message", default="pushed with the kit")
    p.set_defaults(func=cmd_push_notebook)

    p = verbs.add_parser("push-train", help="push a notebook that trains one fold on a Kaggle GPU")
    p.add_argument("--exp", default=DEFAULT_EXPERIMENT)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--owner")
    p.add_argument("--no-wait", action="store_true")
    p.add_argument("--pythons", default=",".join(PYTHONS), help="CPythons the code dataset carries wheels for")
    p.add_argument(
        "--accelerator",
        default="t4x2",
        help="t4x2 (both GPUs data-parallel, fp16); the P100 is refused: "
        "the default image's PyTorch has no kernels for it",
    )
    p.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    p.set_defaults(func=cmd_push_train)

    p = verbs.add_parser("pull", help="fetch a push-train notebook's runs/<exp>/fold<k>/ outputs")
    p.add_argument("--exp", default=DEFAULT_EXPERIMENT)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--owner")
    p.set_defaults(func=cmd_pull)

    p = verbs.add_parser("rehearse", help="run the inference notebook locally, offline, in a fresh environment")
    p.add_argument("--exp", default=DEFAULT_EXPERIMENT)
    p.add_argument("--stack", help="a stack's notebook instead (runs/stack-<STACK>/)")
    p.add_argument("--owner", help="owner written into the bundles' metadata (default: rehearsal)")
    p.add_argument("--test-samples", type=int, default=8, help="test samples (studies, images) in the simulated tree")
    p.add_argument("--input", help="a folder in the competition's layout to rehearse on instead of synthetic data "
                   "(e.g. ../shared/data/rsna-2024-lumbar, as the notebook finds it under /kaggle/input)")  # fmt: skip
    p.add_argument("--hidden-samples", type=int, help="the hidden test set's size the time budget extrapolates to "
                   "(default: the competition's, e.g. about 700 RSNA studies)")  # fmt: skip
    _package_arguments(p, "name=<run> (another run of the experiment); other data: --input")
    p.set_defaults(func=cmd_rehearse)

    p = verbs.add_parser("kaggle-freeze", help="record the Kaggle image's packages as a profile for --image")
    p.add_argument("--competition", default="rsna", help="the competition the notebook is attached to")
    p.add_argument("--owner")
    p.add_argument("--gpu", action="store_true", help="run it on a GPU (the record names the GPU)")
    p.add_argument("--name", help="profile name (default: kaggle-<date>), written as images/<name>.txt")
    p.set_defaults(func=cmd_kaggle_freeze)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            status = args.func(args)
    except KeyboardInterrupt:
        print(getattr(args, "on_interrupt", "interrupted"), file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - only a KitError somewhere in the chain is reported without a traceback
        cause = user_error(exc)
        if cause is None:
            raise
        print(f"error: {cause.args[0] if cause.args else cause}", file=sys.stderr)
        return 2
    return status or 0


def user_error(exc: BaseException) -> KitError | None:
    """The KitError behind an exception: itself, or one that a library wrapped (MONAI's 'applying transform',
    a DataLoader worker's re-raise); OS errors on files become one too."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KitError):
            return exc
        if isinstance(exc, OSError) and exc.filename and exc.strerror:
            return KitError(f"{exc.filename}: {exc.strerror}")
        exc = exc.__cause__ or exc.__context__
    return None


if __name__ == "__main__":
    sys.exit(main())
