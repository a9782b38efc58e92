"""Issue 22: CSV input in bounded memory. A line longer than `[ingest] max_line_bytes` is read past without
being held, kept in `rejects` with its file, line and offset, and the rows around it are stored; a header line
that long is a clear error. (benchmarks/csv_bombs.py measures the 400 MB bombs of the issue.)"""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import duckdb

from fraudwatch.config import IngestConfig
from fraudwatch.formats.registry import Format
from fraudwatch.ingest import FileSummary, Ingestor
from fraudwatch.store.db import Store

HEADER = b"flowno,starttime,stoptime,calleee164,callerip,fee,customeraccount\n"


def row(i: int) -> bytes:
    return f"{i},{1763607600000 + i * 1000},{1763607662000 + i * 1000},0044,198.51.100.7,0.5,10001\n".encode()


BIG = 24 << 20  # the over-long line: far above what the reader may hold at once
OPTIONS = IngestConfig(chunk_bytes=1 << 20, max_line_bytes=64 << 10)


def _ingest(db: Path, formats: dict[str, Format], path: Path) -> tuple[FileSummary, int]:
    with Store(db) as store:
        ingestor = Ingestor(store, formats, OPTIONS)
        tracemalloc.start()
        try:
            summary = ingestor.ingest(path, "vos3000-cdr")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return summary, peak


def test_an_over_long_csv_line_is_kept_aside_and_never_held(tmp_path: Path, db: Path,
                                                            formats: dict[str, Format]) -> None:
    cdr = tmp_path / "e_cdr_20261120.csv.gz"
    with gzip.open(cdr, "wb", compresslevel=1) as f:
        f.write(HEADER + row(1) + row(2))
        for _ in range(BIG // (1 << 20)):
            f.write(b"9" * (1 << 20))
        f.write(b"\n" + row(3) + row(4))
    summary, peak = _ingest(db, formats, cdr)
    assert summary.error is None, summary.error
    assert (summary.lines, summary.parsed, summary.counts.rejected) == (5, 4, 1)
    assert peak < BIG // 3, f"peak {peak} bytes"
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT source, line_no, byte_offset, reason, strlen(raw), raw_bytes FROM rejects"
                           ).fetchall() == [(str(cdr), 4, len(HEADER + row(1) + row(2)), f"line too long ({BIG} bytes)",
                                             4096, BIG)]
        assert con.execute("SELECT flowno, line_no FROM cdrs ORDER BY 1").fetchall() == [(1, 2), (2, 3), (3, 5),
                                                                                         (4, 6)]
    finally:
        con.close()


def test_a_plain_csv_ending_inside_an_over_long_line_waits_for_its_end(tmp_path: Path, db: Path,
                                                                     formats: dict[str, Format]) -> None:
    cdr = tmp_path / "e_cdr_20261120.csv"
    cdr.write_bytes(HEADER + row(1) + b"9" * (1 << 20))
    first, _ = _ingest(db, formats, cdr)
    assert (first.parsed, first.counts.rejected) == (1, 0)
    with cdr.open("ab") as f:
        f.write(b"\n" + row(2))
    again, _ = _ingest(db, formats, cdr)
    assert (again.parsed, again.counts.rejected, again.counts.reasons["line too long"]) == (1, 1, 1)


def test_a_csv_header_too_long_is_a_clear_error_not_a_memory_spike(tmp_path: Path, db: Path,
                                                                   formats: dict[str, Format]) -> None:
    cdr = tmp_path / "e_cdr_20261120.csv.gz"
    with gzip.open(cdr, "wb", compresslevel=1) as f:
        f.write(HEADER.rstrip(b"\n"))
        for _ in range(BIG // (1 << 20)):
            f.write(b",x" * (1 << 19))
        f.write(b"\n" + row(1))
    summary, peak = _ingest(db, formats, cdr)
    assert summary.error == f"{cdr}: header line longer than {64 << 10} bytes ([ingest] max_line_bytes): not a " \
        "CSV export"
    assert peak < BIG // 3, f"peak {peak} bytes"
