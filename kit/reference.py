"""docs/reference.md, generated from the `kit` parser (`task docs`), so each verb's options are written once: in the
argparse definitions in kit/cli/. A test fails when the file is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kit.cli import build_parser
from kit.io import write_text_atomic

HEADER = """# Reference: every `kit` verb and its options

Generated from `kit --help` by `task docs`; do not edit. Each `task` in Taskfile.yml runs one of these verbs
(`task train-fold fold=0 -- trainer.epochs=3` is `kit train-fold --fold 0 trainer.epochs=3`); what each writes is in
[tasks.md](tasks.md).
"""


def _verbs(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in action._choices_actions}
    return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}


def _option_rows(sub: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in sub._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        if action.option_strings and action.nargs != 0:
            name += f" {action.metavar or action.dest.upper()}"
        plain = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        default = "" if plain or action.nargs == 0 else f"`{action.default}`"
        help_text = (action.help or "").replace("|", "\\|")
        rows.append(f"| {name} | {help_text} | {default} |")
    return rows


def reference() -> str:
    parts = [HEADER]
    for name, (summary, sub) in _verbs(build_parser()).items():
        parts.append(f"\n## `kit {name}`\n\n{summary}\n")
        rows = _option_rows(sub)
        if rows:
            parts.append("\n| argument | what it does | default |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n")
    return "".join(parts)


if __name__ == "__main__":
    write_text_atomic(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference.md"), reference())
