"""Reads that several steps of one command repeat, done once while a scope is open: `prepare` makes the folds and
then the training object, and both list the same folder (20,000 files: most of a second each). Outside a scope every
call reads afresh, so a folder changed between two commands (or two steps of a test) is always seen."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
_scope = threading.local()


@contextmanager
def one_read() -> Iterator[None]:
    """While open (in this thread), each @read_once function reads each argument list once."""
    outer = getattr(_scope, "memo", None)
    _scope.memo = {} if outer is None else outer
    try:
        yield
    finally:
        _scope.memo = outer


def read_once(read: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(read)
    def once(*args) -> T:
        memo = getattr(_scope, "memo", None)
        if memo is None:
            return read(*args)
        key = (read.__module__, read.__qualname__, repr(args))
        if key not in memo:
            memo[key] = read(*args)
        return memo[key]

    return once
