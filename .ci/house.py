"""The house's rules, measured and enforced by `task lint`: the share of experiment YAML lines (comments and blank
lines aside) whose text appears in 5 or more experiments is at most 20%; no function in kit/ or kernels/ is longer
than 80 lines (decorators and docstring included); at most 5 reads of a config section in kit/ carry their own
literal default (`cfg["data"].get("folds", 5)`) instead of taking it from kit/schema.py."""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_SHARE, MAX_LINES, IN_FILES, MAX_DEFAULTS = 0.20, 80, 5, 5
# what a read of the kit's own config looks like: cfg, config, a section of it, or a dataset/section spec
CONFIG = re.compile(
    r"\bcfg\b|config|\['(data|trainer|model|loss|dataset)'\]|^(self\.)?(spec|section|data|trainer|model|loss)$"
)


def yaml_lines(path: Path) -> list[str]:
    lines = (line.split("#")[0].rstrip() for line in path.read_text().splitlines())
    return [line for line in lines if line.strip()]


def repeated_share(folder: Path) -> tuple[int, int, list[str]]:
    files = {p.name: yaml_lines(p) for p in sorted(folder.glob("*.yaml"))}
    seen_in = Counter(line for lines in files.values() for line in set(lines))
    common = sorted({line for line, n in seen_in.items() if n >= IN_FILES})
    repeated = sum(1 for lines in files.values() for line in lines if line in common)
    return repeated, sum(len(lines) for lines in files.values()), common


def longest_functions(folders: list[Path], top: int = 3) -> list[tuple[int, str]]:
    sizes = []
    for path in (p for folder in folders for p in folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                sizes.append((node.end_lineno - start + 1, f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"))
    return sorted(sizes, reverse=True)[:top]


def _literal_default(node: ast.expr) -> bool:
    """A value written into the read; None, {} and '' only say 'absent'."""
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Constant):
        return node.value not in (None, "")
    if isinstance(node, ast.Tuple | ast.List):
        return bool(node.elts) and all(isinstance(e, ast.Constant) for e in node.elts)
    return isinstance(node, ast.Dict) and bool(node.keys)


def literal_defaults(folder: Path) -> list[str]:
    """`X.get("key", literal)` where X is config, outside the schema that owns the defaults."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        if path == folder / "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant)
                    and _literal_default(node.args[1]) and CONFIG.search(ast.unparse(node.func.value))):  # fmt: skip
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
    return found


def main() -> int:
    repeated, total, common = repeated_share(ROOT / "kit" / "experiments")
    share = repeated / total
    print(f"experiment YAML lines repeated in {IN_FILES}+ files: {repeated}/{total} = {share:.1%} "
          f"(at most {MAX_SHARE:.0%}); they are: {', '.join(map(repr, common))}")  # fmt: skip
    longest = longest_functions([ROOT / "kit", ROOT / "kernels"])
    print(f"longest functions (at most {MAX_LINES} lines): " + "; ".join(f"{n} {where}" for n, where in longest))
    defaults = literal_defaults(ROOT / "kit")
    print(f"config reads with a literal default outside kit/schema.py (at most {MAX_DEFAULTS}): {len(defaults)}: "
          + "; ".join(defaults))  # fmt: skip
    return 0 if share <= MAX_SHARE and longest[0][0] <= MAX_LINES and len(defaults) <= MAX_DEFAULTS else 1


if __name__ == "__main__":
    sys.exit(main())
