"""Process-wide runtime tuning, in one home: context managers that set a setting and put it back on exit.

Each setting belongs to a kind of process, not to a library call: a backfill, a scoring batch, the watcher, its
sentry. So they are entered only where a process starts its job — a CLI handler, the watcher's `run`, a child
process's body — and a test or another caller that runs the same code in its own process keeps its own settings.
Why each value was chosen, and what it was measured to change, is in benchmarks/RESULTS.md ("Runtime tuning").
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

# The collector for a batch that scores events: millions of short-lived acyclic containers (matches, evidence,
# rows) beside long-lived rules and alerts. Young collections 70 times less often; what exists at start frozen.
# Collection time saved for a little more memory at the peak (figures: benchmarks/RESULTS.md, "Runtime tuning:
# scoring GC").
BATCH_GC_THRESHOLDS = (50_000, 20, 100)
# glibc's mallopt parameters (malloc.h) and the backfill's values: blocks up to 128 MiB from the heap, up to
# 512 MiB of free heap kept, so the same pages serve every chunk instead of being mapped and zeroed anew: faster,
# for a higher peak (figures: benchmarks/RESULTS.md, "Runtime tuning: backfill malloc").
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
BACKFILL_MMAP_THRESHOLD = 128 << 20
BACKFILL_TRIM_THRESHOLD = 512 << 20
# glibc's documented defaults (mallopt(3)), restored on exit. Setting either turns glibc's dynamic mmap threshold
# off for good; a process that leaves a backfill is about to end, so that is of no consequence.
GLIBC_MMAP_THRESHOLD = 128 << 10
GLIBC_TRIM_THRESHOLD = 128 << 10
# The watcher's DuckDB settings (process-wide: DuckDB has them per database instance, and one allocator):
WATCHER_DUCKDB: dict[str, bool | int] = {
    # freed memory given back to the system on DuckDB's allocator's own threads. Without them, its jemalloc
    # returns memory only when DuckDB allocates again, so a watcher that went quiet after a big query (the
    # warm-up's read of the recent past, a compaction) kept all of it: 380 MiB resident for 6 MiB in use, idle
    "allocator_background_threads": True,
    # one worker thread: the watcher's reader, acting and compacting threads keep the cores busy already, and
    # with two a compaction's COPY (two threads reading segments ahead, in order) peaked at 450 MiB above the
    # watcher for 1.2M rows, at one 45 MiB; the soak lagged less with one, not more
    "threads": 1,
}
# (figures for both: benchmarks/RESULTS.md, "Runtime tuning: the watcher's DuckDB")
# The watcher's pyarrow memory pool: the C library's malloc, not pyarrow's default (mimalloc, on Linux wheels).
# The watcher's Arrow buffers are many and short-lived (a pass's rows, the feed, segment writes); mimalloc kept
# the pages they freed, the soak's RSS 20-60 MiB higher at its peak and in its last 10 s (figures:
# benchmarks/RESULTS.md, "Runtime tuning: the watcher's Arrow memory pool").
WATCHER_ARROW_POOL = "system"


@contextlib.contextmanager
def _frozen(thresholds: tuple[int, int, int]) -> Iterator[None]:
    """What exists now frozen out of collections and the collector's `thresholds`, both put back after. CPython
    unfreezes all or nothing, so a caller that had frozen objects of its own keeps them frozen, the block's too."""
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if not frozen:
            gc.unfreeze()


def gc_for_batch() -> contextlib.AbstractContextManager[None]:
    """A scoring batch's collector: what exists now frozen out of collections, young ones far less often."""
    return _frozen(BATCH_GC_THRESHOLDS)


def gc_rare_full_collections() -> contextlib.AbstractContextManager[None]:
    """A long-running loop whose state holds no cycles (the sentry's gates): what exists now frozen, and full
    collections left to the loop, which calls `gc.collect()` between ticks when it chooses."""
    young, middle, _ = gc.get_threshold()
    return _frozen((young, middle, 1 << 30))


@contextlib.contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """No cyclic collection during one bulk operation of many acyclic objects (reference counting still frees);
    the collector is enabled again after it only if it was enabled before.

    The one setting entered inside a library call (the enforcer's bulk bans, restores and reconciles): it lasts
    for that operation alone and leaves the process as it found it."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's `mallopt`, or None on another C library or system."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return fn


@contextlib.contextmanager
def malloc_for_backfill() -> Iterator[bool]:
    """Large freed blocks kept for reuse during a backfill. Yields whether glibc took the settings (False where
    there is no glibc `mallopt`, which changes nothing)."""
    mallopt = _mallopt()
    applied = mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, BACKFILL_MMAP_THRESHOLD)) \
        and bool(mallopt(M_TRIM_THRESHOLD, BACKFILL_TRIM_THRESHOLD))
    try:
        yield applied
    finally:
        if mallopt is not None and applied:
            mallopt(M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD)
            mallopt(M_TRIM_THRESHOLD, GLIBC_TRIM_THRESHOLD)


@contextlib.contextmanager
def duckdb_settings(con: duckdb.DuckDBPyConnection, settings: dict[str, bool | int]) -> Iterator[None]:
    """DuckDB `settings`, made through `con` (the connection the process works with) for as long as the block
    lasts, then put back through it (unless it was closed meanwhile)."""
    import duckdb

    before = {name: con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0] for name in settings}
    try:
        for name, value in settings.items():
            con.execute(f"SET {name} = {value!r}")
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            for name, value in before.items():
                con.execute(f"SET {name} = {value!r}")


@contextlib.contextmanager
def arrow_memory_pool(backend: str) -> Iterator[None]:
    """pyarrow's default memory pool `backend` ("system", "jemalloc", "mimalloc") for the block, then the one
    before (buffers made meanwhile keep the pool they came from)."""
    import pyarrow as pa

    before = pa.default_memory_pool()
    pa.set_memory_pool({"system": pa.system_memory_pool, "jemalloc": pa.jemalloc_memory_pool,
                        "mimalloc": pa.mimalloc_memory_pool}[backend]())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


@contextlib.contextmanager
def switch_interval(seconds: float) -> Iterator[None]:
    """The interpreter's thread switch interval (how long a thread holding the GIL runs before another may)."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Environment variables for the processes started inside the block (a child's thread counts, read by its
    libraries at import), then as they were."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def freeze_before_exit() -> None:
    """Keep the interpreter's collections at exit from walking every object the command made. Only for a process
    about to end: nothing unfreezes it."""
    gc.freeze()
