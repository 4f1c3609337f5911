"""Freed memory handed back to the system.

Indexing allocates and frees a great deal (file texts, token lists, SQLite pages, embedding
batches); glibc's allocator keeps the freed pages in its heaps for reuse, so a server that has
indexed stays as large as its busiest moment. After such work the server asks glibc to return
what is free (`malloc_trim`). glibc also gives each thread that allocates a heap of its own, up
to eight per core, each keeping its own free pages: the server (event loop, index thread, model
thread, the runtimes' own threads) caps them at HEAPS (`mallopt`, before its threads start).
Elsewhere (another C library, another system) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

HEAPS = 2  # the server's C heaps (glibc's M_ARENA_MAX; its default is 8 per core)
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


@cache
def _libc_function(name: str):  # -> the C function, or None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def _trim():  # -> malloc_trim, or None
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def limit_heaps(heaps: int = HEAPS) -> bool:
    """Cap the C heaps threads allocate from (call before starting threads); True where glibc took it.
    Fewer heaps hold fewer free pages between trims; the server's threads mostly take turns."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, heaps))


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; True where the C library could (glibc)."""
    trim = _trim()
    if trim is None:
        return False
    trim(0)
    return True
