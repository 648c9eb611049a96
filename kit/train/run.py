"""A trained run: runs/<name>/ and its finished folds, which share one resolved config and one data fingerprint.
Every command after training (oof, predict, explain, export, stack, push, rehearse, package-codabench) opens the run
here and works on the data it was trained on; the experiment YAML is read only to start a run, and to notice that it
changed since."""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from kit import paths
from kit.competitions.base import SYNTHETIC_MARKER
from kit.config import apply_overrides, check_name, config_differences, load_experiment, lookup
from kit.data.fingerprint import fingerprint
from kit.errors import KitError
from kit.train.identity import describe_data, plural, read_identity, recorded_config, yaml_snapshot

# what a command after training may change without changing what the run is
INFERENCE_KEYS = ("data.dir", "trainer.batch_size", "trainer.num_workers", "trainer.precision")
FOLD = re.compile(r"fold\d+")  # what a fold's folder looks like (paths.fold_name); its number is in summary.json


def _show(value) -> str:
    return "null" if value is None else repr(value)


WHERE_WEIGHTS_LIE = ("model.pretrained", "model.weights.source", "model.weights.file")


def _same_weights(a: dict, b: dict, key: str) -> bool:
    """The same pretrained file (by SHA-256) read from another place, e.g. a fold fine-tuned on Kaggle."""
    digest = lookup(a, "model.weights.sha256")
    return key in WHERE_WEIGHTS_LIE and digest is not None and digest == lookup(b, "model.weights.sha256")


def _differences(a: dict, b: dict, limit: int = 4) -> str:
    keys = [k for k in config_differences(a, b)
            if k not in ("name", "experiment", "source") and not _same_weights(a, b, k)]  # fmt: skip
    return ", ".join(f"{k} {_show(lookup(a, k))} -> {_show(lookup(b, k))}" for k in keys[:limit])


def run_name(exp: str, overrides) -> str:
    """The run folder a command means: name= when given, else the experiment's own name (or a run folder's)."""
    for override in overrides:
        key, _, value = override.partition("=")
        if key == "name":
            return check_name(value)
    try:
        return check_name(load_experiment(exp)["name"])
    except KitError:
        if (paths.runs_root() / exp).is_dir() and FOLD.fullmatch(exp) is None:
            return check_name(exp)
        raise


@dataclass(frozen=True)
class Fold:
    """A finished fold of a run: its number (as its summary.json records it) and its folder, which it stands for
    where a path is wanted (`fold / "model_best.pt"`)."""

    index: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def __truediv__(self, part) -> Path:
        return self.path / part

    def __fspath__(self) -> str:
        return os.fspath(self.path)


def finished_folds(root: Path) -> list[Fold]:
    """Folds whose run finished (summary.json written last), in fold order; interrupted or running ones are named
    and left out."""
    started = sorted(p for p in root.glob("fold*") if FOLD.fullmatch(p.name) and p.is_dir())
    started = [p for p in started if (p / "config.yaml").exists() or (p / "model_last.pt").exists()]
    done = [p for p in started if (p / "summary.json").exists() and (p / "model_best.pt").exists()]
    unfinished = [p.name for p in started if p not in done]
    if unfinished:
        print(f"{root}: left out {', '.join(unfinished)}: not finished (interrupted or still running; --resume)")
    if not done:
        raise KitError(f"{root}: no finished fold (run `task train-fold fold=0 exp={root.name}` first)")
    return sorted((Fold(json.loads((p / "summary.json").read_text())["fold"], p) for p in done), key=lambda f: f.index)


@dataclass
class Run:
    name: str
    root: Path
    config: dict  # as trained; data.dir is the folder this command reads (the trained one unless overridden)
    folds: list[Fold]
    trained_data: dict | None  # run.json's data record (None: trained before runs recorded it)
    overridden: dict = field(default_factory=dict)  # dotted key -> value this command set
    foreign: bool = False  # data.dir names other data than the run's own (predict): no folds are made of it
    _prepared: tuple | None = field(default=None, repr=False)
    _warned: bool = field(default=False, repr=False)

    @classmethod
    def open(cls, exp: str, overrides=(), force: bool = False, other_data: bool = False) -> Run:
        """runs/<name>/ as trained. `overrides` may change only INFERENCE_KEYS (others must equal the trained
        values); data.dir may name other data only where `other_data` (predicting another test set), else it must
        hold the trained data (a moved folder). A changed YAML is refused unless `force`."""
        name = run_name(exp, overrides)
        root = paths.runs_root() / name
        folds = finished_folds(root)
        configs = [recorded_config(f.path) for f in folds]
        records = [read_identity(f.path) for f in folds]
        for folder, other, record in zip(folds[1:], configs[1:], records[1:], strict=True):
            changed = _differences(configs[0], other)
            if changed:
                raise KitError(
                    f"{folds[0].path} and {folder.path} were trained with different configs ({changed}); retrain one, "
                    "or give the other run its own name= override"
                )
            if records[0] and record and records[0]["data"]["sha256"] != record["data"]["sha256"]:
                raise KitError(
                    f"{folds[0].name} was trained on {describe_data(records[0]['data'])} and {folder.name} on "
                    f"{describe_data(record['data'])}; retrain one, or give the other run its own name="
                )
        trained, record = configs[0], records[0]
        _check_experiment(trained, record, root, force)
        config = copy.deepcopy(trained)
        data = record["data"] if record else None
        if data is not None and data["dir"] is not None:
            config["data"]["dir"] = data["path"]
        run = cls(name, root, config, folds, data)
        run._apply(overrides, other_data)
        return run

    def _apply(self, overrides, other_data: bool) -> None:
        wanted = apply_overrides(self.config, [o for o in overrides if not o.startswith("name=")])
        for key in config_differences(self.config, wanted):
            value = lookup(wanted, key)
            if key not in INFERENCE_KEYS:
                raise KitError(
                    f"{key}={_show(value)}: {self.root} was trained with {key}={_show(lookup(self.config, key))}; "
                    f"a trained run's config is fixed (train a new run with name=...), only "
                    f"{', '.join(INFERENCE_KEYS)} may change here"
                )
            self.overridden[key] = value
        if "data.dir" in self.overridden:
            self._check_data_override(self.overridden["data.dir"], other_data)
            if not self.foreign and self._is_trained_folder(self.overridden["data.dir"]):
                del self.overridden["data.dir"]  # the folder it trained on, named again: its own data, checked
        self.config = wanted
        if "data.dir" not in self.overridden:
            self._check_trained_data_present()

    def _check_data_override(self, value, other_data: bool) -> None:
        if not isinstance(value, str) or not value.strip():
            raise KitError(f"data.dir={_show(value)}: name the folder of the data (or leave data.dir out)")
        if not Path(value).exists():
            raise KitError(f"data.dir={value}: no such folder")
        if self.trained_data is None:
            self.foreign = other_data
            return
        now = fingerprint(value)
        if now["sha256"] != self.trained_data["sha256"]:
            if other_data:  # --force never makes other data the run's own: OOF scores and calibration would mix
                self.foreign = True
                return
            raise KitError(
                f"data.dir={value}: {self.root} was trained on {describe_data(self.trained_data)}, this folder is "
                f"other data ({plural(now['files'], 'file')}, fingerprint {now['sha256'][:12]}); only predict takes "
                "other data"
            )

    def _is_trained_folder(self, value: str) -> bool:
        return self.trained_data is not None and Path(value).resolve() == Path(self.trained_data["path"]).resolve()

    def _check_trained_data_present(self) -> None:
        data = self.trained_data
        if data is None or data["dir"] is None:
            return  # the synthetic data, or an old run: prepare() finds or regenerates it
        if not Path(data["path"]).exists():
            raise KitError(
                f"{self.root} was trained on {data['path']}, which is gone; give data.dir=<where it is now> "
                "(checked against the run's fingerprint)"
            )

    # What the commands use

    def prepare(self):
        """(competition, training object, folds) on this command's data; folds is None on other data than the
        run's own (predict's), which need not be splittable into folds."""
        if self._prepared is None:
            from kit.train import distributed
            from kit.train.prepare import prepare

            self._prepared = prepare(self.config, distributed.Context(), with_folds=not self.foreign)
        return self._prepared

    @property
    def data_dir(self) -> Path:
        comp = self.prepare()[0]
        return comp.data_dir(self.config["data"]["dir"]).resolve()

    def fold(self, k: int) -> Fold:
        for fold in self.folds:
            if fold.index == k:
                return fold
        folder = paths.fold_dir(self.name, k)
        raise KitError(f"{folder}: no finished fold (task train-fold exp={self.name} fold={k} first)")

    @property
    def phantom(self) -> bool:
        """Trained on the kit's built-in synthetic data (data.dir null, or a folder `kit synth` wrote), never on real
        images."""
        if self.trained_data is None:
            return False
        return self.trained_data["dir"] is None or (Path(self.trained_path()) / SYNTHETIC_MARKER).exists()

    def phantom_warning(self) -> str | None:
        """The line that says so when such weights predict other (real) data."""
        if not (self.phantom and self.foreign):
            return None
        return (f"warning: {self.name} was trained on the synthetic phantom ({self.trained_path()}), never on real "
                f"images: its predictions on {self.config['data']['dir']} are no model of that data")  # fmt: skip

    def warn_phantom(self) -> None:
        """Print the phantom warning once (the first line of a command that predicts real data with such weights)."""
        if self.phantom_warning() and not self._warned:
            print(self.phantom_warning(), flush=True)
            self._warned = True

    def data_record(self) -> dict:
        """Which data this command used, for the files it writes (test_scores.json, submission.json)."""
        own = "data.dir" not in self.overridden
        record = {"dir": str(self.data_dir), "trained_data": own, "trained_on_phantom": self.phantom}
        if not own:
            record["trained_on"] = self.trained_path()
        if self.phantom_warning():
            record["warning"] = self.phantom_warning()
        return record

    def trained_path(self) -> str:
        return self.trained_data["path"] if self.trained_data else str(self.config["data"]["dir"])

    def describe(self) -> str:
        if "data.dir" in self.overridden:
            return f"{self.name}: on {self.data_dir} (data.dir given here; trained on {self.trained_path()})"
        return f"{self.name}: on its training data, {self.data_dir}"


def _check_experiment(trained: dict, record: dict | None, root: Path, force: bool) -> None:
    """The YAML the run started from must read as it did then: a change would silently not apply (or, as with
    dataset.classes, would relabel the run's predictions)."""
    if record is None or record.get("experiment_yaml") is None:
        return
    now = yaml_snapshot(record["experiment"])
    if now is None:
        return
    changed = _differences(record["experiment_yaml"], now)
    if changed and not force:
        raise KitError(
            f"{root}: the YAML {record['experiment']} changed since the run was trained ({changed}); "
            f"retrain, or add --force to use the run as it was trained"
        )
    if changed:
        print(f"{root}: the YAML changed since training ({changed}); --force: using the run as it was trained")
