"""Seconds spent per named stage of a prediction (decode, stage 1, crops, stage 2…), each stage's own time only: a
stage timed inside another is subtracted from the outer one, so the stages add up to the time measured."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

_seconds: dict[str, float] = defaultdict(float)
_open: list[float] = []  # per open stage, the seconds its inner stages took


@contextmanager
def stage(name: str):
    start = time.perf_counter()
    _open.append(0.0)
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        inner = _open.pop()
        _seconds[name] += elapsed - inner
        if _open:
            _open[-1] += elapsed


def reset() -> None:
    _seconds.clear()


def seconds() -> dict[str, float]:
    """Each stage's own seconds since the last reset, in the order the stages first ran."""
    return dict(_seconds)
