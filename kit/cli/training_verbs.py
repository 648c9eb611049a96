"""Verbs on an experiment: train, merge the OOF, predict, export, explain, tune, package."""

from __future__ import annotations

from kit.cli.common import AFTER_TRAINING, DEFAULT_EXPERIMENT, experiment, fold_list, force_argument, trained_run
from kit.errors import KitError


def cmd_train_fold(args) -> None:
    from kit.train.runner import train_fold

    summary = train_fold(experiment(args), args.fold, resume=args.resume, force=args.force)
    if summary["rank"] == 0:
        metric = summary["metric"]
        baseline = summary[f"prior_baseline_{metric}"]
        minutes, seconds = divmod(round(summary["seconds"]), 60)
        if summary.get("parts"):  # the metric's parts at the best epoch (per-class IoU, AUC beside accuracy...)
            print(", ".join(f"{k} {v:.4f}" for k, v in summary["parts"].items()))
        print(f"fold {args.fold}: best epoch {summary['best_epoch']} of {summary['epochs_run']}, "
              f"{summary['samples_per_s']:.1f} samples/s, {minutes} min {seconds} s in all")  # fmt: skip
        against = f"prior baseline {baseline:.4f} ({summary['ratio_to_baseline']:.2f}x)"
        if f"oracle_{metric}" in summary:
            against += (f", oracle {summary[f'oracle_{metric}']:.4f}: {100 * summary['gap_closed']:.0f}% of the "
                        f"prior-to-oracle gap closed, regret {summary['regret']:.2f}")  # fmt: skip
        print(against)
        print(f"{metric} {summary[metric]:.4f}")


def cmd_train_all(args) -> None:
    from kit.train.runner import train_fold

    cfg = experiment(args)
    folds = range(cfg["data"]["folds"])  # a finished fold is kept, an interrupted one resumes (--restart: neither)
    summaries = [train_fold(cfg, fold, resume=not args.restart, force=args.force) for fold in folds]
    scores = [s[s["metric"]] for s in summaries]
    print("fold scores: " + ", ".join(f"{s:.4f}" for s in scores))
    cmd_oof(args)


def cmd_oof(args) -> None:
    from kit.train.outputs import merge_oof

    path, scores, n_folds = merge_oof(trained_run(args))
    metric = scores["metric"]
    print(f"{path}: {n_folds} fold(s) merged")
    against = f"prior baseline {scores[f'prior_baseline_{metric}']:.4f}"
    if f"oracle_{metric}" in scores:
        against += f", oracle {scores[f'oracle_{metric}']:.4f}: regret {scores['regret']:.2f}"
    print(against)
    print(f"CV {metric} {scores[metric]:.4f}")


def cmd_predict(args) -> None:
    from kit.runtime.inference import BACKENDS
    from kit.train.outputs import predict_test

    if args.backend not in BACKENDS:
        raise KitError(f"--backend {args.backend}: expected one of {', '.join(BACKENDS)}")
    path, n_folds, scores = predict_test(trained_run(args, other_data=True), args.backend)
    print(f"{path}: test predictions averaged over {n_folds} fold(s)")
    if scores:
        print(
            "labelled test split (runs/<exp>/test_scores.json): " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        )


def cmd_package_codabench(args) -> None:
    from kit.codabench.package import package

    path, found = package(trained_run(args))
    print(f"{path}: {found['zip_mb']:.1f} MB, model.py + model.pt2 ({found['classes']} classes)")
    print(
        f"rehearsal without the kit: ({found['images']},) {found['dtype']} labels in range, equal to the kit's "
        f"predictions (probabilities within {found['max_prob_diff']:.1e}); load {found['load_s']:.1f} s, "
        f"{found['s_per_1000']:.2f} s per 1,000 images"
    )


def cmd_explain(args) -> None:
    from kit.explain import explain_fold

    written = explain_fold(trained_run(args), args.fold)
    print(f"{len(written)} picture(s) in {written[0].parent}")


def cmd_export(args) -> None:
    from kit.export.onnx import export_fold
    from kit.export.quantize import MODES

    if args.quantize and args.quantize not in MODES:
        raise KitError(f"--quantize {args.quantize}: expected one of {', '.join(MODES)}")
    run = trained_run(args)
    path, record = export_fold(run, args.fold, args.opset)
    worst = max(record["max_abs_difference"].values())
    print(
        f"{path}: outputs {', '.join(record['outputs'])}; ONNX Runtime vs PyTorch on {record['batch']} validation "
        f"images: max |difference| {worst:.1e} (tolerance {record['tolerance']:.0e}); {record['export_s']} s"
    )
    if args.quantize:
        from kit.export.quantize import quantize_fold

        path, record = quantize_fold(run, args.fold, args.quantize)
        for name in ("fp32", "int8"):
            part = record[name]
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in part["metrics"].items())
            print(f"{name}: {part['ms_per_batch']} ms per batch of {record['batch']}, {part['mb']} MB; {metrics}")
        print(f"{path}: {record['speedup']}x fp32's speed on {record['validation_samples']} validation samples")


def cmd_tune(args) -> None:
    from kit.train.tune import tune

    table, best = tune(experiment(args), args.trials, args.folds)
    print(table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.4g}"))
    print(f"best configuration: {best} (task train-fold exp={best} fold=0)")


def add_verbs(verbs) -> None:
    for verb, func, help_text in (
        ("train-fold", cmd_train_fold, "train fold(s) of an experiment: runs/<exp>/fold<k>/"),
        ("train-all", cmd_train_all, "train every fold, then merge the OOF"),
        ("oof", cmd_oof, "merge finished folds' OOF into runs/<exp>/ and print the CV metric"),
        ("predict", cmd_predict, "average trained folds' test predictions into submissions/<slug>/<exp>.csv"),
        ("export", cmd_export, "a fold's best model as ONNX, checked against PyTorch: runs/<exp>/fold<k>/model.onnx"),
        ("tune", cmd_tune, "Optuna search over the experiment's search: ranges: runs/<exp>/tune/"),
        ("explain", cmd_explain, "where a fold's model looks (Grad-CAM, attention maps): runs/<exp>/fold<k>/explain/"),
        ("package-codabench", cmd_package_codabench, "zip model.py + weights for Codabench, then rehearse it"),
    ):
        p = verbs.add_parser(verb, help=help_text)
        p.add_argument("--exp", default=DEFAULT_EXPERIMENT, help="experiment name (kit/experiments/) or YAML path")
        if verb == "predict":
            p.add_argument("--backend", default="torch", help="torch, or onnxruntime (each fold's model.onnx)")
        if verb == "export":
            p.add_argument("--opset", type=int, default=18, help="ONNX opset (17 or newer)")
            p.add_argument("--quantize", help="int8 (static, calibrated) or int8-dynamic: also write model.int8.onnx "
                           "and report its validation metrics and speed against fp32")  # fmt: skip
        if verb in ("train-fold", "explain", "export"):
            p.add_argument("--fold", type=int, default=0)
        if verb == "train-fold":
            p.add_argument("--resume", action="store_true", help="continue from model_last.pt (a finished fold: kept)")
        if verb == "train-all":
            p.add_argument("--restart", action="store_true", help="retrain every fold from scratch (by default a "
                           "finished fold is kept and an interrupted one resumes)")  # fmt: skip
        if verb.startswith("train"):
            p.add_argument("--force", action="store_true", help="continue even when the config changed")
            p.set_defaults(on_interrupt="interrupted; the fold continues where it stopped with --resume (train-all: "
                           "by default)")  # fmt: skip
        elif verb in AFTER_TRAINING:
            force_argument(p)
        if verb == "tune":
            p.add_argument("--trials", type=int, default=20, help="trials in all (a resumed search counts done ones)")
            p.add_argument(
                "--folds", type=fold_list, default=[0], help="folds each trial trains, e.g. 0 or 0,1,2 (mean)"
            )
        p.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
        p.set_defaults(func=func)
