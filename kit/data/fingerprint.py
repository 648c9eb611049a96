"""A data folder's fingerprint: every file's relative path and size, and the content of its label and array files
(tables and npz), so a run knows whether it is looking at the data it was trained on. Image and DICOM files count
by size only: hashing a 150,000-file DICOM tree on every command would cost minutes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

HASHED = {".csv", ".txt", ".json", ".npz", ".npy", ".tsv", ".parquet"}
HASHED_MAX_BYTES = 512 << 20


def fingerprint(folder: str | os.PathLike) -> dict:
    """{"sha256": hex, "files": n, "bytes": total} of a folder (or of one file)."""
    root = Path(folder)
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p, root))
    digest = hashlib.sha256()
    total = 0
    for path in files:
        size = path.stat().st_size
        total += size
        digest.update(f"{path.relative_to(root) if path != root else path.name}\0{size}\0".encode())
        if path.suffix.lower() in HASHED and size <= HASHED_MAX_BYTES:
            with open(path, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(block)
    return {"sha256": digest.hexdigest(), "files": len(files), "bytes": total}


def _hidden(path: Path, root: Path) -> bool:
    """Editor and OS litter (.DS_Store, .ipynb_checkpoints) is no part of the data."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)
