"""`kit tune`: an Optuna search over the ranges of an experiment's `search:` section. Each trial is a fold run under
runs/<exp>/tune/trial<k>/, pruned epoch by epoch (median pruner); the study lives in SQLite beside them, so a killed
search resumes (its interrupted trial is failed by heartbeat and retried with the same parameters). At the end: the
trials table, the history and importance plots, and the best configuration as a new experiment YAML."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pandas as pd
import yaml

from kit import paths
from kit.competitions import competition_of
from kit.config import apply_overrides, check_config, config_differences, lookup
from kit.errors import KitError
from kit.io import write_text_atomic

HEARTBEAT_S = 2


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_search(cfg: dict) -> dict[str, dict]:
    """The `search:` section: dotted config key -> {low, high[, log]} (whole numbers make an integer range) or
    {choices: [...]}; every key must exist in the experiment."""
    search = cfg.get("search")
    if not search:
        raise KitError(f"experiment {cfg['name']} has no search: section (dotted key -> {{low, high, log}} or "
                       "{choices: [...]}), so there is nothing to tune")  # fmt: skip
    if not isinstance(search, dict):
        raise KitError(f"search: expected a mapping of dotted keys to ranges, got {type(search).__name__}")
    for key, space in search.items():
        apply_overrides(cfg, [f"{key}=null"])  # the key must exist
        if not isinstance(space, dict):
            raise KitError(f"search.{key}: expected {{low, high[, log]}} or {{choices: [...]}}, got {space!r}")
        if "choices" in space:
            if set(space) != {"choices"} or not isinstance(space["choices"], list) or not space["choices"]:
                raise KitError(f"search.{key}: choices must be a non-empty list and alone, got {space!r}")
            continue
        if set(space) - {"low", "high", "log"} or not {"low", "high"} <= set(space):
            raise KitError(f"search.{key}: expected keys low, high and optionally log, got {sorted(space)}")
        low, high = space["low"], space["high"]
        if not (_number(low) and _number(high)) or low >= high:
            raise KitError(f"search.{key}: low={low!r}, high={high!r}; expected two numbers with low < high")
        if space.get("log") and low <= 0:
            raise KitError(f"search.{key}: a log range needs low > 0, got {low!r}")
    for key, space in search.items():
        for value in space.get("choices", [space.get("low"), space.get("high")]):
            try:
                check_config(with_params(cfg, {key: value}))
            except KitError as exc:
                raise KitError(f"search.{key}: the value {value!r} is outside the key's valid range ({exc})") from exc
    return search


STUDY_FILE = "study.json"


def study_config(cfg: dict, root: Path) -> dict:
    """The configuration a study searches around: recorded when it starts (data folder made absolute), and the
    one a resumed search continues with. A resume that leaves data.dir out searches the recorded data; any other
    difference is refused, since its trials would not be comparable with the earlier ones."""
    path = root / STUDY_FILE
    if not path.exists():
        cfg = copy.deepcopy(cfg)
        if cfg["data"].get("dir"):
            cfg["data"]["dir"] = str(Path(cfg["data"]["dir"]).resolve())
        write_text_atomic(path, json.dumps({"config": cfg}, indent=1))
        return cfg
    recorded = json.loads(path.read_text())["config"]
    given = copy.deepcopy(cfg)
    if given["data"].get("dir") is None:
        given["data"]["dir"] = recorded["data"].get("dir")
    elif given["data"]["dir"]:
        given["data"]["dir"] = str(Path(given["data"]["dir"]).resolve())
    changed = config_differences(recorded, given)
    if changed:
        details = ", ".join(f"{k} {lookup(recorded, k)!r} -> {lookup(given, k)!r}" for k in changed[:4])
        raise KitError(
            f"{root}: the study was started with another configuration ({details}); resume it with the same one, "
            f"or start a new study with name=..."
        )
    return recorded


def suggest(trial, search: dict) -> dict:
    params = {}
    for key, space in search.items():
        if "choices" in space:
            params[key] = trial.suggest_categorical(key, space["choices"])
        elif isinstance(space["low"], int) and isinstance(space["high"], int):
            params[key] = trial.suggest_int(key, space["low"], space["high"], log=bool(space.get("log")))
        else:
            low, high = float(space["low"]), float(space["high"])
            params[key] = trial.suggest_float(key, low, high, log=bool(space.get("log")))
    return params


def with_params(cfg: dict, params: dict) -> dict:
    return apply_overrides(cfg, [f"{key}={json.dumps(value)}" for key, value in params.items()])


def tune(cfg: dict, trials: int, folds: list[int]) -> tuple[pd.DataFrame, Path]:
    import optuna

    from kit.train.runner import train_fold

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    search = check_search(cfg)
    if trials < 1:
        raise KitError(f"--trials {trials}: run at least one trial")
    check_config(cfg)
    for fold in folds:
        check_config(cfg, fold)
    training_class = competition_of(cfg).training_class
    metric, mode = training_class.metric_name, training_class.metric_mode
    root = paths.runs_root() / cfg["name"] / "tune"
    if (root / "study.db").exists() and not (root / STUDY_FILE).exists():
        raise KitError(f"{root}: a study from before studies recorded their configuration; start a new one (name=...)")
    root.mkdir(parents=True, exist_ok=True)
    cfg = study_config(cfg, root)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{root / 'study.db'}",
        heartbeat_interval=HEARTBEAT_S,
        failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=1),
    )
    study = optuna.create_study(
        study_name=cfg["name"], storage=storage, load_if_exists=True,
        direction="maximize" if mode == "max" else "minimize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )  # fmt: skip
    # seeded by the trials so far, so a resumed search does not replay the first session's draws
    study.sampler = optuna.samplers.TPESampler(seed=cfg["trainer"]["seed"] + len(study.trials))
    optuna.storages.fail_stale_trials(study)

    def objective(trial) -> float:
        trial_cfg = with_params(cfg, suggest(trial, search))
        trial_cfg["name"] = f"{cfg['name']}/tune/trial{trial.number}"

        def report(epoch: int, value: float) -> None:
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch} ({metric} {value:.4f})")

        values = []
        for k, fold in enumerate(folds):
            summary = train_fold(trial_cfg, fold, epoch_hook=report if k == 0 else None)
            values.append(summary[metric])
        return sum(values) / len(values)

    done = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    remaining = max(0, trials - len(done))
    if remaining:
        study.optimize(objective, n_trials=remaining, catch=())
    table = trials_table(study)
    write_text_atomic(root / "trials.csv", table.to_csv(index=False))
    plot_study(study, root)
    best = best_experiment(cfg, study, root)
    return table, best


def trials_table(study) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        last = max(t.intermediate_values) if t.intermediate_values else None
        rows.append({
            "trial": t.number, "state": t.state.name.lower(), "value": t.value,
            "epochs": None if last is None else last + 1, **t.params,
        })  # fmt: skip
    return pd.DataFrame(rows)


def plot_study(study, root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    optuna.visualization.matplotlib.plot_optimization_history(study)
    plt.gcf().savefig(root / "history.png", dpi=100, bbox_inches="tight")
    plt.close("all")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) >= 2 and len(study.best_params) >= 1:
        optuna.visualization.matplotlib.plot_param_importances(study)
        plt.gcf().savefig(root / "importance.png", dpi=100, bbox_inches="tight")
        plt.close("all")


def best_experiment(cfg: dict, study, root: Path) -> Path:
    """runs/<exp>/tune/<exp>_tuned.yaml: the experiment with the best trial's values and no search section."""
    try:
        best = study.best_trial
    except ValueError as exc:
        raise KitError(f"{root}: no trial completed (all pruned or failed); widen the search ranges") from exc
    tuned = {
        k: v for k, v in copy.deepcopy(with_params(cfg, best.params)).items() if k not in ("search", "name", "source")
    }
    tuned["experiment"] = cfg.get("experiment", cfg["name"])  # `kit runs` shows the tuned values as overrides
    path = root / f"{cfg['name']}_tuned.yaml"
    header = f"# {cfg['name']} with trial {best.number}'s values ({study.direction.name.lower()}d: {best.value:.4f})\n"
    write_text_atomic(path, header + yaml.safe_dump(tuned, sort_keys=False))
    return path
