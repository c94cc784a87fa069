"""Giving freed heap memory back to the system (glibc's ``malloc_trim``).

A first poll of 50,000 numbers decodes, parses and renders a fleet's worth of transient
objects; after it, and after each round of template reads, much of the heap is free but
still held by the process. ``malloc_trim(0)`` returns free pages to the kernel, so RSS
shows what the daemon keeps rather than its high-water mark (BENCHMARKS.md says how much).
Elsewhere than glibc (musl, macOS) there is nothing to call and nothing happens.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def give_back() -> bool:
    """Return free heap pages to the system; True if the C library could do it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
