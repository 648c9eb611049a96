"""Early stopping on a smoothed metric: a noisy spike on a small validation fold does not end a fold that is still
learning (brain MRI: 0.53, 0.39, 0.86, then a slow climb)."""

from kit.train.callbacks import smoothed_improvement


def stale_epochs(curve, smoothing, patience=5):
    """Epochs trained before early stopping (the runner's rule: raw or smoothed best resets the count)."""
    state, best, stale = {}, None, 0
    for epoch, value in enumerate(curve):
        improved = best is None or value > best
        best = value if improved else best
        trend = smoothed_improvement(state, value, smoothing, sign=-1.0)
        stale = 0 if improved or trend else stale + 1
        if stale >= patience:
            return epoch + 1
    return len(curve)


CURVE = [0.53, 0.39, 0.86, 0.55, 0.60, 0.66, 0.70, 0.74, 0.78, 0.80, 0.82, 0.84, 0.85, 0.88, 0.90]


def test_the_raw_metric_stops_soon_after_a_spike_and_the_smoothed_one_waits_for_the_trend():
    assert stale_epochs(CURVE, None) == 8, "five epochs after the spike at epoch 2"
    assert stale_epochs(CURVE, 0.6) == len(CURVE), "the moving average keeps rising: training goes on"


def test_the_moving_average_and_its_best():
    state = {}
    assert smoothed_improvement(state, 0.5, 0.5, sign=-1.0) and state["smoothed"] == 0.5
    assert smoothed_improvement(state, 0.9, 0.5, sign=-1.0) and abs(state["smoothed"] - 0.7) < 1e-12
    assert not smoothed_improvement(state, 0.1, 0.5, sign=-1.0) and abs(state["smoothed"] - 0.4) < 1e-12
    assert abs(state["best_smoothed"] - 0.7) < 1e-12
    loss_state = {}
    assert smoothed_improvement(loss_state, 2.0, 0.5, sign=1.0)
    assert smoothed_improvement(loss_state, 1.0, 0.5, sign=1.0), "a lower loss is better"
    assert not smoothed_improvement({}, 0.5, None, sign=-1.0)
