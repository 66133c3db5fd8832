"""Pausing Python's cyclic garbage collector while a batch is built and matched.

A batch of 5,000 records allocates a few hundred thousand small objects (records, keys, links)
and frees them together; it creates no reference cycles worth collecting early. With the
collector on, every 700 allocations trigger a young collection and the older generations are
rescanned over the whole live heap, so the cost grows with everything else in memory and can
take a large share of the matcher's time. The collector comes back at the end of the batch,
when the batch's objects are garbage.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (nested blocks leave it to the outermost)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` inside :func:`gc_paused`."""
    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with gc_paused():
            return fn(*args, **kwargs)
    return wrapper
