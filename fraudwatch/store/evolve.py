"""Segments written before a column was added to their table get it, so every segment keeps the table's columns
in order (the views read them by position: `fraudwatch.store.layout.view_sql`).

A migration adds a column at the end of an event table's hot table; the segments already written lack it, and a
read by position would silently drop it from the rows of every file after the first (DuckDB takes the first
file's columns). So at the open that migrates, each listed segment whose columns are a prefix of the table's is
rewritten with the new columns NULL: streamed by DuckDB into a temporary file, fsynced, renamed over the old one
(the same rows under the same name, so the manifest stays right but for its size and time), one file at a time.
It runs at every writer open, but looks only at segments written before the latest migration (a rewritten one
takes the time of its rewrite): a crash half-way leaves the rest for the next open.
"""

from __future__ import annotations

import logging
import os

import duckdb
import pyarrow.parquet as pq

from fraudwatch.sqltext import lit
from fraudwatch.store.layout import SEGMENTED, fsync_path
from fraudwatch.store.schema import TABLES
from fraudwatch.store.segments import Segments

log = logging.getLogger("fraudwatch.store")


def conform_segments(segs: Segments, con: duckdb.DuckDBPyConnection | None = None) -> int:
    """Rewrite the listed segments that lack a column their table has (of those written before the latest
    migration); returns how many were rewritten."""
    con = con or segs.con
    done = 0
    for table in SEGMENTED:
        want = TABLES[table].names
        older = con.execute("SELECT file FROM segments WHERE tbl = ? AND created_at < (SELECT max(applied_at) "
                            "FROM schema_version) ORDER BY seq", [table]).fetchall()
        for rel, in older:
            path = segs.root / rel
            try:
                have = tuple(pq.read_schema(path).names)
            except OSError:  # gone: `Segments.recover` drops it from the manifest
                continue
            if have == want:
                continue
            if have != want[:len(have)]:
                raise RuntimeError(f"{path}: columns {have} are not a prefix of {table}'s")
            cols = ", ".join(f'"{c.name}"' if c.name in have else f'NULL::{c.type} AS "{c.name}"'
                             for c in TABLES[table].columns)
            tmp = path.with_name(path.name + ".tmp")
            con.execute(f"COPY (SELECT {cols} FROM read_parquet({lit(str(path))})) TO {lit(str(tmp))} "  # nosec B608 # the schema's column names and types; the paths quoted by lit
                        "(FORMAT parquet, COMPRESSION zstd)")
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
            con.execute("UPDATE segments SET bytes = ?, created_at = now() WHERE file = ?",
                        [path.stat().st_size, rel])
            done += 1
    if done:
        log.info("%d segment(s) given the columns added to their table", done)
    return done
