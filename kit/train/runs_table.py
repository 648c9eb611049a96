"""`kit runs`: one table of every run under runs/: experiment and run name, the overrides that differ from the
experiment's YAML, finished folds, CV (from the last `kit oof`) and training time."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from kit import paths
from kit.config import config_differences, load_experiment, lookup
from kit.errors import KitError
from kit.io import atomic_path
from kit.ledger import latest_public
from kit.train.identity import read_identity, recorded_config


def run_rows() -> pd.DataFrame:
    rows = []
    for run in sorted(p for p in paths.runs_root().glob("*") if p.is_dir()):
        configs = sorted(run.glob("fold*/config.yaml"))
        if not configs:
            continue
        try:
            cfg = recorded_config(configs[-1].parent)
        except KitError:
            cfg = {}  # one unreadable run does not hide the table
        experiment = cfg.get("experiment", cfg.get("name", run.name))
        try:
            base = load_experiment(experiment)
        except KitError:
            base = {}
        changed = [k for k in config_differences(base, cfg) if k not in ("name", "experiment", "source", "data.dir")]
        finished = sorted(p.parent.name for p in run.glob("fold*/summary.json"))
        seconds = sum(
            pd.read_csv(h)["seconds"].sum() for h in run.glob("fold*/history.csv") if h.parent.name in finished
        )
        cv_path = run / "cv.json"
        cv = json.loads(cv_path.read_text()) if cv_path.exists() else {}
        rows.append(
            {
                "experiment": experiment,
                "run": run.name,
                "data": data_of(configs[-1].parent),
                "overrides": " ".join(f"{k}={lookup(cfg, k)}" for k in changed) or "-",
                "folds": f"{len(finished)}/{cfg.get('data', {}).get('folds', '?')}",
                "cv": cv.get(cv.get("metric", "")),
                "cv_folds": len(cv.get("folds", [])),
                "minutes": round(seconds / 60, 1),
                "public_lb": latest_public(run.name),
            }
        )
    columns = ["experiment", "run", "data", "overrides", "folds", "cv", "cv_folds", "minutes", "public_lb"]
    return pd.DataFrame(rows, columns=columns)


def data_of(fold: Path) -> str:
    """The data a fold trained on, shortly: synthetic, or its folder (the run's own record, run.json)."""
    record = read_identity(fold)
    if record is None:
        return "-"
    return "synthetic" if record["data"]["dir"] is None else record["data"]["path"]


def plot_cv_against_lb(frame: pd.DataFrame, out: Path) -> Path:
    """CV against public leaderboard score for every run submitted: where the leaderboard stops following the CV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = frame.dropna(subset=["cv", "public_lb"])
    if scored.empty:
        raise KitError("no run has both a CV (task oof) and a public score (task submit, task submissions) yet")
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(scored["cv"], scored["public_lb"])
    for _, row in scored.iterrows():
        ax.annotate(row["run"], (row["cv"], row["public_lb"]), fontsize=7)
    ax.set_xlabel("CV")
    ax.set_ylabel("public leaderboard")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return out
