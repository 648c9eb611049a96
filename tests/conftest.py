import os

os.environ.setdefault("TRITON_INTERPRET", "1")  # before anything imports triton: kernels run in its interpreter on CPU
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one thread per worker (and per `kit` it starts): two workers on two cores, each with two OpenMP threads, spin
    # against each other (LightGBM's inner CV ran 18x slower than alone)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import subprocess
import warnings
from pathlib import Path

import pytest

from kit.competitions.mars import synth as mars_synth
from kit.competitions.rsna import synth


@pytest.fixture(autouse=True)
def kit_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data/, folds/, cache/ and runs/."""
    monkeypatch.setenv("KIT_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="session")
def rsna_dir(tmp_path_factory) -> Path:
    """A small synthetic RSNA competition shared by the tests that only read it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return synth.generate(tmp_path_factory.mktemp("rsna") / "comp", studies=8, test_studies=3, seed=7)


@pytest.fixture(scope="session")
def mars_dir(tmp_path_factory) -> Path:
    """A small synthetic Mars competition shared by the tests that only read it."""
    return mars_synth.generate(tmp_path_factory.mktemp("mars"), train=60, test=12, aliens=5, seed=3)


@pytest.fixture
def kit_here(monkeypatch, capsys):
    """`kit ARGS` in this process, as a user's shell runs it in `cwd` (KIT_HOME unset, so the folder itself): a fresh
    process spends 8-12 s importing torch, timm and MONAI before it does anything. `run_kit` keeps the real process
    (entry point, exit status, signals) where the process is what a test is about: one refusal through the entry
    point, runs started together or killed, the onnxruntime backend, the Codabench rehearsal, the README's tasks."""
    from kit.cli import main
    from kit.competitions import COMPETITIONS

    def run(args, cwd: Path) -> subprocess.CompletedProcess:
        monkeypatch.chdir(cwd)
        monkeypatch.delenv("KIT_HOME", raising=False)
        capsys.readouterr()
        registered = dict(COMPETITIONS)  # a YAML's dataset section declares a competition for this command only
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse's own refusals
            code = exc.code
        finally:
            COMPETITIONS.clear()
            COMPETITIONS.update(registered)
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)

    return run
