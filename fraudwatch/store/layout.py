"""Where and how event segments are laid out: the folder beside the store, the day partitions, the Parquet
encoding, the views over them, and the listing readers in other processes follow (`fraudwatch.store.segments`
writes them; docs/architecture.md, *Storage*)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.errors import StoreError
from fraudwatch.sqltext import lit
from fraudwatch.store.schema import TABLES, arrow_schema

# Append-only tables and the time column that names a row's day.
SEGMENTED: dict[str, str] = {"sip_events": "ts", "netfilter_events": "ts", "cdrs": "start_time",
                             "rejects": "ingested_at"}
LISTING = "_segments.json"
NO_DAY = "__HIVE_DEFAULT_PARTITION__"  # rows without a time (Hive's name for a NULL partition value)
ZSTD_LEVEL = 3
# How the writer names a segment, relative to the segments folder (`Segments._write`, compaction): nothing else
# a manifest names is read. ASCII digits only, no glob or quote characters, no `..`, never an absolute path.
_SEGMENT = re.compile(r"(?P<table>[a-z_]+)/day=(?:[0-9]{4}-[0-9]{2}-[0-9]{2}|__HIVE_DEFAULT_PARTITION__)/"
                      r"[0-9]{12}\.parquet")


def hot(table: str) -> str:
    return f"hot_{table}"


def segments_root(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".segments")


def make_view(con: duckdb.DuckDBPyConnection, root: Path, table: str, kind: str = "") -> None:
    """`CREATE OR REPLACE {kind} VIEW table` over its hot table and the segments the manifest on `con` lists,
    found under `root` (the writer's views; a read-only connection's temporary ones, `kind` "TEMP")."""
    con.execute(f"CREATE OR REPLACE {kind} VIEW {table} AS {view_sql(table, listed_files(con, root, table), True)}")


def listed_files(con: duckdb.DuckDBPyConnection, root: Path, table: str) -> list[Path]:
    """The segments of `table` the manifest on `con` lists (oldest first), each checked by `segment_path`."""
    rows = con.execute("SELECT file FROM segments WHERE tbl = ? ORDER BY seq", [table]).fetchall()
    return [segment_path(root, table, r[0], "the store's segments table") for r in rows]


def segment_path(root: Path, table: str, rel: object, where: object) -> Path:
    """`root / rel` when `rel` names a segment of `table` the way the writer names them; a StoreError otherwise.

    A manifest's file names end up inside SQL (`read_parquet([...])`) and name what a reader opens: whoever could
    write a manifest must not make a reader open a file outside the segments folder (an absolute path, `..`, a
    glob) nor break out of the quoted literal."""
    if not isinstance(rel, str) or (m := _SEGMENT.fullmatch(rel)) is None or m["table"] != table:
        raise StoreError(f"{where}: {str(rel)[:120]!r} is not a segment of {table} "
                         f"(<table>/day=YYYY-MM-DD/<12 digits>.parquet): refusing to read a forged or damaged "
                         "manifest")
    return root / rel


def view_sql(table: str, files: Sequence[Path], with_hot: bool) -> str:
    """The view that shows `table`: its hot rows (in the writer's file) and its segments. Every segment has the
    table's columns in the table's order (`Segments.append` makes them so), so the files are read by position:
    binding the view then costs a fifth of reading every footer by name (a migration that adds a column to an
    event table rewrites its segments or moves to `union_by_name`)."""
    parts = [f"SELECT * FROM {hot(table)}"] if with_hot else []  # nosec B608 # hot(): the hot table of a schema table
    if files:
        listed = ", ".join(lit(str(f)) for f in files)
        parts.append(f"SELECT * FROM read_parquet([{listed}])")  # nosec B608 # file names quoted by lit
    if not parts:  # a reader of a table with no segment yet: no rows, the table's columns
        cols = ", ".join(f'NULL::{c.type} AS "{c.name}"' for c in TABLES[table].columns)
        parts.append(f"SELECT {cols} WHERE false")
    return " UNION ALL BY NAME ".join(parts) if len(parts) > 1 else parts[0]


@functools.cache
def parquet_options(table: str) -> dict[str, Any]:
    """How a table's segments are encoded: zstd; 64-bit integers and times (ids, line numbers, offsets, event
    times: mostly increasing) delta-encoded, the rest with dictionaries. Against dictionaries everywhere, a third
    smaller and half the encoding time (figures: benchmarks/RESULTS.md, "Segment encoding")."""
    wide = [f.name for f in arrow_schema(table) if f.type == pa.int64() or pa.types.is_timestamp(f.type)]
    return {"compression": "zstd", "compression_level": ZSTD_LEVEL,
            "use_dictionary": [n for n in TABLES[table].names if n not in wide],
            "column_encoding": dict.fromkeys(wide, "DELTA_BINARY_PACKED")}


def day_parts(rows: pa.Table, column: str) -> list[tuple[str, pa.Table]]:
    """`rows` cut by the UTC day of `column` (one part, without a copy, when they share a day)."""
    days = pc.cast(rows.column(column), pa.date32())
    unique = pc.unique(days)
    if len(unique) == 1 and unique[0].is_valid:
        return [(unique[0].as_py().isoformat(), rows)]
    parts = []
    for day in unique:
        if not day.is_valid:
            parts.append((NO_DAY, rows.filter(pc.is_null(days))))
        else:
            parts.append((day.as_py().isoformat(), rows.filter(pc.equal(days, day))))
    return parts


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_listing(root: Path) -> tuple[dict[str, list[Path]], dt.datetime | None]:
    """The segments of each table as the writer last listed them, and when (no listing: none, None)."""
    try:
        raw = json.loads((root / LISTING).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {t: [] for t in SEGMENTED}, None
    where = root / LISTING
    tables = raw.get("tables", {}) if isinstance(raw, dict) else None
    if not isinstance(tables, dict) or not all(isinstance(tables.get(t, []), list) for t in SEGMENTED):
        raise StoreError(f"{where}: not a listing of segments (an object with 'tables': lists of files)")
    out = {t: [segment_path(root, t, f, where) for f in tables.get(t, [])] for t in SEGMENTED}
    try:
        when = dt.datetime.fromisoformat(str(raw.get("written_at")))
    except ValueError:
        when = None
    return out, when
