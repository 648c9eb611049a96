"""The stack's report: each base model, their mean blend, the fitted pool and the stack on the same rows, the pools'
weights and the meta-models' feature importances."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from kit.io import atomic_path, write_text_atomic  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)


def pool_row(fold: int, pool: dict, bases) -> str:
    weights = " | ".join(f"{pool['weights'][b]:.3f}" for b in bases)
    return f"| {fold} | {weights} | {pool['temperature']:.3f} |"


def write_report(
    out: Path, scores: dict, metric: str, mode: str, importance: pd.Series, bases, submission, pools: list[dict]
) -> Path:
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(scores) + 1.2))
    ax.barh(list(scores), list(scores.values()), color=["#999"] * (len(scores) - 1) + ["#1f77b4"])
    ax.set(xlabel=f"OOF {metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.invert_yaxis()
    _save(fig, out / "scores.png")
    top = importance.head(20)
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(top) + 1.2))
    ax.barh(top.index[::-1], top.to_numpy()[::-1])
    ax.set(xlabel="mean gain over the folds' meta-models")
    _save(fig, out / "importance.png")

    best_base = (min if mode == "min" else max)(scores[b] for b in bases)
    lines = [
        f"# Stack of {', '.join(bases)}",
        "",
        "LightGBM meta-model trained fold by fold on the base models' out-of-fold predictions (same folds), boosted "
        "from a log-linear pool of the base models fitted on the same rows (`pool`: that pool alone); "
        f"every score is the OOF {metric} over the same rows.",
        "",
        f"| model | {metric} |",
        "|---|---|",
        *(f"| {name} | {value:.5f} |" for name, value in scores.items()),
        "",
        f"Stack vs best base model: {scores['stack'] - best_base:+.5f}; vs mean blend: "
        f"{scores['stack'] - scores['mean blend']:+.5f}.",
        "",
        "![scores](scores.png)",
        "",
        "## Pools (one per fold)",
        "",
        f"| fold | {' | '.join(bases)} | temperature |",
        "|---|" + "---|" * (len(bases) + 1),
        *(pool_row(k, pool, bases) for k, pool in enumerate(pools)),
        "",
        "## Feature importance (top 20, gain)",
        "",
        "| feature | gain |",
        "|---|---|",
        *(f"| {name} | {value:.1f} |" for name, value in top.items()),
        "",
        "![importance](importance.png)",
        "",
        f"Submission: `{submission}`"
        if submission
        else "Scored by CV alone (`--cv-only`): no test predictions, no submission.",
    ]
    return write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
