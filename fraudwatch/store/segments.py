"""Event tables as immutable Parquet segments, partitioned by table and day, beside the DuckDB file.

The append-only tables (`SEGMENTED`) keep their rows in zstd Parquet files under `<store>.segments/`, laid out
hive-style as `<table>/day=YYYY-MM-DD/<seq>.parquet` (the day of the row's time column, UTC), so DuckDB, Spark,
Trino or pyarrow read them as they are. The DuckDB file keeps the mutable state and the manifest of segments
(`segments`), and exposes each event table under its usual name as a view over its segments and its *hot* table
(`hot_<table>`): small batches (the watcher's few lines a pass) go there first, and are moved into one segment
per day by `flush_hot` at most a second or so later — a segment a pass would leave thousands of files a day.

Exactly once: a segment is written and fsynced under a temporary name, renamed, fsynced into its folder, then
recorded in the manifest inside the caller's transaction, the one that moves the file positions it covers (or,
for a flush, deletes the hot rows it holds). A crash before the commit leaves a file that no manifest row names;
`Segments.recover`, run by the writer at open, deletes it. Merges of small segments are
`fraudwatch.store.compaction`'s; the folder layout, the encoding and the views are `fraudwatch.store.layout`'s.

Readers in other processes (while the writer holds the DuckDB file) read `_segments.json`, the manifest's copy
that the writer replaces atomically after each commit that changed it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fraudwatch.arrays import instant
from fraudwatch.store.layout import (
    LISTING,
    NO_DAY,
    SEGMENTED,
    day_parts,
    fsync_path,
    hot,
    make_view,
    parquet_options,
    segments_root,
)
from fraudwatch.store.schema import TABLES, arrow_schema

log = logging.getLogger("fraudwatch.store")

# A batch of at least this many rows is written as a segment straight away; smaller ones wait in the hot table.
DIRECT_ROWS = 20_000
FLUSH_ROWS = 200_000  # hot rows that are flushed whatever their age


_OPEN: dict[int, Segments] = {}  # id of a writer's connection -> its store's segments


class Segments:
    """The writer's side: appends, hot flushes, compaction, recovery and the views. One per open store."""

    @staticmethod
    def of(con: duckdb.DuckDBPyConnection) -> Segments:
        """The segments of the store whose writer connection `con` is."""
        got = _OPEN.get(id(con))
        if got is None or got.con is not con:
            raise LookupError("not the connection of an open store's writer")
        return got

    def close(self) -> None:
        _OPEN.pop(id(self.con), None)

    def __init__(self, con: duckdb.DuckDBPyConnection, store_path: Path) -> None:
        _OPEN[id(con)] = self
        self.con = con
        self.root = segments_root(store_path)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()  # one transaction that changes segments at a time (views are catalog)
        top, files = con.execute("SELECT coalesce(max(seq), 0), count(*) FROM segments").fetchall()[0]
        self.seq = int(top)
        self.files = int(files)  # segments listed (every commit that adds one rebinds its table's view)
        self.hot_rows = {t: int(con.execute(f"SELECT count(*) FROM {hot(t)}").fetchall()[0][0]) for t in SEGMENTED}  # nosec B608 # hot(): the hot table of a schema table
        self.hot_since: float | None = time.monotonic() if any(self.hot_rows.values()) else None
        self.feed: dict[str, list[pa.Table]] = {}  # subscribed table -> rows committed, not yet taken
        self._pending: list[tuple[str, pa.Table]] = []  # rows of the open transaction, for the feed
        self._pending_hot: dict[str, int] = {}
        self._written: list[Path] = []  # segment files of the open transaction
        self._dirty: set[str] = set()  # tables whose segment list the open transaction changed
        self._txn_con: duckdb.DuckDBPyConnection | None = None  # the open transaction's connection

    # ------------------------------------------------------------------ transactions

    @contextlib.contextmanager
    def transaction(self, con: duckdb.DuckDBPyConnection | None = None) -> Iterator[None]:
        """BEGIN ... COMMIT on `con` (the writer's connection by default), with the segment files and views of
        what was appended inside; on an error, ROLLBACK and the files written are deleted."""
        con = con or self.con
        with self.lock:
            con.execute("BEGIN")
            self._txn_con = con
            try:
                yield
                for table in sorted(self._dirty):
                    make_view(con, self.root, table)
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                for path in self._written:
                    path.unlink(missing_ok=True)
                self._forget_open()
                raise
            finally:
                self._txn_con = None
            changed = bool(self._dirty)
            for table, rows in self._pending:
                self.feed.setdefault(table, []).append(rows)
            for table, n in self._pending_hot.items():
                self.hot_rows[table] += n
                if n > 0 and self.hot_since is None:
                    self.hot_since = time.monotonic()
            self._forget_open()
            if changed:
                try:
                    self.write_listing(con)
                except OSError as exc:  # committed all the same; readers elsewhere see the previous listing
                    log.error("cannot write %s: %s", self.root / LISTING, exc)

    def _forget_open(self) -> None:
        """The open transaction's files, rows and views, once it committed or rolled back."""
        self._pending.clear()
        self._pending_hot.clear()
        self._written.clear()
        self._dirty.clear()

    def append(self, table: str, rows: pa.Table) -> None:
        """Add `rows` (the table's columns, in any order) inside `transaction()`: as segments when the batch is big
        enough, else into the hot table."""
        con = self._txn_con
        assert con is not None, "Segments.append outside Segments.transaction"
        if not rows.num_rows:
            return
        rows = rows.select(list(TABLES[table].names)).cast(arrow_schema(table))
        if rows.num_rows >= DIRECT_ROWS:
            self._write(con, table, rows)
        else:
            con.register("fw_hot_rows", rows)
            try:
                con.execute(f"INSERT INTO {hot(table)} SELECT * FROM fw_hot_rows")  # nosec B608 # hot(): the hot table of a schema table
            finally:
                con.unregister("fw_hot_rows")
            self._pending_hot[table] = self._pending_hot.get(table, 0) + rows.num_rows
        if table in self.feed:
            self._pending.append((table, rows))

    def subscribe(self, table: str) -> None:
        """Keep the rows committed to `table` from now on, for `take` (live detection reads them there)."""
        self.feed.setdefault(table, [])

    def take(self, table: str) -> pa.Table | None:
        """The rows committed to a subscribed table since the last call, in commit order (None: none)."""
        got = self.feed.get(table)
        if not got:
            return None
        self.feed[table] = []
        return pa.concat_tables(got) if len(got) > 1 else got[0]

    # ------------------------------------------------------------------ for the merges (fraudwatch.store.compaction)

    def new_seq(self) -> int:
        with self.lock:
            self.seq += 1
            return self.seq

    def adopt(self, path: Path, table: str) -> None:
        """Inside `transaction()`: `path`, written for `table`, is deleted if the transaction fails, and the
        table's view is made again on commit."""
        self._written.append(path)
        self._dirty.add(table)

    # ------------------------------------------------------------------ writing segments

    def _write(self, con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> list[Path]:
        col = SEGMENTED[table]
        out = []
        for day, part in day_parts(rows, col):
            self.seq += 1
            rel = Path(table) / f"day={day}" / f"{self.seq:012d}.parquet"
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            pq.write_table(part, tmp, **parquet_options(table))
            self.files += 1
            fsync_path(tmp)
            os.replace(tmp, path)
            fsync_path(path.parent)
            self._written.append(path)
            self._record(con, self.seq, table, day, rel, part)
            out.append(path)
        self._dirty.add(table)
        return out

    def _record(self, con: duckdb.DuckDBPyConnection, seq: int, table: str, day: str, rel: Path,
                rows: pa.Table) -> None:
        col = SEGMENTED[table]
        times = rows.column(col)
        max_id = pc.max(rows.column("id")).as_py() if "id" in rows.column_names else None
        con.execute("INSERT INTO segments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [seq, table, None if day == NO_DAY else day, str(rel), rows.num_rows,
                     (self.root / rel).stat().st_size, max_id, instant(pc.min(times)), instant(pc.max(times)),
                     dt.datetime.now(dt.UTC)])

    def flush_hot(self, max_age: float | None = None) -> int:
        """Move the hot rows into segments (one per table and day) when they are older than `max_age` seconds or
        many (always, with None); returns the rows moved."""
        if self.hot_since is None:
            return 0
        total = sum(self.hot_rows.values())
        if max_age is not None and total < FLUSH_ROWS and time.monotonic() - self.hot_since < max_age:
            return 0
        con = self.con
        moved = 0
        with self.transaction():
            for table, n in self.hot_rows.items():
                if not n:
                    continue
                rows = con.sql(f"SELECT * FROM {hot(table)}").to_arrow_table()  # nosec B608 # hot(): the hot table of a schema table
                if rows.num_rows:
                    self._write(con, table, rows.cast(arrow_schema(table)))
                con.execute(f"DELETE FROM {hot(table)}")  # nosec B608 # hot(): the hot table of a schema table
                moved += rows.num_rows
                self._pending_hot[table] = -n
        self.hot_since = None
        return moved

    # ------------------------------------------------------------------ open: recovery and views

    def recover(self) -> None:
        """At open, by the only writer: delete files no manifest row names (a crash between a segment's rename
        and its commit, or a merge not swapped in), forget manifest rows whose file is gone (deleted by hand:
        the views would fail on every query), refresh the views and the listing."""
        con = self.con
        listed = {r[0] for r in con.execute("SELECT file FROM segments").fetchall()}
        trash = {r[0] for r in con.execute("SELECT file FROM segment_trash").fetchall()}
        for path in self.root.rglob("*"):
            ours = path.name.endswith((".parquet", ".parquet.tmp")) or path.name.startswith(f".{LISTING}.")
            if not ours or not path.is_file():  # only what this module writes is ever deleted
                continue
            rel = str(path.relative_to(self.root))
            if rel not in listed and rel not in trash:
                log.warning("removing %s: a segment no commit recorded (an interrupted write)", path)
                path.unlink()
        missing = [f for f in listed if not (self.root / f).exists()]
        with self.transaction():
            if missing:
                log.error("%d segment(s) listed in the store are gone from %s (e.g. %s); their rows are dropped "
                          "from the store's views", len(missing), self.root, missing[0])
                con.execute("DELETE FROM segments WHERE list_contains(?, file)", [missing])
            self._dirty.update(SEGMENTED)

    def write_listing(self, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """`_segments.json`: the manifest for readers in other processes, replaced atomically."""
        con = con or self.con
        tables: dict[str, list[str]] = {t: [] for t in SEGMENTED}
        for table, rel in con.execute("SELECT tbl, file FROM segments ORDER BY seq").fetchall():
            tables.setdefault(table, []).append(rel)
        body = {"written_at": dt.datetime.now(dt.UTC).isoformat(), "tables": tables}
        tmp = self.root / f".{LISTING}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, self.root / LISTING)


def next_id(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """1 + the highest row id of `table`, from its hot rows and the manifest (no segment is read)."""
    (top,) = con.execute(
        f"SELECT greatest((SELECT coalesce(max(id), 0) FROM {hot(table)}), "  # nosec B608 # hot(): the hot table of a schema table
        "(SELECT coalesce(max(max_id), 0) FROM segments WHERE tbl = ?))", [table]).fetchall()[0]
    return int(top) + 1
