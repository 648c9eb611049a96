"""The `kit` command: thin verbs over the package (one module per group of verbs). Bad input ends with one 'error:'
line and exit status 2."""

from __future__ import annotations

import argparse
import sys
import warnings

from kit.cli import data_verbs, kaggle_verbs, run_verbs, training_verbs
from kit.cli.common import DEFAULT_EXPERIMENT
from kit.errors import KitError

__all__ = ["DEFAULT_EXPERIMENT", "build_parser", "main", "user_error"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kit", description="Train, stack and submit Kaggle image-competition models.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    for group in (data_verbs, training_verbs, run_verbs, kaggle_verbs):
        group.add_verbs(verbs)
    return parser


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
