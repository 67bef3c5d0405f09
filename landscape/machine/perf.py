"""Process-level settings that make the CPU engine faster.

glibc returns large freed blocks to the kernel, so every step's fresh (R, width, P)
activations would be page-faulted and zeroed again; keeping freed memory in the heap makes
those allocations reuse warm pages. glibc caps the mmap threshold at 32 MiB, so blocks above
it (width 1000 × 300 points × 16 replicas is 38 MB) would be mapped afresh every step: mmap
is switched off for the heap's blocks altogether. The gains: docs/performance.md. Recorders
and benchmarks call this once; importing the library alone changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks in the heap (no mmap for big ones, trim above 1 GiB);
    False where not glibc."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
            and libc.mallopt(_M_MMAP_MAX, 0) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1
        )
    except (OSError, AttributeError):
        return False
    _done = ok
    return ok
