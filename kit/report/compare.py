"""`kit compare A B …`: experiments' validation figures side by side (each finished fold's best metric, their mean
and spread, the merged CV where `kit oof` ran, minutes), printed and drawn as one plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kit import paths
from kit.errors import KitError
from kit.io import atomic_path


def fold_summaries(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(run.glob("fold*/summary.json"))]


def compare(names: list[str]) -> tuple[pd.DataFrame, Path]:
    if len(names) < 2:
        raise KitError(f"compare needs two or more experiments (run names under runs/), got {names}")
    rows, metrics, scores = [], set(), {}
    for name in names:
        run = paths.runs_root() / Path(name).stem
        summaries = fold_summaries(run)
        if not summaries:
            raise KitError(f"{run}: no finished fold (task train-fold exp={name} fold=0 first)")
        metric = summaries[0]["metric"]
        metrics.add(metric)
        values = [s[metric] for s in summaries]
        scores[run.name] = dict(zip((s["fold"] for s in summaries), values, strict=True))
        cv_path = run / "cv.json"
        cv = json.loads(cv_path.read_text()) if cv_path.exists() else {}
        seconds = sum(pd.read_csv(h)["seconds"].sum() for h in run.glob("fold*/history.csv"))
        rows.append({
            "run": run.name, "metric": metric, "folds": len(values), "mean": float(np.mean(values)),
            "sd": float(np.std(values)), "cv": float(cv.get(metric, np.nan)), "baseline": float(np.mean(
                [s[f"prior_baseline_{metric}"] for s in summaries])), "minutes": round(seconds / 60, 1),
        })  # fmt: skip
    if len(metrics) > 1:
        raise KitError(f"the experiments are ranked by different metrics ({', '.join(sorted(metrics))}); compare "
                       "experiments of one competition")  # fmt: skip
    frame = pd.DataFrame(rows)
    out = paths.runs_root() / f"compare-{'-'.join(frame['run'])}.png"
    plot(frame, scores, out)
    return frame, out


def plot(frame: pd.DataFrame, scores: dict[str, dict[int, float]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(frame), 4))
    for x, row in enumerate(frame.itertuples()):
        folds = scores[row.run]
        ax.scatter(
            [x] * len(folds), list(folds.values()), color="tab:blue", alpha=0.6, label="fold" if x == 0 else None
        )
        for fold, value in folds.items():
            ax.annotate(str(fold), (x, value), xytext=(4, 0), textcoords="offset points", fontsize=7)
        ax.errorbar(x + 0.15, row.mean, yerr=row.sd, fmt="o", color="black", label="mean ± sd" if x == 0 else None)
        if row.cv is not None and not pd.isna(row.cv):
            ax.scatter(x + 0.3, row.cv, marker="*", s=120, color="tab:red", label="CV (merged OOF)" if x == 0 else None)
        ax.plot([x - 0.3, x + 0.3], [row.baseline] * 2, color="grey", linestyle="--",
                label="prior baseline" if x == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(frame)), frame["run"], rotation=15, ha="right")
    ax.set_ylabel(frame["metric"].iloc[0])
    ax.set_title("validation, fold by fold")
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
