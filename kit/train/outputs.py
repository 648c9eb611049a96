"""After training: OOF merged over finished folds, and test predictions averaged over trained folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from kit import paths
from kit.config import config_differences, load_config
from kit.errors import KitError
from kit.io import write_text_atomic
from kit.kaggle.ledger import record_written
from kit.train import checkpoint, distributed
from kit.train.runner import build_model, memory_format, predict, prepare


def finished_folds(cfg: dict, oof_file: str) -> list[Path]:
    """Folds whose run finished (summary.json written last); interrupted or running ones are named and left out."""
    root = paths.runs_root() / cfg["name"]
    trained = sorted(p for p in root.glob("fold*") if (p / oof_file).exists() and (p / "model_best.pt").exists())
    folds = [p for p in trained if (p / "summary.json").exists()]
    unfinished = [p.name for p in trained if p not in folds]
    if unfinished:
        print(f"{root}: left out {', '.join(unfinished)}: not finished (interrupted or still running; --resume)")
    if not folds:
        raise KitError(f"{root}: no finished fold (run `task train-fold fold=0 exp={cfg['name']}` first)")
    return folds


def fold_config(folds: list[Path]) -> dict:
    """The resolved config the folds were trained with; folds trained with different configs are refused."""
    configs = [load_config(f / "config.yaml") for f in folds]
    for fold, other in zip(folds[1:], configs[1:], strict=True):
        changed = [k for k in config_differences(configs[0], other) if k != "fold"]
        if changed:
            raise KitError(
                f"{folds[0]} and {fold} were trained with different configs ({', '.join(changed[:8])}); "
                "retrain one, or give the other run its own name= override"
            )
    return {k: v for k, v in configs[0].items() if k != "fold"}


def test_predictions_path(cfg: dict, training) -> Path:
    """runs/<exp>/test_pred.* : the fold-averaged test probabilities, in the OOF's format (for stacking)."""
    return paths.runs_root() / cfg["name"] / training.test_file()


def merge_oof(cfg: dict) -> tuple[Path, dict[str, float], int]:
    """runs/<exp>/oof.* from the finished folds only (rows of untrained folds are absent), and its CV metric's parts
    (the official one named under 'metric')."""
    _, training, _ = prepare(cfg, distributed.Context())
    folds = finished_folds(cfg, training.oof_file)
    fold_config(folds)
    parts = [training.load_predictions(f / training.oof_file) for f in folds]
    ids = [i for part_ids, _ in parts for i in part_ids]
    probs = np.concatenate([part_probs for _, part_probs in parts])
    scores = training.evaluate(ids, probs)
    path = paths.runs_root() / cfg["name"] / training.oof_file
    training.save_predictions(path, ids, probs)
    cv = {"metric": training.metric_name, "folds": [f.name for f in folds], **scores}
    write_text_atomic(path.parent / "cv.json", json.dumps(cv, indent=1))
    return path, {"metric": training.metric_name, **scores}, len(folds)


BACKENDS = ("torch", "onnxruntime")


def trained_fold(cfg: dict, fold: int):
    """A finished fold's folder, its own resolved config (reading data from this command's data.dir), the training
    object and the folds."""
    from kit.train.runner import fold_dir

    folder = fold_dir(cfg, fold)
    if not (folder / "summary.json").exists() or not (folder / "model_best.pt").exists():
        raise KitError(f"{folder}: no finished fold (task train-fold exp={cfg['name']} fold={fold} first)")
    trained = load_config(folder / "config.yaml")
    trained["data"] = {**trained["data"], "dir": cfg["data"]["dir"]}
    _, training, folds = prepare(trained, distributed.Context())
    return folder, trained, training, folds


def best_model(cfg: dict, training, fold: Path, device: torch.device) -> torch.nn.Module:
    """A fold's best weights in the config's model, in eval mode and the run's memory format."""
    model = build_model(cfg, training).to(device)
    checkpoint.load_weights(model, checkpoint.load(fold / "model_best.pt")["model"], fold / "model_best.pt")
    return model.to(memory_format=memory_format(cfg)).eval()


def fold_average(cfg: dict, training, folds: list[Path], dataset, ids: list[int], backend: str = "torch") -> np.ndarray:
    """The probabilities of every fold's best model over a dataset (with the config's TTA), averaged; backend
    onnxruntime runs each fold's exported model.onnx instead."""
    if backend not in BACKENDS:
        raise KitError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    device = torch.device("cuda" if torch.cuda.is_available() and backend == "torch" else "cpu")
    loader = DataLoader(dataset, cfg["trainer"]["batch_size"])
    total = None
    for fold in folds:
        if backend == "onnxruntime":
            from kit.export.onnx import MODEL_FILE, OnnxModel

            model = OnnxModel(fold / MODEL_FILE)
        else:
            model = best_model(cfg, training, fold, device)
        order, logits, _ = predict(model, loader, cfg, device)
        assert order == list(ids), "the loader keeps the dataset's order"
        probs = training.probabilities(logits)
        total = probs if total is None else total + probs
    return total / len(folds)


def predict_test(cfg: dict, backend: str = "torch") -> tuple[Path, int, dict[str, float] | None]:
    """Average the test predictions of every trained fold's best model into runs/<exp>/test_pred.*; write a
    validated submission."""
    root = paths.runs_root() / cfg["name"]
    done = sorted(p.parent for p in root.glob("fold*/summary.json"))
    if not done:
        raise KitError(f"{root}: no finished fold (run `task train-fold fold=0 exp={cfg['name']}` first)")
    trained = fold_config(done)
    trained["data"] = {**trained["data"], "dir": cfg["data"]["dir"]}  # the test data is where this machine has it
    ignored = [k for k in config_differences(trained, cfg) if not k.startswith("trainer.")]
    if ignored:
        print(f"predicting with the folds' own config; the command line's differs in {', '.join(ignored[:8])}")
    cfg = trained
    comp, training, _ = prepare(cfg, distributed.Context())
    folds = finished_folds(cfg, training.oof_file)
    ids = training.ids("test")
    if not ids:
        raise KitError(
            f"{cfg['data']['dir'] or 'the data'}: no test split to predict; the CV of `task oof` is the figure"
        )
    mean = fold_average(cfg, training, folds, training.dataset(ids, "test"), ids, backend)
    training.save_predictions(test_predictions_path(cfg, training), ids, mean)
    scores = training.evaluate(ids, mean) if training.test_labelled() else None
    if scores:
        record = {"metric": training.metric_name, "folds": [f.name for f in folds], **scores}
        write_text_atomic(root / "test_scores.json", json.dumps(record, indent=1))
    path = paths.submissions_root() / comp.slug / f"{cfg['name']}.csv"
    training.write_submission(path, ids, mean)
    record_written(root, path)
    return path, len(folds), scores
