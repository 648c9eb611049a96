import numpy as np
import pytest
from scipy.ndimage import uniform_filter

from kit.competitions.mars import data, synth
from kit.competitions.mars.layout import BIG_ROCK, FILE
from kit.errors import DataError


def test_synthetic_file_has_the_real_keys_shapes_and_dtypes(mars_dir):
    with np.load(mars_dir / FILE) as npz:
        assert sorted(npz.files) == ["test_set", "training_set"]
        train, test = npz["training_set"], npz["test_set"]
    assert train.shape == (60, 2, 64, 128) and test.shape == (12, 64, 128)
    assert train.dtype == test.dtype == np.float32
    assert train[:, 0].min() >= 0 and train[:, 0].max() <= 255
    assert set(np.unique(train[:, 1])) <= {0.0, 1.0, 2.0, 3.0, 4.0}


def test_planted_outliers_are_found_and_removed(mars_dir):
    loaded = data.load(mars_dir)
    assert loaded.removed.size == 5
    assert len(loaded.images) == len(loaded.masks) == len(loaded.ids) == 55
    assert not set(loaded.ids) & set(loaded.removed)
    with np.load(mars_dir / FILE) as npz:
        masks = npz["training_set"][:, 1]
    assert all(np.array_equal(masks[i], masks[loaded.removed[0]]) for i in loaded.removed)


def test_no_outliers_when_no_mask_repeats():
    masks = np.random.default_rng(0).integers(0, 5, (20, 64, 128))
    assert data.shared_mask_outliers(masks).size == 0


def test_classes_have_distinct_textures_and_big_rock_is_rare(tmp_path):
    synth.generate(tmp_path, train=120, test=1, aliens=0, seed=1)
    loaded = data.load(tmp_path)
    # local mean and local contrast alone tell the classes apart far above chance (a nearest-centroid rule)
    image = loaded.images.astype(np.float64)
    mean = uniform_filter(image, (1, 5, 5))
    std = np.sqrt(np.maximum(uniform_filter(image**2, (1, 5, 5)) - mean**2, 0))
    features = np.stack([mean, std], axis=-1).reshape(-1, 2)
    features = (features - features.mean(0)) / features.std(0)
    labels = loaded.masks.reshape(-1)
    centroids = np.stack([features[labels == c].mean(0) for c in range(5)])
    nearest = ((features[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    recall = [(nearest[labels == c] == c).mean() for c in range(5)]
    assert (nearest == labels).mean() > 0.6 and min(recall) > 0.4
    share = (loaded.masks == BIG_ROCK).mean()
    assert 0 < share < 0.03
    assert 0.05 < (loaded.masks == BIG_ROCK).any(axis=(1, 2)).mean() < 0.35


def test_synth_refuses_to_overwrite(mars_dir):
    with pytest.raises(FileExistsError, match="--force"):
        synth.generate(mars_dir)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"training_set": np.zeros((2, 2, 64, 128))}, "missing array"),
        ({"training_set": np.zeros((2, 64, 128)), "test_set": np.zeros((1, 64, 128))}, "expected \\(N, 2, 64, 128\\)"),
        ({"training_set": np.full((2, 2, 64, 128), 7.0), "test_set": np.zeros((1, 64, 128))}, "training_set\\[0, 1\\]"),
        ({"training_set": np.zeros((2, 2, 64, 128)), "test_set": np.zeros((1, 64, 64))}, "test_set has shape"),
    ],
)
def test_bad_files_are_named(tmp_path, arrays, message):
    path = tmp_path / FILE
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as info:
        data.load(tmp_path)
    assert str(path) in str(info.value)


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(DataError, match="kit synth mars"):
        data.load(tmp_path)
