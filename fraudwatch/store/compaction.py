"""Merging small segments, and deleting the ones merges replaced once readers are done with them.

The watcher merges on a thread of its own every 30 s; a backfill merges as it goes once many segments are listed
(each commit that adds a segment makes its table's view again, over every listed file).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from fraudwatch.sqltext import lit
from fraudwatch.store.layout import NO_DAY, fsync_path
from fraudwatch.store.schema import TABLES

if TYPE_CHECKING:
    from fraudwatch.store.segments import Segments

SMALL_BYTES = 16 << 20  # segments below this size are merged ...
MERGE_AT = 16  # ... once a day of a table has this many of them
COMPACT_ABOVE = 512  # segments listed beyond which a writer merges as it goes (the watcher merges every 30 s)
GRACE_SECONDS = 120.0  # a replaced segment is deleted this long after it left the manifest


def compact(segs: Segments, con: duckdb.DuckDBPyConnection | None = None, merge_at: int | None = None) -> int:
    """Merge each day's small segments of a table into one, in their order; returns the merges made. Safe
    from another thread with a cursor of its own: DuckDB streams the merge to its file outside the lock
    (the GIL free; memory flat on one DuckDB thread, as the watcher runs it, not on two: tuning.WATCHER_DUCKDB),
    and the swap is a transaction of its own."""
    con = con or segs.con
    groups = con.execute(
        "SELECT tbl, day, list(seq ORDER BY seq), list(file ORDER BY seq), sum(rows)::BIGINT, max(max_id), "
        "min(min_time), max(max_time) FROM segments WHERE bytes < ? GROUP BY ALL HAVING count(*) >= ? "
        "ORDER BY 1, 2", [SMALL_BYTES, merge_at or MERGE_AT]).fetchall()
    merges = 0
    for table, day, seqs, files, rows, max_id, lo, hi in groups:
        seq = segs.new_seq()
        day_name = day.isoformat() if day is not None else NO_DAY
        rel = Path(table) / f"day={day_name}" / f"{seq:012d}.parquet"
        path = segs.root / rel
        tmp = path.with_name(path.name + ".tmp")
        listed = ", ".join(lit(str(segs.root / f)) for f in files)
        cols = ", ".join(f'"{c}"' for c in TABLES[table].names)
        con.execute(f"COPY (SELECT {cols} FROM read_parquet([{listed}], union_by_name = true)) TO "  # nosec B608 # columns of the schema, file names quoted by lit
                    f"{lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
        with segs.transaction(con):
            segs.adopt(path, table)
            gone = con.execute("DELETE FROM segments WHERE list_contains(?, seq) RETURNING file",
                               [seqs]).fetchall()
            if len(gone) != len(seqs):  # changed meanwhile (cannot happen with one writer): leave it
                raise RuntimeError(f"segments of {table} {day_name} changed during their merge")
            now = dt.datetime.now(dt.UTC)
            con.executemany("INSERT INTO segment_trash VALUES (?, ?)", [[f, now] for (f,) in gone])
            con.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [seq, table, day, str(rel), rows, path.stat().st_size, max_id, lo, hi, now])
        merges += 1
        segs.files -= len(seqs) - 1
    empty_trash(segs, con)
    return merges

def maybe_compact(segs: Segments, con: duckdb.DuckDBPyConnection | None = None) -> int:
    """`compact` once many segments are listed: a backfill of months of logs, segment by segment, would
    otherwise make every commit rebind views over thousands of files."""
    return compact(segs, con) if segs.files >= COMPACT_ABOVE else 0

def empty_trash(segs: Segments, con: duckdb.DuckDBPyConnection | None = None,
                grace: float = GRACE_SECONDS) -> None:
    con = con or segs.con
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=grace)
    with segs.lock:
        done = con.execute("DELETE FROM segment_trash WHERE removed_at <= ? RETURNING file", [cutoff]).fetchall()
    for (rel,) in done:
        (segs.root / rel).unlink(missing_ok=True)
