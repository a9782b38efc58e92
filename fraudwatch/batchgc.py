"""Garbage-collector settings for the batch processes that score events: a replay and `ingest --detect`'s
scoring process.

Scoring allocates millions of short-lived containers (matches, evidence lists, rows as Python values) while the
alerts and the rules' state live long. With CPython's default thresholds a flood replay (2M lines,
benchmarks/detect_bench.py) ran some 760 collections, 6 of them over the whole heap: 1.1-1.3 s of its 14 s.
Freezing what exists at start (modules, rules) and collecting 70 times less often took that to 0.05 s, for
20-35 MiB more at the peak: reference counting frees everything but cycles, and the scoring makes none that
matter.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)  # allocations before a young collection; young ones before the next generation's


def for_batch() -> None:
    """Tune this process's collector for a batch of scoring (see the module's docstring)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
