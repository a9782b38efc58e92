"""A backfill's malloc settings (fraudwatch.batchmalloc): a large block freed is reused without faulting again."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocate and free a 64 MB block (above glibc's largest default mmap threshold, 32 MB), then count the page
# faults of a second allocation of the same size, written through.
PROBE = """
import resource, sys
from fraudwatch.batchmalloc import for_backfill
tuned = sys.argv[1] == "tuned" and for_backfill()
block = bytearray(64 << 20); block[::4096] = b"x" * len(block[::4096]); del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = bytearray(64 << 20); block[::4096] = b"x" * len(block[::4096])
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_block_is_reused_without_faulting_its_pages_again() -> None:
    faults = {}
    for mode in ("default", "tuned"):
        run = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60,
                             check=True)
        tuned, n = run.stdout.split()
        faults[mode] = (tuned, int(n))
    pages = (64 << 20) // 4096
    assert faults["default"][0] == "False" and faults["default"][1] >= pages  # mapped afresh: every page faults
    assert faults["tuned"][0] == "True" and faults["tuned"][1] < pages // 10  # the heap's pages, reused
