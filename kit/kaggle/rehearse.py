"""`task rehearse`: run the exact inference notebook locally with nbclient before anything is pushed.

The notebook sees a simulated /kaggle tree (KAGGLE_ROOT): the synthetic competition with more test studies than the
visible sample lists, the code dataset's wheels and the weights dataset. Its kernel runs in a fresh virtual
environment that sees a stand-in for Kaggle's image: by default this machine's packages except the kit and those the
image lacks (onnxruntime too when the dataset carries it); with `image` a profile's versions (kit.kaggle.image). The
kit and what the image lacks must come from the code dataset's wheels, installed offline as on Kaggle.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import nbformat
import pandas as pd
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from kit.competitions import get_competition
from kit.errors import KitError
from kit.kaggle import datasets
from kit.kaggle.code import BACKEND_PACKAGES, IMAGE_LACKS, MANIFEST, runtime_needs
from kit.kaggle.image import distribution_roots, profile_path, read_profile, stand_in
from kit.kaggle.push import CODE_SLUG, Package

KERNEL_NAME = "kit-rehearsal"


def simulated_image(dest: Path, lacks=IMAGE_LACKS) -> Path:
    """Links to this environment's installed packages, minus the kit (and its editable-install hooks) and `lacks`."""
    dest.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    hidden = distribution_roots((*lacks, "kaggle-kit"))
    for entry in site.iterdir():
        if entry.name in hidden or entry.suffix == ".pth" or entry.name.startswith("__editable__"):
            continue
        (dest / entry.name).symlink_to(entry.absolute())
    return dest


def image_folders(package: Package, image: str, scratch: Path, echo=print) -> list[Path]:
    """The folders of the stand-in image: `here` (this machine's packages) or a profile's (built once, cached)."""
    needs = json.loads((package.code / MANIFEST).read_text())
    if image == "here":
        optional = [n for names in BACKEND_PACKAGES.values() for n in names]
        lacks = IMAGE_LACKS + tuple(n for n in optional if needs["packages"].get(n, {}).get("bundled"))
        return [simulated_image(scratch / "image", lacks)]
    return stand_in(read_profile(profile_path(image)), runtime_needs(needs["backend"]), echo)


def fresh_environment(root: Path, image: list[Path]) -> Path:
    """A virtual environment (with pip) that also sees the stand-in image's folders; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, capture_output=True)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    (Path(site) / "kaggle_image.pth").write_text("".join(f"{folder}\n" for folder in image))
    return python


@contextmanager
def kernel_spec(python: Path, scratch: Path, env: dict[str, str]):
    """A Jupyter kernel named KERNEL_NAME that runs `python` with `env` added, visible to nbclient while the block
    runs (JUPYTER_PATH is set for the block only)."""
    spec = scratch / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec_json = {"argv": argv, "display_name": KERNEL_NAME, "language": "python", "env": env}
    (spec / "kernel.json").write_text(json.dumps(spec_json))
    with mock.patch.dict(os.environ, {"JUPYTER_PATH": str(scratch / "jupyter")}):
        yield KERNEL_NAME


TRAIN_SAMPLES = 10  # enough for the 5 folds a default config makes when it reads the competition


def simulated_tree(root: Path, package: Package, competition: str, test_samples: int, visible: int, seed: int,
                   given: Path | None = None):  # fmt: skip
    """root/input/<competition slug> (`given`, a folder in the competition's layout, or synthetic with `test_samples`
    test samples, the sample listing `visible`), root/input/<code>, root/input/<weights>, root/working. Returns the
    expected submission row ids."""
    comp = get_competition(competition)
    inputs = root / "input"
    inputs.mkdir(parents=True)
    (root / "working").mkdir()
    if given is not None:
        (inputs / comp.slug).symlink_to(given.resolve(), target_is_directory=True)
        expected = comp.test_row_ids(given)
        if not expected:
            raise KitError(f"--input {given}: no test sample to predict in the {comp.slug} layout")
        data = None
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = comp.synth(inputs / comp.slug, train=TRAIN_SAMPLES, test=test_samples, seed=seed, force=False)
        expected = comp.test_row_ids(data)
    if data is not None and (data / "sample_submission.csv").exists():  # smaller than the test set, as on Kaggle
        sample = pd.read_csv(data / "sample_submission.csv")
        visible_rows = sample[comp.id_column].astype(str).isin(comp.test_row_ids(data, limit=visible))
        sample[visible_rows].to_csv(data / "sample_submission.csv", index=False)
    (inputs / CODE_SLUG).symlink_to(package.code.absolute())
    (inputs / datasets.read_metadata(package.weights)["slug"]).symlink_to(package.weights.absolute())
    return expected


def check_submission(path: Path, competition: str, expected: list[str]) -> list[str]:
    """The classic failures: no file, wrong row count, missing or renamed columns, NaN, invalid values."""
    if not path.exists():
        return [f"{path.name} was not written"]
    frame = pd.read_csv(path)
    problems = []
    if len(frame) != len(expected):
        problems.append(f"{len(frame)} rows, expected {len(expected)} (one per row id of every test sample)")
    comp = get_competition(competition)
    problems += comp.validate(frame, pd.DataFrame({comp.id_column: expected}))
    return problems


def time_budget(path: Path, competition: str, notebook_seconds: float, hidden: int | None, echo=print) -> list[str]:
    """Seconds per test sample by stage (the notebook's timings.json), and the notebook's run time extrapolated to the
    hidden test set (`hidden` samples, else the competition's own figure): a problem when over the competition's
    limit. The set-up (install, loading) counts once; every sample costs what the rehearsed ones did, on this
    machine."""
    if not path.exists():
        return [f"{path.name} was not written (the predict cell records its stages' seconds there)"]
    timings = json.loads(path.read_text())
    samples = max(int(timings["samples"]), 1)
    for name, seconds in timings["seconds"].items():
        echo(f"  {name:<10} {seconds / samples:8.2f} s per test sample")
    comp = get_competition(competition)
    hidden = hidden or comp.hidden_test_samples or samples
    setup = max(notebook_seconds - timings["total"], 0.0)
    estimate = setup + timings["total"] / samples * hidden
    limit = comp.runtime_limit_hours
    echo(f"time budget: {setup:.0f} s set-up + {timings['total'] / samples:.2f} s × {hidden} test samples = "
         f"{estimate / 3600:.2f} h on this machine" + (f", limit {limit:g} h" if limit else ""))  # fmt: skip
    if limit and estimate > limit * 3600:
        return [f"the notebook would run {estimate / 3600:.1f} h on {hidden} test samples, over the {limit:g} h limit"]
    return []


def installed_from_wheels(python: Path) -> list[str]:
    """The kit the notebook ran must be the one its install cell put in the fresh environment."""
    env = {**os.environ, "PYTHONPATH": ""}  # as the notebook's kernel ran: a user's own PYTHONPATH is not Kaggle's
    where = subprocess.run([str(python), "-c", "import kit; print(kit.__file__)"], capture_output=True, text=True,
                           cwd=python.parent, env=env)  # fmt: skip
    environment = python.parent.parent
    if where.returncode or environment not in Path(where.stdout.strip()).parents:
        return [f"the kit was not installed from the code dataset into {environment} ({where.stdout or where.stderr})"]
    return []


def first_cell_lines(notebook) -> list[str]:
    """What the install cell printed: one line per package, kept or installed."""
    cell = next(c for c in notebook.cells if c.cell_type == "code")
    return [line for out in cell.get("outputs", []) if out.get("name") == "stdout" for line in out["text"].splitlines()]


def rehearse(package: Package, competition: str, test_samples: int = 8, visible: int = 3, seed: int = 11,
             timeout: int = 1800, image: str = "here", echo=print, given: Path | None = None,
             hidden: int | None = None) -> list[str]:  # fmt: skip
    """Run package.notebook/notebook.ipynb offline against a simulated tree (the competition's input `given`, else
    synthetic); the problems found (none: ready)."""
    notebook = nbformat.read(package.notebook / "notebook.ipynb", as_version=4)
    with tempfile.TemporaryDirectory(prefix="kit-rehearsal-") as scratch:
        scratch = Path(scratch)
        root = scratch / "kaggle"
        expected = simulated_tree(root, package, competition, test_samples, visible, seed, given)
        if given is None:
            echo(f"simulated tree {root}: {test_samples} test samples ({visible} in the visible sample)")
        else:
            echo(f"simulated tree {root}: the competition's input is {given.resolve()} ({len(expected)} rows expected)")
        python = fresh_environment(scratch / "venv", image_folders(package, image, scratch, echo))
        echo(f"fresh environment {python.parent.parent} on the {image} image (the kit only from the code dataset)")
        try:
            # PYTHONPATH emptied: Kaggle's kernel has none, and a user's would put this checkout before the wheels
            with kernel_spec(python, scratch, {"KAGGLE_ROOT": str(root), "PYTHONPATH": ""}) as kernel:
                client = NotebookClient(notebook, kernel_name=kernel, timeout=timeout,
                                        resources={"metadata": {"path": str(root / "working")}})  # fmt: skip
                start = time.perf_counter()
                client.execute()
                notebook_seconds = time.perf_counter() - start
        except CellExecutionError as exc:
            return [f"a cell raised:\n{exc}"]
        finally:
            for line in first_cell_lines(notebook):
                echo(f"  {line}")
        problems = check_submission(root / "working" / "submission.csv", competition, expected)
        problems += installed_from_wheels(python)
        problems += time_budget(root / "working" / "timings.json", competition, notebook_seconds, hidden, echo)
    if not problems:
        echo(f"submission.csv: {len(expected)} rows, valid")
    return problems


def rehearse_or_fail(package: Package, competition: str, **kwargs) -> None:
    problems = rehearse(package, competition, **kwargs)
    if problems:
        raise KitError("rehearsal failed: " + "; ".join(problems))
