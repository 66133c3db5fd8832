"""Handing freed memory back to the operating system between a sync's batches.

A batch allocates and frees tens of megabytes in small blocks. glibc keeps freed blocks in its
heaps (one per thread that allocated: the retrieval and the processor each have one) for reuse;
the pieces still in use scattered among them keep a long backfill's resident memory rising
batch after batch though the live data stays the same. ``malloc_trim`` returns the free pages of
every heap; it walks them once (milliseconds), so the processor calls it after each batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "malloc_trim") else None  # glibc only
    except OSError:
        return None


def release_free_memory() -> None:
    """Return the C heaps' free pages to the OS (glibc); a no-op where there is no malloc_trim."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
