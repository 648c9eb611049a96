"""The meta-model's starting point: a log-linear pool of the base models, log p ∝ t · Σ_m w_m · log p_m, with the
weights w on the simplex and the temperature t fitted on the meta-model's own training rows (so a weak base model
gets a small weight instead of half the vote, and an over- or under-confident blend is rescaled).

Written by hand (a few lines of scipy) because a library logistic regression fits one coefficient per class and
feature; a pool shares one weight per model across the classes, so a few thousand rows fit M + 1 numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

FLOOR = 1e-6


@dataclass
class Pool:
    weights: np.ndarray  # (models,), non-negative, summing to 1
    temperature: float

    def __call__(self, log_probs: np.ndarray) -> np.ndarray:
        """Normalised log-probabilities (rows, classes) of the pool of log_probs (models, rows, classes)."""
        return log_softmax(self.temperature * np.tensordot(self.weights, log_probs, axes=1), axis=-1)

    def described(self, model_names: list[str]) -> dict:
        weights = dict(zip(model_names, np.round(self.weights, 4).tolist(), strict=True))
        return {"weights": weights, "temperature": round(self.temperature, 4)}


def log_probs(probs_by_model: list[np.ndarray]) -> np.ndarray:
    """(models, rows, classes) log-probabilities, floored so a confident zero stays finite."""
    return np.log(np.clip(np.stack(probs_by_model), FLOOR, 1.0)).astype(np.float32)


def fit_pool(log_probs: np.ndarray, targets: np.ndarray, sample_weight: np.ndarray | None = None) -> Pool:
    """The pool minimising the (weighted) mean log loss of targets over the rows of log_probs."""
    n_models = len(log_probs)
    weight = np.ones(len(targets)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    weight = weight / weight.sum()

    def unpack(theta: np.ndarray) -> Pool:
        return Pool(softmax(theta[:n_models]), float(np.exp(theta[n_models])))

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        pool = unpack(theta)
        mixed = np.tensordot(pool.weights, log_probs, axes=1)  # (rows, classes)
        logp = log_softmax(pool.temperature * mixed, axis=-1)
        loss = -(weight * logp[np.arange(len(targets)), targets]).sum()
        residual = np.exp(logp)  # d loss / d (t · mixed) = p - onehot, weighted
        residual[np.arange(len(targets)), targets] -= 1.0
        residual *= weight[:, None]
        d_w = pool.temperature * np.einsum("rc,mrc->m", residual, log_probs)
        d_a = pool.weights * (d_w - (pool.weights * d_w).sum())
        d_b = pool.temperature * (residual * mixed).sum()
        return float(loss), np.append(d_a, d_b)

    start = np.zeros(n_models + 1)
    found = minimize(loss_and_grad, start, jac=True, method="L-BFGS-B", bounds=[(-8, 8)] * n_models + [(-3, 3)])
    return unpack(found.x)
