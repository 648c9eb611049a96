"""What the phantom's labels are drawn from: each condition × level has a continuous latent (the narrowing its images
show), and the severity a reader reports is drawn from an ordinal model given that latent, so the generator knows
every label's true probability (`oracle.csv`) and a fold can say how far its model is from the best possible score.

The model: a cell's prior over (normal/mild, moderate, severe) comes from its condition, level and the study's
degeneration (the frequencies of the real train.csv); the latent is Gaussian around 0, SEPARATION or 2·SEPARATION
given the severity, with unit reader noise; the true probability of each severity given the latent is then the
posterior prior · N(latent; mean, 1), an adjacent-category ordinal logit, and the label is drawn from it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import CONDITIONS, LEVELS, SEVERITY_COLUMNS

NUM_SEVERITIES = len(SEVERITY_COLUMNS)

# Abnormal (moderate, severe) probabilities per condition, scaled per level: degeneration is worst at L4/L5.
ABNORMAL = {
    "spinal_canal_stenosis": (0.08, 0.06),
    "left_neural_foraminal_narrowing": (0.17, 0.05),
    "right_neural_foraminal_narrowing": (0.17, 0.05),
    "left_subarticular_stenosis": (0.2, 0.08),
    "right_subarticular_stenosis": (0.2, 0.08),
}
LEVEL_FACTOR = (0.45, 0.7, 1.0, 1.55, 1.25)
# The latent distance between neighbouring severities in units of reader noise; calibrated (tests/competitions/rsna/
# test_readers.py) so that the true probabilities score 0.20-0.45 on the metric, the real competition's range.
SEPARATION = 2.3
# Narrowing fraction the images show at latent 0 (about normal), SEPARATION (moderate) and beyond (severe).
MAX_NARROWING = 0.8


@dataclass
class StudyTruth:
    narrowing: np.ndarray  # (5 conditions, 5 levels) fraction the images show
    probabilities: np.ndarray  # (5, 5, 3) the true probability of each severity given the latent
    severities: np.ndarray  # (5, 5) codes drawn from `probabilities`


def cell_priors(rng: np.random.Generator) -> np.ndarray:
    """(5, 5, 3) severity priors of one study, tied together by a study-level degeneration factor."""
    factor = rng.gamma(2.0, 0.5)
    priors = np.zeros((len(CONDITIONS), len(LEVELS), NUM_SEVERITIES))
    for c, condition in enumerate(CONDITIONS):
        for k, level_factor in enumerate(LEVEL_FACTOR):
            moderate, severe = (min(0.45, x * level_factor * factor) for x in ABNORMAL[condition])
            priors[c, k] = (1 - moderate - severe, moderate, severe)
    return priors


def posterior(latent: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """The true probability of each severity given the latent: prior × N(latent; severity · SEPARATION, 1)."""
    means = SEPARATION * np.arange(NUM_SEVERITIES)
    log_p = np.log(priors) - 0.5 * (latent[..., None] - means) ** 2
    log_p -= log_p.max(axis=-1, keepdims=True)
    p = np.exp(log_p)
    return p / p.sum(axis=-1, keepdims=True)


def narrowing_of(latent: np.ndarray) -> np.ndarray:
    """The narrowing an image shows, monotone in the latent (so the image carries all of it): about 0.08 at a
    normal cell's mean, 0.4 at a moderate's, 0.72 at a severe's."""
    return MAX_NARROWING / (1.0 + np.exp(-2.2 * (latent - SEPARATION) / SEPARATION))


def draw_study(rng: np.random.Generator) -> StudyTruth:
    priors = cell_priors(rng)
    drawn = np.array([[rng.choice(NUM_SEVERITIES, p=p) for p in row] for row in priors])
    latent = SEPARATION * drawn + rng.normal(size=drawn.shape)
    probabilities = posterior(latent, priors)
    severities = np.array([[rng.choice(NUM_SEVERITIES, p=p) for p in row] for row in probabilities])
    return StudyTruth(narrowing_of(latent), probabilities, severities)
