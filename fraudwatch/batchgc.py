"""Garbage-collector settings for the batch processes that score events: a replay and `ingest --detect`'s
scoring process.

Scoring allocates millions of short-lived containers (matches, evidence lists, rows as Python values) while the
alerts and the rules' state live long. With CPython's default thresholds a flood replay spends a noticeable
share of its time in collections, some over the whole heap. Freezing what exists at start (modules, rules) and
collecting 70 times less often takes nearly all of that away, for a little more memory at the peak: reference
counting frees everything but cycles, and the scoring makes none that matter (figures: benchmarks/RESULTS.md,
"Runtime tuning: scoring GC").
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)  # allocations before a young collection; young ones before the next generation's


def for_batch() -> None:
    """Tune this process's collector for a batch of scoring (see the module's docstring)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
