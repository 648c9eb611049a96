"""A lumbar spine phantom: analytic tissue shapes whose narrowings show the 25 condition×level latents (readers.py).

Coordinates are the spine's own, in mm: u towards the patient's left, v towards posterior, w towards superior,
with the L3/L4 disc at the origin. A `Pose` maps them to patient (LPS) coordinates with a random shift, scale and
tilt about the left-right axis. Each condition is drawn where a radiologist reads it: the canal narrows on the
midline (Sagittal T2), the foramina shrink on parasagittal slices (Sagittal T1) and the lateral recesses shrink on
axial slices through the disc (Axial T2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import CONDITIONS, LEVELS

DISC_GAP = 30.0  # mm between neighbouring disc levels
LEVEL_W = {level: (2 - k) * DISC_GAP for k, level in enumerate(LEVELS)}  # L1/L2 on top
CANAL = {"v": 24.0, "u_radius": 7.0, "v_radius": 8.0}
FORAMEN = {"u": 21.0, "v": 17.0, "radii": (4.5, 6.0, 7.5)}
RECESS = {"u": 12.5, "v": 23.0, "radii": (4.0, 4.0, 6.0)}
SIDE_SIGN = {"left": 1.0, "right": -1.0}  # the patient's left is +u


# Intensity of each tissue in each sequence (arbitrary units before the series gain).
TISSUES = {
    #                    Sagittal T1  Sagittal T2/STIR  Axial T2
    "soft_tissue": {"sag_t1": 0.35, "sag_t2": 0.22, "axial_t2": 0.22},
    "vertebra": {"sag_t1": 0.62, "sag_t2": 0.32, "axial_t2": 0.32},
    "disc": {"sag_t1": 0.28, "sag_t2": 0.72, "axial_t2": 0.6},
    "posterior": {"sag_t1": 0.45, "sag_t2": 0.28, "axial_t2": 0.28},
    "canal": {"sag_t1": 0.12, "sag_t2": 0.95, "axial_t2": 0.95},
    "foramen": {"sag_t1": 0.9, "sag_t2": 0.5, "axial_t2": 0.5},
    "recess": {"sag_t1": 0.15, "sag_t2": 0.9, "axial_t2": 0.92},
}


@dataclass
class Pose:
    center: np.ndarray  # patient position (mm) of the spine origin
    scale: float
    tilt: float  # radians, about the left-right axis

    @property
    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])

    def to_world(self, local: np.ndarray) -> np.ndarray:
        return (np.asarray(local) * self.scale) @ self.rotation.T + self.center

    def to_local(self, world: np.ndarray) -> np.ndarray:
        return ((np.asarray(world) - self.center) @ self.rotation) / self.scale


def landmark(condition: str, level: str) -> np.ndarray:
    """Spine coordinates of the point a radiologist would click for one condition at one level."""
    w = LEVEL_W[level]
    if condition == "spinal_canal_stenosis":
        return np.array([0.0, CANAL["v"], w])
    side, _, kind = condition.partition("_")
    spot = FORAMEN if kind == "neural_foraminal_narrowing" else RECESS
    return np.array([SIDE_SIGN[side] * spot["u"], spot["v"], w])


def _soft(radius: np.ndarray, sharpness: float = 10.0) -> np.ndarray:
    """1 inside (radius < 1), 0 outside, with a smooth edge."""
    return 1.0 / (1.0 + np.exp(np.clip((radius - 1.0) * sharpness, -30, 30)))


def _ellipsoid(p: np.ndarray, center, radii, power: float = 2.0) -> np.ndarray:
    d = [np.abs((p[..., i] - center[i]) / radii[i]) ** power for i in range(3)]
    return _soft((d[0] + d[1] + d[2]) ** (1.0 / power))


class Phantom:
    """One study's anatomy: narrowing fractions per condition and level (from its severities)."""

    def __init__(self, narrowing: dict[str, dict[str, float]]):
        self.narrowing = narrowing

    @classmethod
    def from_narrowing(cls, narrowing: np.ndarray) -> Phantom:
        """(5 conditions, 5 levels) narrowing fractions -> a phantom."""
        return cls({condition: {level: float(narrowing[c, k]) for k, level in enumerate(LEVELS)}
                    for c, condition in enumerate(CONDITIONS)})  # fmt: skip

    def intensity(self, p: np.ndarray, sequence: str) -> np.ndarray:
        """Tissue intensity at spine-coordinate points p (..., 3) for one sequence."""
        t = {name: values[sequence] for name, values in TISSUES.items()}
        u, v, w = p[..., 0], p[..., 1], p[..., 2]
        img = t["soft_tissue"] * _ellipsoid(p, (0.0, 15.0, 0.0), (95.0, 75.0, 1e4))
        vertebrae = np.zeros_like(u)
        for j in range(6):
            vertebrae = np.maximum(vertebrae, _ellipsoid(p, (0.0, 0.0, (2.5 - j) * DISC_GAP), (20.0, 15.0, 11.5), 4.0))
        img = img * (1 - vertebrae) + t["vertebra"] * vertebrae
        discs = np.zeros_like(u)
        for level, w_level in LEVEL_W.items():
            bulge = 2.5 * self.narrowing["spinal_canal_stenosis"][level]
            disc = _ellipsoid(p, (0.0, bulge, w_level), (19.0, 15.0 + bulge, 3.6), 3.0)
            discs = np.maximum(discs, disc)
        img = img * (1 - discs) + t["disc"] * discs
        posterior = _ellipsoid(p, (0.0, CANAL["v"] + 2.0, 0.0), (26.0, 14.0, 1e4), 4.0)
        img = img * (1 - posterior) + t["posterior"] * posterior

        canal_narrowing = np.zeros_like(u)
        for level, w_level in LEVEL_W.items():
            bump = np.exp(-0.5 * ((w - w_level) / 5.0) ** 2)
            canal_narrowing = np.maximum(canal_narrowing, self.narrowing["spinal_canal_stenosis"][level] * bump)
        u_radius = CANAL["u_radius"] * (1 - 0.35 * canal_narrowing)
        v_radius = CANAL["v_radius"] * (1 - canal_narrowing)
        canal = _soft(np.sqrt((u / u_radius) ** 2 + ((v - CANAL["v"]) / v_radius) ** 2))
        img = img * (1 - canal) + t["canal"] * canal

        for spot, kind, tissue in (
            (FORAMEN, "neural_foraminal_narrowing", "foramen"),
            (RECESS, "subarticular_stenosis", "recess"),
        ):
            for side, sign in SIDE_SIGN.items():
                for level, w_level in LEVEL_W.items():
                    keep = 1.0 - self.narrowing[f"{side}_{kind}"][level]
                    radii = tuple(r * keep for r in spot["radii"])
                    blob = _ellipsoid(p, (sign * spot["u"], spot["v"], w_level), radii)
                    img = img * (1 - blob) + t[tissue] * blob
        return img
