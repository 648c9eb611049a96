"""Codabench delivery as a user runs it: `kit package-codabench` after a fold, a zip whose model.py runs without the
kit and equals the kit's predictions; a model.py that needs the kit fails the rehearsal."""

import importlib.util
import json
import zipfile

import numpy as np
import pytest

from kit.codabench import package as codabench
from kit.competitions.imageclass.layouts import fit_array
from kit.errors import KitError
from tests.test_cli_errors import run_kit

TINY = ["trainer.epochs=1", "trainer.batch_size=16", "trainer.tta=dihedral", "data.size=64", "data.folds=3",
        "model.encoder=mobilenetv3_small_050"]  # fmt: skip


@pytest.mark.slow
def test_package_and_rehearse_a_trained_fold(tmp_path, kit_here):
    synth = ["synth", "bloodcells", "--train", "60", "--out", "data/bloodcells-synth"]
    assert kit_here(synth, tmp_path).returncode == 0
    trained = kit_here(["train-fold", "--exp", "bloodcells_mobilenetv3", *TINY], tmp_path)
    assert trained.returncode == 0, trained.stderr
    packaged = run_kit(["package-codabench", "--exp", "bloodcells_mobilenetv3", *TINY], tmp_path)
    assert packaged.returncode == 0, packaged.stderr
    assert "rehearsal without the kit" in packaged.stdout and "per 1,000 images" in packaged.stdout
    path = tmp_path / "submissions" / "bloodcells" / "bloodcells_mobilenetv3.zip"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["meta.json", "model.pt2", "model.py"]
        archive.extractall(tmp_path / "unzipped")
        assert json.loads(archive.read("meta.json"))["tta"] == "dihedral", "the eight orientations, as the kit predicts"

    spec = importlib.util.spec_from_file_location("delivered_model", tmp_path / "unzipped" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    with np.load(tmp_path / "data" / "bloodcells-synth" / "training_set.npz") as saved:
        images = saved["images"][:40]
    labels = model.predict(images)
    assert labels.shape == (40,) and labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 8
    fitted = np.stack([fit_array(a, 64, 3) for a in images])  # the 96 px originals, resized as the kit trains
    assert np.array_equal(model._fit(images), fitted)
    assert np.array_equal(model.predict(images.astype(np.float32) / 255.0), labels)  # floats in [0, 1] too
    assert model.predict(images[:0]).shape == (0,)


def test_a_model_py_that_needs_the_kit_fails_the_rehearsal(tmp_path):
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.py", "import kit\n\nclass Model:\n    def predict(self, X):\n        return X\n")
    images = np.zeros((3, 8, 8, 3), np.uint8)
    with pytest.raises(KitError, match="model.py imports kit: the zip must work without the kit"):
        codabench.rehearse(path, images, np.full((3, 2), 0.5))


def test_wrong_outputs_fail_the_rehearsal(tmp_path):
    path = tmp_path / "wrong.zip"
    body = (
        "import numpy as np\n\nclass Model:\n    def predict(self, X):\n        return np.full(len(X), 5)\n\n"
        "    def predict_proba(self, X):\n        return np.full((len(X), 2), 0.5)\n"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model.py", body)
    with pytest.raises(KitError, match="labels outside 0..1"):
        codabench.rehearse(path, np.zeros((3, 8, 8, 3), np.uint8), np.array([[0.9, 0.1]] * 3))
