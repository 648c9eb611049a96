"""A synthetic mars_for_students.npz: terrain-like textures per class, rare big rocks, planted 'alien' outliers.

Each class has its own texture, so a model can learn them: background is dark and flat, soil mid-grey and blotchy,
bedrock bright and layered, sand fine-rippled, big rocks dark with a lit rim. Region layouts come from smooth random
fields; a few percent of the training images are 'aliens' (a pasted non-terrain picture) that all share one mask.

The image shows the terrain's regions (the argmax of the fields); the mask is an annotator's, whose boundaries between
soil, bedrock and sand wander: argmax(fields / TEMPERATURE + Gumbel noise), the noise smooth in space so the wander
is in strokes, not salt and pepper. Each pixel's label is then drawn from softmax(fields / TEMPERATURE), which the
generator writes as oracle.npz (the best possible per-pixel prediction; its argmax is the oracle mIoU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.special import ndtr, softmax

from kit.io import atomic_path

from .layout import BIG_ROCK, FILE, HEIGHT, NUM_CLASSES, ORACLE_FILE, WIDTH

ROWS, COLS = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
TEMPERATURE = (
    0.25  # of the annotator's choice between terrain fields: an oracle mIoU of about 0.83 (0.1: 0.93, 0.5: 0.72)
)
NOISE_SIGMA = 2.0  # px: the annotator's strokes


def smooth_field(rng: np.random.Generator, sigma: float) -> np.ndarray:
    field = gaussian_filter(rng.normal(size=(HEIGHT, WIDTH)), sigma, mode="wrap")
    return (field - field.mean()) / (field.std() + 1e-8)


def unit_gaussian_field(rng: np.random.Generator, sigma: float, shape=(HEIGHT, WIDTH)) -> np.ndarray:
    """Smoothed white noise divided by its exact standard deviation, so each pixel is N(0, 1) marginally."""
    impulse = np.zeros(shape)
    impulse[0, 0] = 1.0
    std = np.sqrt((gaussian_filter(impulse, sigma, mode="wrap") ** 2).sum())
    return gaussian_filter(rng.normal(size=shape), sigma, mode="wrap") / std


def smooth_gumbel(rng: np.random.Generator, count: int) -> np.ndarray:
    """(count, H, W) noise that is Gumbel(0, 1) at every pixel and smooth in space: argmax(x + noise) then picks
    class k with probability softmax(x)_k at each pixel."""
    uniform = np.clip(ndtr(np.stack([unit_gaussian_field(rng, NOISE_SIGMA) for _ in range(count)])), 1e-12, 1 - 1e-12)
    return -np.log(-np.log(uniform))


def draw_terrain(rng: np.random.Generator, big_rock_rate: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(shown, label, probabilities): the regions the image shows; the annotator's mask drawn from the per-pixel
    class probabilities (5, H, W). Soil, bedrock and sand from smooth fields; a background band or patch;
    sometimes big rocks. Background and big rock are drawn exactly as they are shown."""
    fields = np.stack([smooth_field(rng, rng.uniform(6, 14)) + rng.normal(0, 0.6) for _ in range(3)])
    shown = (fields.argmax(axis=0) + 1).astype(np.uint8)
    label = ((fields / TEMPERATURE + smooth_gumbel(rng, 3)).argmax(axis=0) + 1).astype(np.uint8)
    probabilities = np.zeros((NUM_CLASSES, HEIGHT, WIDTH))
    probabilities[1:4] = softmax(fields / TEMPERATURE, axis=0)
    exact = np.zeros((HEIGHT, WIDTH), dtype=bool)
    if rng.random() < 0.5:
        horizon = rng.integers(4, 20) + 3 * np.sin(COLS / rng.uniform(10, 30) + rng.uniform(0, 6))
        exact[horizon > ROWS] = True
        shown[exact] = 0
    if rng.random() < 0.2:
        patch = smooth_field(rng, 8) > 1.6
        exact |= patch
        shown[patch] = 0
    if rng.random() < big_rock_rate:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(10, HEIGHT - 4), rng.uniform(5, WIDTH - 5)
            ry, rx, angle = rng.uniform(3, 9), rng.uniform(4, 14), rng.uniform(0, np.pi)
            y, x = ROWS - cy, COLS - cx
            u = (x * np.cos(angle) + y * np.sin(angle)) / rx
            v = (-x * np.sin(angle) + y * np.cos(angle)) / ry
            rock = u**2 + v**2 <= 1.0
            exact |= rock
            shown[rock] = BIG_ROCK
    label[exact] = shown[exact]
    probabilities[:, exact] = np.eye(NUM_CLASSES)[shown[exact]].T
    return shown, label, probabilities


def one_hot(mask: np.ndarray) -> np.ndarray:
    return np.eye(NUM_CLASSES)[mask].transpose(2, 0, 1)


def textures(rng: np.random.Generator) -> np.ndarray:
    """(5, 64, 128) one texture per class, drawn fresh for each image."""
    angle, period = rng.uniform(0, np.pi), rng.uniform(7, 12)
    layers = np.sin((COLS * np.cos(angle) + ROWS * np.sin(angle)) * 2 * np.pi / period)
    ripple_angle = rng.uniform(0, np.pi)
    ripples = np.sin((COLS * np.cos(ripple_angle) + ROWS * np.sin(ripple_angle)) * 2 * np.pi / rng.uniform(3, 4.5))
    return np.stack(
        [
            rng.uniform(8, 25) + rng.normal(0, 2, (HEIGHT, WIDTH)),
            rng.uniform(100, 125) + 14 * smooth_field(rng, 3) + rng.normal(0, 6, (HEIGHT, WIDTH)),
            rng.uniform(145, 175) + 18 * layers + 8 * smooth_field(rng, 2) + rng.normal(0, 5, (HEIGHT, WIDTH)),
            rng.uniform(80, 100) + 16 * ripples + rng.normal(0, 4, (HEIGHT, WIDTH)),
            rng.uniform(45, 65) + 10 * smooth_field(rng, 1.5) + rng.normal(0, 5, (HEIGHT, WIDTH)),
        ]
    )


def render(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    tex = textures(rng)
    image = np.take_along_axis(tex, mask[None].astype(np.int64), axis=0)[0]
    rock = mask == BIG_ROCK
    if rock.any():  # a lit rim around each rock
        rim = gaussian_filter(rock.astype(np.float32), 1.2) - rock * 0.5
        image = image + 120 * np.clip(rim, 0, None)
    image = image * rng.uniform(0.8, 1.2) + rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255)


def alien(rng: np.random.Generator) -> np.ndarray:
    """A pasted picture that is no terrain: bright discs on a checkerboard."""
    board = ((ROWS // 8 + COLS // 8) % 2) * 120 + 60
    for _ in range(4):
        cy, cx, r = rng.uniform(0, HEIGHT), rng.uniform(0, WIDTH), rng.uniform(5, 15)
        board = np.where((ROWS - cy) ** 2 + (COLS - cx) ** 2 < r**2, 240, board)
    return board.astype(np.float32)


def generate(
    out: Path, train: int = 600, test: int = 200, aliens: int = 24, seed: int = 0, force: bool = False
) -> Path:
    """Write out/mars_for_students.npz (training_set (N, 2, 64, 128), test_set (M, 64, 128), float32) and
    out/oracle.npz (probabilities (N, 5, 64, 128) uint8: each training pixel's true class probabilities × 255)."""
    out = Path(out)
    path = out / FILE
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force=True (--force) to replace it")
    rng = np.random.default_rng(seed)
    training_set = np.zeros((train, 2, HEIGHT, WIDTH), dtype=np.float32)
    oracle = np.zeros((train, NUM_CLASSES, HEIGHT, WIDTH), dtype=np.float32)
    for i in range(train):
        shown, label, oracle[i] = draw_terrain(rng, big_rock_rate=0.15)
        training_set[i] = render(shown, rng), label
    _, shared, _ = draw_terrain(rng, big_rock_rate=0.0)
    for i in rng.choice(train, size=min(aliens, train), replace=False):
        training_set[i] = alien(rng), shared
        oracle[i] = one_hot(shared)  # the generator knows an alien's mask; no image shows it
    test_set = np.stack([render(draw_terrain(rng, 0.15)[0], rng) for _ in range(test)]).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / ORACLE_FILE) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, probabilities=np.round(oracle * 255).astype(np.uint8))
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, training_set=training_set, test_set=test_set)
    return out
