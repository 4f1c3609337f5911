"""Freed memory handed back to the system.

Indexing allocates and frees a great deal (file texts, token lists, SQLite pages, embedding
batches); glibc's allocator keeps the freed pages in its heaps for reuse, so a server that has
indexed stays as large as its busiest moment. After such work the server asks glibc to return
what is free (`malloc_trim`); elsewhere (another C library, another system) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


@cache
def _trim():  # -> the C function, or None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; True where the C library could (glibc)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
