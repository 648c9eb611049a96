from pathlib import Path

import pytest

from kit.competitions.mars import synth


@pytest.fixture(scope="session")
def mars_dir(tmp_path_factory) -> Path:
    """A small synthetic Mars competition shared by the tests that only read it."""
    return synth.generate(tmp_path_factory.mktemp("mars"), train=60, test=12, aliens=5, seed=3)
