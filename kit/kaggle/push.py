"""What `task push-notebook`, `push-train` and `pull` do: build the datasets and notebook of an experiment under
runs/<exp>/kaggle/, publish them, run the notebook on Kaggle, submit it or fetch its outputs."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import nbformat

from kit import paths
from kit.competitions import competition_of, get_competition
from kit.config import apply_overrides, load_experiment
from kit.errors import KitError
from kit.kaggle import datasets, kernels
from kit.kaggle.bundle import stack_weights_bundle, stage_folders, weights_bundle
from kit.kaggle.client import username
from kit.kaggle.code import BACKEND_PACKAGES, PYTHONS, code_bundle
from kit.kaggle.notebook import (
    ACCELERATORS,
    REFUSED,
    inference_notebook,
    kernel_metadata,
    stack_inference_notebook,
    training_notebook,
)
from kit.models.pretrained import weights_path
from kit.train.run import Run

CODE_SLUG = "kaggle-kit-code"
PRETRAINED = "pretrained"  # the code dataset's folder of the pretrained weights a training notebook starts from


def check_backend(backend: str) -> str:
    if backend not in BACKEND_PACKAGES:
        raise KitError(f"--backend {backend}: expected one of {', '.join(BACKEND_PACKAGES)}")
    return backend


def kaggle_slug(name: str) -> str:
    return name.replace("_", "-").lower()


@dataclass
class Package:
    """Folders ready to publish: code (wheels), weights (fold checkpoints, absent for training), notebook."""

    root: Path
    owner: str
    competition: str  # the kit's name for it, e.g. rsna
    kernel: str

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def weights(self) -> Path:
        return self.root / "weights"

    @property
    def notebook(self) -> Path:
        return self.root / "notebook"


def fresh(folder: Path) -> Path:
    """A generated folder, emptied first so that no stale file is published with the new ones."""
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def write_notebook(folder: Path, notebook, metadata: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / "notebook.ipynb")
    (folder / kernels.METADATA).write_text(json.dumps(metadata, indent=1))


def owner_or_default(owner: str | None) -> str:
    owner = owner or username()
    if not owner:
        raise KitError("no Kaggle username: pass --owner, or set KAGGLE_USERNAME (an API token alone does not say it)")
    return owner


def exported_folds(run: Run, echo=print) -> None:
    """Every finished fold's model.onnx, exported (with its parity check) where missing or exported from other
    weights than the fold's current model_best.pt."""
    from kit.export.onnx import export_fold
    from kit.runtime.onnx_model import export_is_current

    for folder in run.folds:
        if not export_is_current(folder):
            path, record = export_fold(run, folder.index)
            echo(f"exported {path} (max |ONNX - PyTorch| {max(record['max_abs_difference'].values()):.1e})")


def build_inference(run: Run, owner: str, gpu: bool = False, wheels: list[Path] | None = None,
                    backend: str = "torch", pythons: tuple[str, ...] = PYTHONS) -> Package:  # fmt: skip
    """runs/<run>/kaggle/{code,weights,notebook}: the three things a code-competition submission needs. Backend
    onnxruntime ships each fold's model.onnx (exported now where needed) and predicts with it."""
    code_options = {"wheels": wheels, "backend": check_backend(backend), "pythons": pythons}
    package = Package(run.root / "kaggle", owner, run.config["competition"], kaggle_slug(f"{run.name}-infer"))
    files = ()
    if backend == "onnxruntime":
        from kit.runtime.onnx_model import MODEL_FILE, PARITY_FILE

        if any(stage_folders(fold.path) for fold in run.folds):
            raise KitError(f"--backend onnxruntime: {run.name} has earlier stages (fold<k>/localiser/); its "
                           "notebook predicts with PyTorch only")  # fmt: skip

        exported_folds(run)
        files = (MODEL_FILE, PARITY_FILE)  # the record names the weights the export came from: checked on Kaggle
    weights = weights_bundle(run.root, fresh(package.weights), owner, files)
    notebook = partial(inference_notebook, run.name, backend=backend)
    return inference_package(package, run.name, weights.root, notebook, gpu, code_options)


def build_stack_inference(name: str, owner: str, gpu: bool = False, wheels: list[Path] | None = None,
                          backend: str = "torch", pythons: tuple[str, ...] = PYTHONS) -> Package:  # fmt: skip
    """runs/stack-<name>/kaggle/{code,weights,notebook}: the stack's base experiments predict the hidden test set,
    then its fold meta-models combine them."""
    if check_backend(backend) != "torch":
        raise KitError(f"--backend {backend}: a stack's notebook predicts with PyTorch only")
    stack_dir = paths.runs_root() / (name if name.startswith("stack-") else f"stack-{name}")
    if not (stack_dir / "stack_model.json").exists() or not (stack_dir / "scores.json").exists():
        raise KitError(f"{stack_dir}: no saved stack (run `task stack` first)")
    competition = json.loads((stack_dir / "scores.json").read_text())["competition"]
    exps = json.loads((stack_dir / "stack_model.json").read_text())["experiments"]
    package = Package(stack_dir / "kaggle", owner, competition, kaggle_slug(f"{stack_dir.name}-infer"))
    bases = [Run.open(exp).root for exp in exps]  # each base as trained: its folds agree, its YAML is unchanged
    weights = stack_weights_bundle(stack_dir, bases, fresh(package.weights), owner)
    notebook = partial(stack_inference_notebook, stack_dir.name, exps)
    code_options = {"wheels": wheels, "pythons": pythons}
    return inference_package(package, stack_dir.name, weights.root, notebook, gpu, code_options)


def inference_package(package: Package, title: str, weights: Path, notebook, gpu: bool, code_options: dict
                      ) -> Package:  # fmt: skip
    """The code dataset (`code_options` for code_bundle) and the notebook (`notebook(competition slug, code slug,
    weights slug)`) beside a built weights dataset."""
    comp = get_competition(package.competition)
    code_bundle(fresh(package.code), package.owner, CODE_SLUG, **code_options)
    weights_slug = datasets.read_metadata(weights)["slug"]
    meta = kernel_metadata(package.owner, package.kernel, f"{title} inference", comp.slug,
                           [f"{package.owner}/{CODE_SLUG}", f"{package.owner}/{weights_slug}"], gpu=gpu)  # fmt: skip
    notebook = notebook(comp.slug, CODE_SLUG, weights_slug, oof_file=comp.training_class.oof_file)
    write_notebook(fresh(package.notebook), notebook, meta)
    return package


def build_training(exp: str, fold: int, owner: str, overrides: list[str] = (), wheels: list[Path] | None = None,
                   pythons: tuple[str, ...] = PYTHONS, accelerator: str = "t4x2") -> Package:  # fmt: skip
    """runs/<exp>/kaggle-train-fold<k>/{code,notebook}: a GPU notebook that trains one fold (on T4 x2, both GPUs
    data-parallel)."""
    if accelerator in REFUSED:
        raise KitError(f"--accelerator {accelerator}: {REFUSED[accelerator]}")
    if accelerator not in ACCELERATORS:
        raise KitError(f"--accelerator {accelerator}: expected one of {', '.join(ACCELERATORS)}")
    cfg = load_experiment(exp)
    comp = competition_of(cfg)
    root = paths.runs_root() / cfg["name"] / f"kaggle-train-{paths.fold_name(fold)}"
    package = Package(root, owner, cfg["competition"], kaggle_slug(f"{cfg['name']}-{paths.fold_name(fold)}-train"))
    code_bundle(fresh(package.code), owner, CODE_SLUG, wheels=wheels, pythons=pythons)
    overrides = [*overrides, *carry_pretrained(apply_overrides(cfg, list(overrides)), package.code)]
    notebook = training_notebook(cfg["name"], fold, comp.slug, CODE_SLUG, list(overrides))
    meta = kernel_metadata(owner, package.kernel, f"{cfg['name']} fold {fold} training", comp.slug,
                           [f"{owner}/{CODE_SLUG}"], accelerator=accelerator)  # fmt: skip
    write_notebook(fresh(package.notebook), notebook, meta)
    return package


def carry_pretrained(cfg: dict, code: Path) -> list[str]:
    """The run's pretrained weights file, copied into the code dataset (pretrained/<file>), and the override that
    points the notebook at it: a fold fine-tuned on Kaggle starts from the same file (same SHA-256) offline."""
    spec = (cfg.get("model") or {}).get("pretrained")
    if not spec or spec == "hub":
        return []
    source = weights_path(str(spec))
    (code / PRETRAINED).mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, code / PRETRAINED / source.name)
    return [f"model.pretrained=/kaggle/input/{CODE_SLUG}/{PRETRAINED}/{source.name}"]


def publish_and_run(package: Package, notes: str, wait: bool = True, echo=print) -> int:
    """Create or version the datasets, push the notebook (which runs it), and wait for the run. Its version."""
    for folder in (package.code, package.weights):
        if folder.exists():
            echo(f"dataset {datasets.publish(folder, notes)}")
    version = kernels.push(package.notebook)
    echo(f"kernel {package.owner}/{package.kernel} version {version} pushed")
    if wait:
        kernels.wait(package.owner, package.kernel, echo=echo)
    return version


def pull_fold(exp: str, fold: int, owner: str) -> list[Path]:
    """The training notebook's runs/<exp>/fold<k>/ outputs, into this machine's runs/."""
    cfg = load_experiment(exp)
    kernel = kaggle_slug(f"{cfg['name']}-{paths.fold_name(fold)}-train")
    prefix = f"runs/{cfg['name']}/{paths.fold_name(fold)}/"
    files = kernels.pull(owner, kernel, paths.home(), prefix=prefix)
    if not files:
        raise KitError(f"kernel {owner}/{kernel}: no output under {prefix}; has its run finished?")
    return files
