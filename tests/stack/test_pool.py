import numpy as np
import pytest
from scipy.special import log_softmax

from kit.stack.pool import Pool, fit_pool, log_probs


def noisy_truth(rng, targets, strength, classes=3):
    logits = strength * np.eye(classes)[targets] + rng.normal(0, 1.0, (len(targets), classes))
    return np.exp(log_softmax(logits, axis=1))


def weighted_loss(log_p, targets, weight):
    return -(weight * log_p[np.arange(len(targets)), targets]).sum() / weight.sum()


@pytest.fixture
def strong_and_weak():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 3, 4000)
    logs = log_probs([noisy_truth(rng, targets, 2.0), noisy_truth(rng, targets, 0.3)])
    return logs, targets, np.asarray([1.0, 2.0, 4.0])[targets]


def test_the_fitted_pool_beats_every_pool_on_a_grid(strong_and_weak):
    logs, targets, weight = strong_and_weak
    pool = fit_pool(logs, targets, weight)
    assert pool.weights.sum() == pytest.approx(1.0) and pool.weights[0] > 0.75  # the strong model gets the vote
    fitted = weighted_loss(pool(logs), targets, weight)
    grid = [
        weighted_loss(Pool(np.array([w, 1 - w]), t)(logs), targets, weight)
        for w in np.linspace(0, 1, 21)
        for t in np.linspace(0.2, 4.0, 39)
    ]
    assert fitted <= min(grid) + 1e-6
    assert fitted < weighted_loss(np.log(np.exp(logs).mean(axis=0)), targets, weight)  # better than the mean blend


def test_a_pool_is_normalised_and_ignores_a_zero_weight_model(strong_and_weak):
    logs, _, _ = strong_and_weak
    pooled = Pool(np.array([1.0, 0.0]), 1.0)(logs)
    assert np.allclose(np.exp(pooled).sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(pooled, logs[0], atol=1e-5)
    assert np.isfinite(log_probs([np.zeros((2, 3)), np.ones((2, 3))])).all()  # a confident zero stays finite


@pytest.mark.slow
def test_inner_cv_grows_trees_for_signal_and_stops_early_on_noise():
    from types import SimpleNamespace

    import pandas as pd

    from kit.stack.meta import rounds_by_inner_cv

    rng = np.random.default_rng(0)
    training = SimpleNamespace(
        meta_params={"learning_rate": 0.05, "n_estimators": 200, "num_leaves": 3, "min_child_samples": 20},
        meta_classes=3, rows_per_sample=5, meta_weights=lambda y: np.ones(len(y)),
    )  # fmt: skip
    y = rng.integers(0, 3, 3000)
    init = np.tile(np.log(np.bincount(y, minlength=3) / len(y)), (len(y), 1))  # the class prior, as a pool would give
    groups = np.arange(3000) // training.rows_per_sample
    signal = pd.DataFrame({"a": y + rng.normal(0, 1.0, 3000), "b": rng.normal(size=3000)})
    noise = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    assert rounds_by_inner_cv(training, signal, init, y, groups, seed=0) >= 80
    assert rounds_by_inner_cv(training, noise, init, y, groups, seed=0) <= 30  # of at most 200
