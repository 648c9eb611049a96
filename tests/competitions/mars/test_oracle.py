"""The Mars phantom's masks are drawn from known per-pixel probabilities (oracle.npz), and masks.png leaves the
pixels the metric ignores unscored."""

import numpy as np

from kit.competitions.mars import synth
from kit.competitions.mars.layout import BIG_ROCK
from kit.report.masks import panels


def test_terrain_labels_follow_the_probabilities_and_background_and_rock_are_exact():
    rng = np.random.default_rng(2)
    shown, labels, probs = (np.stack(a) for a in zip(*[synth.draw_terrain(rng, 0.5) for _ in range(120)], strict=True))
    probs = probs.transpose(0, 2, 3, 1)
    exact = (shown == 0) | (shown == BIG_ROCK)
    assert (labels[exact] == shown[exact]).all() and np.allclose(probs[exact].max(axis=1), 1.0)
    terrain = ~exact
    uncertain = probs[terrain].max(axis=1) < 0.9
    assert 0.05 < uncertain.mean() < 0.5  # boundaries are uncertain, region interiors are not
    assert (labels[terrain] != shown[terrain]).mean() > 0.03  # the annotator's mask is not the image's regions
    for c in (1, 2, 3):  # per class and probability band: the labels' frequency is the mean probability
        p = probs[terrain][:, c]
        hit = labels[terrain] == c
        for low, high in ((0.05, 0.35), (0.35, 0.65), (0.65, 0.95)):
            band = (p >= low) & (p < high)
            assert band.sum() > 2000
            assert abs(hit[band].mean() - p[band].mean()) < 0.03, (c, low)


def test_oracle_npz_matches_the_training_set(mars_dir):
    with np.load(mars_dir / "mars_for_students.npz") as npz:
        masks = npz["training_set"][:, 1].astype(int)
    with np.load(mars_dir / "oracle.npz") as npz:
        probs = npz["probabilities"]
    assert probs.shape == (len(masks), 5, 64, 128) and probs.dtype == np.uint8
    for c in (0, BIG_ROCK):  # drawn exactly as shown: the oracle is certain of them
        assert (probs.transpose(0, 2, 3, 1)[masks == c] == 255 * np.eye(5, dtype=np.uint8)[c]).all()
    terrain = (masks >= 1) & (masks <= 3)
    for c in (1, 2, 3):
        frequency = (masks[terrain] == c).mean()
        assert abs(probs[:, c][terrain].mean() / 255 - frequency) < 0.02, c


def test_masks_png_leaves_the_ignored_pixels_unscored():
    true = np.array([[0, 0, 1, 2]])
    pred = np.array([[4, 4, 1, 3]])  # the sky predicted as big rock does not count
    image, truth, predicted = panels(np.zeros((1, 4)), true, pred, 7, ignore_class=0)
    assert predicted[0].mask.tolist() == [[True, True, False, False]]
    assert predicted[1].startswith("predicted: 50% of scored pixels right") and "unscored" in predicted[1]
