"""Exact and near duplicates by perceptual hash (imagehash's pHash), and the contaminants among them: a picture
pasted into a dataset many times (AN2DL's blood cells hold about 1,800 copies of two non-cell pictures) forms one
large group of near copies, whatever labels its copies carry. Real samples that merely repeat form small groups,
which are kept and never split across folds."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from kit.data.decoded import decoded
from kit.errors import DataError, KitError
from kit.schema import ImageDataset

from .layouts import Samples, Split, read_layout

HASH_BITS = 64
DEFAULTS = {"distance": 4, "contaminant_copies": 20}


def check_clean(spec: dict | None) -> dict:
    """dataset.clean: {distance: pHash bits (of 64) within which two pictures are near copies, contaminant_copies:
    the group size from which a picture counts as pasted in}."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or set(spec) - set(DEFAULTS):
        raise KitError(f"dataset.clean={spec!r}; expected a mapping with keys {', '.join(DEFAULTS)}")
    clean = {**DEFAULTS, **spec}
    if not isinstance(clean["distance"], int) or not 0 <= clean["distance"] < HASH_BITS // 2:
        raise KitError(f"dataset.clean.distance={clean['distance']!r}; expected a whole number of bits, 0 to 31")
    if not isinstance(clean["contaminant_copies"], int) or clean["contaminant_copies"] < 2:
        copies = clean["contaminant_copies"]
        raise KitError(f"dataset.clean.contaminant_copies={copies!r}; expected a whole number >= 2")
    return clean


def phash_bits(pictures: Iterable[Image.Image]) -> np.ndarray:
    """(n, 64) bool."""
    import imagehash  # only datasets that declare `clean` need it (a Kaggle image may lack it)

    return np.stack([imagehash.phash(p).hash.reshape(-1) for p in pictures])


def copy_groups(split: Split, distance: int = DEFAULTS["distance"]) -> tuple[np.ndarray, str]:
    """Near-copy groups (pHash within `distance` bits) of a split's samples, and a line saying what was found. A
    folder's hashes are computed once (kit.data.decoded's cache), so a 20,000-image tree costs seconds only once."""
    if split.arrays is not None:
        bits = phash_bits(_pictures(split))
    else:
        settings = {"reader": "phash", "bits": HASH_BITS}
        bits = decoded(split.files, (HASH_BITS,), _file_phash, settings, "images (pHash, for duplicates)") > 0
    groups = near_groups(np.asarray(bits, dtype=bool), distance)
    sizes = np.bincount(groups)
    repeated = sizes[sizes >= 2]
    if not len(repeated):
        return groups, f"duplicates: none among {len(groups)} labelled images (pHash within {distance} bits)"
    return groups, (
        f"duplicates: {repeated.sum()} of {len(groups)} labelled images are near copies (pHash within {distance} "
        f"bits), in {len(repeated)} groups; each group is kept in one fold"
    )


def _file_phash(path) -> np.ndarray:
    return phash_bits(_opened([path]))[0].astype(np.uint8)


def near_groups(bits: np.ndarray, distance: int, chunk: int = 2048) -> np.ndarray:
    """Group index per picture: connected components of 'at most `distance` pHash bits apart'."""
    n = len(bits)
    ones = bits.astype(np.float32)
    zeros = 1.0 - ones
    rows, cols = [], []
    for start in range(0, n, chunk):
        block = slice(start, min(n, start + chunk))
        hamming = ones[block] @ zeros.T + zeros[block] @ ones.T
        r, c = np.nonzero(hamming <= distance + 0.5)
        rows.append(r + start)
        cols.append(c)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


@dataclass
class Cleaning:
    keep: np.ndarray  # bool per sample
    groups: np.ndarray  # near-duplicate group per sample (kept ones share a fold)
    report: dict


def find_contaminants(
    pictures: Iterable[Image.Image], raw: Iterable[bytes], labels: np.ndarray, keys: list[str], classes: list[str],
    clean: dict,
) -> Cleaning:  # fmt: skip
    """Which samples to drop (near-copy groups of at least contaminant_copies), and what was found."""
    bits = phash_bits(pictures)
    groups = near_groups(bits, clean["distance"])
    exact = Counter(hashlib.blake2b(b, digest_size=16).digest() for b in raw)
    sizes = np.bincount(groups)
    contaminant = sizes[groups] >= clean["contaminant_copies"]
    repeated = [g for g in np.flatnonzero((sizes >= 2) & (sizes < clean["contaminant_copies"]))]
    removed = []
    for g in np.unique(groups[contaminant]):
        members = np.flatnonzero(groups == g)
        by_class = Counter(classes[k] for k in labels[members])
        removed.append({"copies": int(len(members)), "example": keys[members[0]], "labels": dict(by_class)})
    conflicting = sum(len(set(labels[groups == g])) > 1 for g in repeated)
    report = {
        "samples": len(keys),
        "removed": int(contaminant.sum()),
        "contaminant_groups": sorted(removed, key=lambda r: -r["copies"]),
        "exact_copies": int(sum(c - 1 for c in exact.values())),
        "duplicate_groups_kept": len(repeated),
        "samples_in_kept_groups": int(sizes[repeated].sum()) if repeated else 0,
        "kept_groups_with_conflicting_labels": int(conflicting),
        "phash_distance": clean["distance"],
        "contaminant_copies": clean["contaminant_copies"],
    }
    return Cleaning(~contaminant, groups, report)


def describe(report: dict) -> str:
    groups = ", ".join(f"{r['copies']} copies of {r['example']}" for r in report["contaminant_groups"]) or "none"
    return (
        f"cleaning: {report['removed']} of {report['samples']} samples removed as contaminants ({groups}); "
        f"{report['exact_copies']} exact copies in all; {report['duplicate_groups_kept']} small duplicate groups "
        f"kept ({report['samples_in_kept_groups']} samples, each group in one fold, "
        f"{report['kept_groups_with_conflicting_labels']} with conflicting labels)"
    )


def _pictures(split: Split):
    if split.arrays is not None:
        for array in split.arrays:
            yield Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)
        return
    yield from _opened(split.files)


def _opened(paths):
    for path in paths:
        try:
            with Image.open(path) as picture:
                picture.load()
                yield picture
        except (OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: unreadable image ({exc})") from exc


def _raw(split: Split):
    if split.arrays is not None:
        yield from (a.tobytes() for a in split.arrays)
    else:
        yield from (p.read_bytes() for p in split.files)


_CACHE: dict[tuple, tuple[Samples, dict | None]] = {}


def read_clean(data_dir, spec: dict) -> tuple[Samples, dict | None]:
    """The layout's samples with contaminants dropped from the labelled split and duplicate groups attached, and
    the cleaning report (None where the dataset declares no `clean`). Computed once per process and dataset."""
    spec = ImageDataset.resolved(spec)
    clean = check_clean(spec["clean"])
    samples = read_layout(data_dir, spec)
    if not clean:
        return samples, None
    key = (str(data_dir), repr(sorted(spec.items(), key=str)), len(samples.train.keys))
    if key not in _CACHE:
        train = samples.train
        found = find_contaminants(_pictures(train), _raw(train), train.labels, train.keys, samples.classes, clean)
        if not found.keep.any():
            raise DataError(f"{data_dir}: every labelled sample is a near copy of another; dataset.clean removes all")
        cleaned = Samples(samples.classes, train.subset(found.keep, found.groups), samples.test)
        _CACHE[key] = cleaned, found.report
        print(describe(found.report), flush=True)
    return _CACHE[key]
