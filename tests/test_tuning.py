"""Runtime tuning (fraudwatch.tuning): each setting does what it is for, and is put back when its block ends."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import pytest

from fraudwatch import tuning

# Allocate and free a 64 MB block (above glibc's largest default mmap threshold, 32 MB), then count the page
# faults of a second allocation of the same size, written through: inside the backfill's settings, outside
# them, and after leaving them.
PROBE = """
import contextlib, resource, sys
from fraudwatch.tuning import malloc_for_backfill

def faults():
    block = bytearray(64 << 20); block[::4096] = b"x" * len(block[::4096]); del block
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = bytearray(64 << 20); block[::4096] = b"x" * len(block[::4096])
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

mode = sys.argv[1]
if mode == "default":
    print(False, faults())
elif mode == "tuned":
    with malloc_for_backfill() as applied:
        print(applied, faults())
else:
    with malloc_for_backfill() as applied:
        pass
    print(applied, faults())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_again() -> None:
    faults = {}
    for mode in ("default", "tuned", "after"):
        run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                             check=True)
        tuned, n = run.stdout.split()
        faults[mode] = (tuned, int(n))
    pages = (64 << 20) // 4096
    assert faults["default"][0] == "False" and faults["default"][1] >= pages  # mapped afresh: every page faults
    assert faults["tuned"][0] == "True" and faults["tuned"][1] < pages // 10  # the heap's pages, reused
    assert faults["after"][0] == "True" and faults["after"][1] >= pages  # glibc's defaults again


def test_batch_gc_is_restored_after_the_batch() -> None:
    gc.unfreeze()  # from a process that froze nothing (an earlier test's command may have)
    before = gc.get_threshold()
    with tuning.gc_for_batch():
        assert gc.get_threshold() == tuning.BATCH_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_what_the_caller_froze_stays_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with tuning.gc_for_batch():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()


def test_rare_full_collections_are_restored() -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    with tuning.gc_rare_full_collections():
        assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] == 1 << 30
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_gc_pause_enables_again_only_what_was_enabled() -> None:
    assert gc.isenabled()
    with tuning.gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with tuning.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with tuning.gc_paused(False):
        assert gc.isenabled()


def test_switch_interval_and_environment_are_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = sys.getswitchinterval()
    with tuning.switch_interval(0.001):
        assert sys.getswitchinterval() == pytest.approx(0.001)
    assert sys.getswitchinterval() == before
    monkeypatch.setenv("FW_TUNING_SET", "kept")
    monkeypatch.delenv("FW_TUNING_UNSET", raising=False)
    with tuning.environment(FW_TUNING_SET="1", FW_TUNING_UNSET="2"):
        assert os.environ["FW_TUNING_SET"] == "1" and os.environ["FW_TUNING_UNSET"] == "2"
    assert os.environ["FW_TUNING_SET"] == "kept" and "FW_TUNING_UNSET" not in os.environ


def test_the_settings_are_restored_when_the_block_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), tuning.gc_for_batch():
        raise RuntimeError("scoring failed")
    assert gc.get_threshold() == before


def test_duckdb_settings_are_made_and_put_back() -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = 3")
    settings = "SELECT current_setting('threads'), current_setting('allocator_background_threads')"
    before = con.execute(settings).fetchall()
    with tuning.duckdb_settings(con, tuning.WATCHER_DUCKDB):
        assert con.execute(settings).fetchall() == [(tuning.WATCHER_DUCKDB["threads"], True)]
    assert con.execute(settings).fetchall() == before == [(3, False)]
    with pytest.raises(RuntimeError), tuning.duckdb_settings(con, {"threads": 1}):
        raise RuntimeError("the watcher failed")
    assert con.execute(settings).fetchall() == before
    with tuning.duckdb_settings(con, {"threads": 1}):
        con.close()  # closed inside the block: nothing to put back


def test_the_arrow_memory_pool_is_put_back() -> None:
    import pyarrow as pa

    before = pa.default_memory_pool().backend_name
    with tuning.arrow_memory_pool(tuning.WATCHER_ARROW_POOL):
        assert pa.default_memory_pool().backend_name == tuning.WATCHER_ARROW_POOL
        assert pa.array(["kept"] * 3).to_pylist() == ["kept"] * 3
    assert pa.default_memory_pool().backend_name == before
