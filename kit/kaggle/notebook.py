"""The code-competition inference notebook (nbformat) and its kernel-metadata.json.

The notebook runs without internet: it installs the kit from the code dataset's wheels, puts the weights dataset's
fold checkpoints where `kit predict` looks, predicts every study under /kaggle/input/<slug>/, and writes a validated
/kaggle/working/submission.csv. A stack's notebook does so for each base experiment, then applies the stack's fold
meta-models to their predictions. `KAGGLE_ROOT` (default /kaggle) lets a rehearsal run it against a simulated tree.
The training notebook (push-train) installs the same way and runs one fold on Kaggle's GPU into /kaggle/working/runs.
"""

from __future__ import annotations

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = """\
import importlib, json, os, shutil, subprocess, sys
from importlib import metadata
from pathlib import Path

ROOT = Path(os.environ.get("KAGGLE_ROOT", "/kaggle"))
CODE, WEIGHTS = ROOT / "input" / {code!r}, ROOT / "input" / {weights!r}
WORK = ROOT / "working"
try:
    from packaging.version import Version
except ImportError:
    from pip._vendor.packaging.version import Version


def install(*what):
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                    "--find-links", str(CODE), *what], check=True)
    importlib.invalidate_caches()


def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# Keep what the image has when it is new enough; install from the code dataset only what is missing or too old.
# torch, numpy, pandas... are never replaced: the dataset carries no wheel of them.
needs = json.loads((CODE / "requirements.json").read_text())
for name, need in needs["packages"].items():
    have = version(name)
    if have and Version(have) >= Version(need["minimum"]):
        print(f"kept {{name}} {{have}}")
    elif need["bundled"]:
        try:
            install(f"{{name}}>={{need['minimum']}}")
        except subprocess.CalledProcessError:
            raise RuntimeError(f"{{name}}>={{need['minimum']}}: the image has {{have or 'none'}} and the dataset no "
                               f"wheel for Python {{sys.version_info[0]}}.{{sys.version_info[1]}}") from None
        print(f"installed {{name}} {{version(name)}} from the dataset (the image had {{have or 'none'}})")
    elif have:
        print(f"kept {{name}} {{have}}, older than the {{need['minimum']}} rehearsed; the dataset carries none")
    else:
        raise RuntimeError(f"{{name}}>={{need['minimum']}} is needed; the image lacks it and the dataset carries none")
install(str(CODE / needs["kit"]))
print(f"installed kaggle-kit {{version('kaggle-kit')}} from the dataset")
"""

PLACE_WEIGHTS = """\
runs = WORK / "runs" / {exp!r}
for fold in sorted((WEIGHTS / {source!r}).glob("fold*")):
    (runs / fold.name).mkdir(parents=True, exist_ok=True)
    for path in fold.rglob("*"):  # model_best.pt, config.yaml, summary.json (model.onnx; earlier stages' folders)
        if path.is_file():
            target = runs / fold.name / path.relative_to(fold)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    (runs / fold.name / {oof!r}).touch()  # marks the fold as trained for `kit predict`
print(sorted(p.name for p in runs.iterdir()))
"""

PREDICT = """\
os.environ["KIT_HOME"] = str(WORK)
from kit.train.outputs import predict_test
from kit.train.run import Run

# the run as trained (config.yaml, run.json beside each fold), reading the competition's data here
run = Run.open({exp!r}, [f"data.dir={{ROOT / 'input' / {slug!r}}}"], force=True, other_data=True)
path, folds, _ = predict_test(run, {backend!r})
shutil.copy2(path, WORK / "submission.csv")
print(f"submission.csv from {{folds}} fold(s): {{sum(1 for _ in open(WORK / 'submission.csv')) - 1}} rows")
shutil.copy2(run.root / "timings.json", WORK / "timings.json")  # seconds per stage: the rehearsal's time budget
timings = json.loads((WORK / "timings.json").read_text())
print({{name: round(s / timings["samples"], 2) for name, s in timings["seconds"].items()}}, "seconds per sample")
"""

STACK = """\
os.environ["KIT_HOME"] = str(WORK)
from kit.stack.apply import predict_stack
from kit.train.run import Run

data_dir = ROOT / "input" / {slug!r}
runs = [Run.open(exp, [f"data.dir={{data_dir}}"], force=True, other_data=True) for exp in {exps!r}]
path = predict_stack(WEIGHTS / "stack", runs)
shutil.copy2(path, WORK / "submission.csv")
print(f"submission.csv from the stack of {{len(runs)}} experiments: "
      f"{{sum(1 for _ in open(WORK / 'submission.csv')) - 1}} rows")
timings = [json.loads((run.root / "timings.json").read_text()) for run in runs]  # each base's stages
(WORK / "timings.json").write_text(json.dumps({{
    "samples": timings[0]["samples"], "total": sum(t["total"] for t in timings),
    "seconds": {{f"{{run.name}}: {{k}}": v for run, t in zip(runs, timings) for k, v in t["seconds"].items()}}}}))
"""

TRAIN = """\
os.environ["KIT_HOME"] = str(WORK)
from kit.train.launch import train_fold_on_every_gpu

# On T4 x2, one DDP process per GPU under torchrun; on one GPU, in this kernel.
summary = train_fold_on_every_gpu({exp!r}, {fold}, [f"data.dir={{ROOT / 'input' / {slug!r}}}", *{overrides!r}])
shutil.rmtree(WORK / "cache", ignore_errors=True)  # preprocessed studies: large, and rebuilt anywhere
metric = summary["metric"]
print({{k: summary[k] for k in ("best_epoch", metric, f"prior_baseline_{{metric}}")}})
"""


def _notebook(cells):
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nbformat.validate(notebook)
    return notebook


def training_notebook(exp: str, fold: int, slug: str, code_dataset: str, overrides: list[str] = ()):
    """Train one fold of an experiment on Kaggle; its outputs land in /kaggle/working/runs/<exp>/fold<k>/."""
    return _notebook([
        new_markdown_cell(f"# {exp} fold {fold}: training on `{slug}`\n\nBuilt by the kit; runs offline."),
        new_code_cell(SETUP.format(code=code_dataset, weights="")),
        new_code_cell(TRAIN.format(exp=exp, fold=int(fold), slug=slug, overrides=list(overrides))),
    ])  # fmt: skip


def inference_notebook(
    exp: str, slug: str, code_dataset: str, weights_dataset: str, *, oof_file: str, backend: str = "torch"
):
    """Datasets are given by their slug (the folder name under /kaggle/input)."""
    cells = [
        new_markdown_cell(f"# {exp}: inference for `{slug}`\n\nBuilt by the kit; runs offline."),
        new_code_cell(SETUP.format(code=code_dataset, weights=weights_dataset)),
        new_code_cell(PLACE_WEIGHTS.format(exp=exp, source="", oof=oof_file)),
        new_code_cell(PREDICT.format(exp=exp, slug=slug, backend=backend)),
    ]
    return _notebook(cells)


def stack_inference_notebook(stack: str, exps: list[str], slug: str, code_dataset: str, weights_dataset: str, *,
                             oof_file: str):  # fmt: skip
    """The weights dataset holds each base experiment's folds under <exp>/ and the stack's meta-models under stack/."""
    cells = [
        new_markdown_cell(f"# {stack}: stacked inference for `{slug}`\n\nBase experiments: {', '.join(exps)}. "
                          "Built by the kit; runs offline."),
        new_code_cell(SETUP.format(code=code_dataset, weights=weights_dataset)),
        *(new_code_cell(PLACE_WEIGHTS.format(exp=exp, source=exp, oof=oof_file)) for exp in exps),
        new_code_cell(STACK.format(slug=slug, exps=list(exps))),
    ]  # fmt: skip
    return _notebook(cells)


# kernel-metadata.json's machine_shape for each accelerator a push can ask for. The P100 is not one: the default
# image's PyTorch (CUDA 12.8 builds) has no kernels for its compute capability 6.0 (Kaggle/kaggle-cli#1151).
ACCELERATORS = {"t4x2": "NvidiaTeslaT4"}
REFUSED = {"p100": "Kaggle's default image's PyTorch has no kernels for the P100 (compute capability 6.0; "
                   "Kaggle/kaggle-cli#1151): use --accelerator t4x2 (T4 x2)"}  # fmt: skip


def kernel_metadata(owner: str, kernel_slug: str, title: str, competition: str, datasets: list[str],
                    gpu: bool = False, accelerator: str | None = None) -> dict:  # fmt: skip
    """kernel-metadata.json for a code-competition notebook: no internet, the competition and datasets attached;
    `accelerator` (t4x2) picks the GPU."""
    shape = {"machine_shape": ACCELERATORS[accelerator]} if accelerator else {}
    return {
        **shape,
        "id": f"{owner}/{kernel_slug}",
        "title": title,
        "code_file": "notebook.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": gpu or bool(accelerator),
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": datasets,
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }
