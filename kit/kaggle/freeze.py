"""`task kaggle-freeze`: capture the Kaggle image of the day as a profile for `task rehearse -- --image <name>`.

A one-cell notebook (attached to the competition, no internet) records the image's packages, Python and GPU into
/kaggle/working/image.txt; the kit waits for its run, pulls that file and keeps it as images/<name>.txt.
"""

from __future__ import annotations

import datetime
import tempfile
from pathlib import Path

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kit import paths
from kit.errors import KitError
from kit.io import write_text_atomic
from kit.kaggle import kernels
from kit.kaggle.image import read_profile
from kit.kaggle.notebook import kernel_metadata
from kit.kaggle.push import write_notebook

OUTPUT = "image.txt"
RECORD = """\
import os, platform, subprocess, sys
from pathlib import Path

# `pip list --format=freeze` writes name==version even for packages installed from local files.
packages = subprocess.run([sys.executable, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                          check=True).stdout
try:
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                         text=True).stdout.strip().replace("\\n", ", ") or "none"
except FileNotFoundError:
    gpu = "none"
header = (f"# Kaggle's Python image, captured by `task kaggle-freeze` on {date}.\\n"
          f"# python: {{platform.python_version_tuple()[0]}}.{{platform.python_version_tuple()[1]}}\\n"
          f"# gpu: {{gpu}}\\n")
Path(os.environ.get("KAGGLE_ROOT", "/kaggle"), "working", "{output}").write_text(header + packages)
print(header)
"""


def freeze_notebook(date: str):
    return new_notebook(
        cells=[
            new_markdown_cell(
                "# The Kaggle image's packages, Python and GPU\n\nBuilt by the kit (`task kaggle-freeze`)."
            ),
            new_code_cell(RECORD.format(date=date, output=OUTPUT)),
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    )


def kaggle_freeze(owner: str, competition_slug: str, gpu: bool = False, name: str | None = None, echo=print) -> Path:
    """Push the notebook, wait for it, and write its record as images/<name>.txt under KIT_HOME."""
    today = datetime.date.today().isoformat()
    name = name or f"kaggle-{today}"
    slug = "kit-image-freeze"
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "notebook"
        meta = kernel_metadata(owner, slug, "kit image freeze", competition_slug, [], gpu=gpu)
        write_notebook(folder, freeze_notebook(today), meta)
        version = kernels.push(folder)
        echo(f"kernel {owner}/{slug} version {version} pushed")
        kernels.wait(owner, slug, echo=echo)
        pulled = [p for p in kernels.pull(owner, slug, Path(scratch) / "out") if p.name == OUTPUT]
        if not pulled:
            raise KitError(f"kernel {owner}/{slug}: its run wrote no {OUTPUT}")
        profile = read_profile(pulled[0])  # a record that is not a profile is an error before anything is written
        text = pulled[0].read_text()
    target = paths.home() / "images" / f"{name}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, text)
    echo(f"{target}: {len(profile.packages)} packages, Python {profile.python or 'unknown'}")
    return target
