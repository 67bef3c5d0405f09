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
_mode: bool | None = None  # the setting in force: True kept, False released, None never set
KEEP_BELOW = 1 << 30  # bytes: a run whose largest working arrays stay below this keeps freed memory


def keep_freed_memory(keep: bool = True) -> bool:
    """Ask glibc to keep freed blocks in the heap (no mmap for big ones, trim above 1 GiB), or
    with keep=False to give blocks of 32 MiB and more back as soon as they are freed (mmap
    them) and trim the heap above 128 MiB; True where the setting is in force (False where not
    glibc). Keeping pays for runs of small arrays stepped many times; with arrays of GBs (a
    Krylov basis of 10⁵–10⁶ parameters) a heap that never gives back fragments without bound
    (a width-512 MNIST sweep grew past 24 GB; giving them back, it peaked at 2.8 GB), so a recording
    chooses by its size (`keeps_freed_memory`)."""
    global _mode
    if _mode is keep:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = (
            libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
            and libc.mallopt(_M_MMAP_MAX, 0 if keep else 65536) == 1
            and libc.mallopt(_M_TRIM_THRESHOLD, (1 << 30) if keep else (128 << 20)) == 1
        )
    except (OSError, AttributeError):
        return False
    _mode = keep if ok else None
    return ok


def keeps_freed_memory(replicas: int, num_params: int, krylov: int, itemsize: int = 8) -> bool:
    """Whether a recording of `replicas` × `num_params` keeps freed memory: its largest arrays,
    the eigensolver's basis and products (2 × krylov vectors a replica), below KEEP_BELOW."""
    return 2 * replicas * krylov * num_params * itemsize < KEEP_BELOW
