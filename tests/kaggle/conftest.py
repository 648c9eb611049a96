import pytest

from kit.kaggle import client as kaggle_client
from kit.kaggle import code

from .standin import StandIn

KEY = "0123456789abcdef-secret-key"


@pytest.fixture
def standin(monkeypatch, tmp_path):
    server = StandIn()
    monkeypatch.setenv("KIT_KAGGLE_API_ENDPOINT", server.url)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", KEY)
    monkeypatch.delenv("KAGGLE_API_TOKEN", raising=False)
    monkeypatch.setattr(kaggle_client.time, "sleep", lambda s: None)
    yield server
    server.close()


@pytest.fixture(scope="session")
def wheels(tmp_path_factory):
    """The real code-dataset wheels: the kit built from this checkout, the rest from the package index."""
    return code.build_wheels(tmp_path_factory.mktemp("wheels"))


@pytest.fixture(scope="session")
def ort_wheels(tmp_path_factory):
    """onnxruntime's wheels for every Kaggle Python, from the package index (for --backend onnxruntime)."""
    folder = tmp_path_factory.mktemp("ort")
    code.download_wheels(folder, ("onnxruntime",))
    return sorted(folder.glob("*.whl"))
