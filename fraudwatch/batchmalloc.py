"""glibc's malloc settings for a backfill: large blocks freed are kept for reuse, not handed back to the kernel.

A backfill allocates and frees the same large blocks chunk after chunk: a 32 MB read and its copy, DuckDB's and
Arrow's buffers. By default glibc serves a block above its mmap threshold (which it moves as it goes, up to
32 MB) with a mapping of its own and unmaps it when freed, and gives the kernel back what is freed at the top of
its heap; the next chunk then faults every page in again, each zeroed by the kernel. With blocks up to
MMAP_THRESHOLD taken from the heap and up to TRIM_THRESHOLD of free heap kept, the same pages serve every chunk.

Backfills are faster (fewer page faults, less system time), and their peak RSS higher (figures:
benchmarks/RESULTS.md, "Runtime tuning: backfill malloc"). So for backfills only: the watcher runs for months and
must give memory back after a flood.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 20
TRIM_THRESHOLD = 512 << 20


def for_backfill() -> bool:
    """Set glibc's thresholds for this process (see the module's docstring); False where there is no glibc
    `mallopt` (another C library or system), which changes nothing."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
