"""Verbs that deliver to Kaggle: submit, submissions, freeze the image, push, pull, rehearse."""

from __future__ import annotations

import re
from pathlib import Path

from kit.cli.common import DEFAULT_EXPERIMENT, force_argument, trained_run
from kit.errors import KitError
from kit.kaggle.code import PYTHONS


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
    return build_inference(trained_run(args), owner, **options)


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


def _package_arguments(p, overrides_help: str = "name=<run> (another run of the experiment), data.dir=...") -> None:
    p.add_argument("--backend", default="torch", help="torch, or onnxruntime (ships each fold's model.onnx)")
    p.add_argument("--pythons", default=",".join(PYTHONS), help="CPythons the code dataset carries wheels for")
    p.add_argument("--image", default="here", help="rehearse on: here (this machine's packages), old, or a profile")
    force_argument(p)
    p.add_argument("overrides", nargs="*", help=overrides_help)


def add_verbs(verbs) -> None:
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
