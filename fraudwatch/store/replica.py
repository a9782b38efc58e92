"""The small tables' snapshot: how other processes read the store while the watcher holds it.

DuckDB lets one process open a database file for writing, and while it does no other process can open the file
at all, not even read-only. The event tables are Parquet segments that any process reads directly
(`fraudwatch.store.segments`, listed in `_segments.json` after every commit); the rest (alerts, positions,
customers, bans, the outbox, ...) lives in the DuckDB file, so the watcher publishes a snapshot of those small
tables beside it (`<store>.read/`) every few seconds, from one consistent transaction:

- every table that is not an event table, in full, as one Parquet file each;
- `manifest.json`, replaced atomically (write, fsync, rename), naming the files of each table.

A reader (`open_read_only` when the store is locked) opens an in-memory DuckDB with one view per table: the
snapshot's files for the small tables, the listed segments for the event tables. Files a newer manifest no longer
names are deleted only after `GRACE_SECONDS`, so a reader that opened an older manifest keeps working meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from fraudwatch.errors import StoreError
from fraudwatch.sqltext import lit
from fraudwatch.store.layout import SEGMENTED, read_listing, segments_root, view_sql
from fraudwatch.store.schema import TABLES

MANIFEST = "manifest.json"
GRACE_SECONDS = 600.0


def replica_dir(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".read")


@dataclass
class Manifest:
    published_at: str = ""
    schema_version: int = 0
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> files (relative to the folder)
    trash: dict[str, float] = field(default_factory=dict)  # file -> when it left the manifest (epoch s)
    seq: int = 0

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        try:
            raw = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(raw, dict):
            return None
        got = cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        shapes = ((got.published_at, str), (got.tables, dict), (got.trash, dict), (got.seq, int))
        if not all(isinstance(value, kind) for value, kind in shapes):
            return None
        # the publisher deletes what `trash` names once its time is up: only copies it made, inside the folder
        got.trash = {f: when for f, when in got.trash.items()
                     if _snapshot_name(f.partition(".")[0], f) and isinstance(when, int | float)}
        return got

    def save(self, folder: Path) -> None:
        tmp = folder / f".{MANIFEST}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(self.__dict__, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / MANIFEST)


class Publisher:
    """Publishes the read copy from a connection of the writer's process (use a cursor of its own)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, store_path: Path) -> None:
        self.con = con
        self.folder = replica_dir(store_path)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest.load(self.folder) or Manifest()
        self.last_seconds = 0.0

    def _copy(self, select: str, params: list[Any], name: str) -> str:
        tmp = self.folder / f".{name}.tmp"
        self.con.execute(f"COPY ({select}) TO {lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd)", params)
        os.replace(tmp, self.folder / name)
        return name

    def publish(self) -> Manifest:
        """One publication from one snapshot; returns the new manifest."""
        started = time.monotonic()
        m = self.manifest
        con = self.con
        con.execute("BEGIN TRANSACTION")  # one snapshot for every table
        try:
            tables = [r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                "AND table_type = 'BASE TABLE' AND NOT starts_with(table_name, 'hot_') ORDER BY 1").fetchall()]
            m.seq += 1
            seq = m.seq
            old_files = {f for files in m.tables.values() for f in files}
            for t in tables:
                m.tables[t] = [self._copy(f"SELECT * FROM {t}", [], f"{t}.{seq}.parquet")]  # nosec B608 # t: a base table of our own store (information_schema above)
            (version,) = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchall()[0]
        finally:
            con.execute("ROLLBACK")
        for t in [t for t in m.tables if t not in tables]:
            del m.tables[t]
        m.schema_version = int(version)
        m.published_at = dt.datetime.now(dt.UTC).isoformat()
        now = time.time()
        for f in old_files - {f for files in m.tables.values() for f in files}:
            m.trash[f] = now
        m.save(self.folder)
        self._empty_trash(now)
        self.last_seconds = time.monotonic() - started
        return m

    def _empty_trash(self, now: float) -> None:
        m = self.manifest
        for f, when in list(m.trash.items()):
            if now - when >= GRACE_SECONDS:
                (self.folder / f).unlink(missing_ok=True)
                del m.trash[f]
        live = {f for files in m.tables.values() for f in files} | set(m.trash) | {MANIFEST}
        for p in self.folder.iterdir():  # leftovers of a crash between a copy and its manifest
            if p.name not in live and p.name.endswith(".parquet") and now - p.stat().st_mtime > GRACE_SECONDS:
                p.unlink(missing_ok=True)


def open_replica(store_path: Path, sandboxed: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with one view per table: the event tables over their listed segments, the small
    tables over the latest snapshot (absent until the watcher's first publication). `sandboxed`: for SQL a person
    types (`fraudwatch.store.sandbox`): nothing but these two folders can be read, nothing written.

    Whoever can write the snapshot's folder must not be able to run SQL as the reader (often root): a table is
    read only under a name of our own schema, from files named as `Publisher` names them, inside the folder."""
    folder = replica_dir(store_path)
    m = Manifest.load(folder)
    root = segments_root(store_path)
    segments, listed_at = read_listing(root)
    if m is None and listed_at is None:
        raise StoreError(f"{store_path}: the store is in use by the watcher and nothing is published for readers "
                         f"yet (it appears in {folder} within [watch] publish_seconds of the start)")
    snapshot = _snapshot_files(m, folder) if m is not None else {}
    if sandboxed:
        from fraudwatch.store.sandbox import sandbox

        con = sandbox([folder, root])
    else:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
    try:
        for t, files in snapshot.items():
            listed = ", ".join(lit(str(f)) for f in files)
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet([{listed}])")  # nosec B608 # t: a schema name (SNAPSHOT_TABLES); files checked by _snapshot_files, quoted by lit
        for t, paths in segments.items():
            con.execute(f"CREATE VIEW {t} AS {view_sql(t, paths, with_hot=False)}")
        con.execute("CREATE TABLE replica_info (published_at TIMESTAMPTZ, events_as_of TIMESTAMPTZ)")
        con.execute("INSERT INTO replica_info VALUES (?, ?)", [_when(m.published_at) if m else None, listed_at])
    except BaseException:
        con.close()
        raise
    return con


# The tables a snapshot may hold: the store's tables that are not event tables (those are read from their
# segments), and the schema's version. Our own names: never a name read from the manifest.
SNAPSHOT_TABLES = (*(t for t in TABLES if t not in SEGMENTED), "schema_version")


def _snapshot_files(m: Manifest, folder: Path) -> dict[str, list[Path]]:
    """The snapshot's files per table, each checked: `<table>.<seq>.parquet` inside the folder. A table the
    manifest names that this fraudwatch does not know (a newer watcher's) is left out."""
    where = folder / MANIFEST
    out: dict[str, list[Path]] = {}
    for t in SNAPSHOT_TABLES:
        files = m.tables.get(t)
        if files is None:
            continue
        if not isinstance(files, list) or not files or not all(_snapshot_name(t, f) for f in files):
            raise StoreError(f"{where}: the files of table {t} are not {t}.<number>.parquet "
                             f"({str(files)[:120]!r}): refusing to read a forged or damaged manifest")
        out[t] = [folder / f for f in files]
    return out


def _snapshot_name(table: str, name: object) -> bool:
    """Whether `name` is a file name `Publisher` gives a copy of `table` (no path: a name inside the folder)."""
    if not (table.isascii() and table.isidentifier()) or not isinstance(name, str):
        return False
    if not name.startswith(f"{table}.") or not name.endswith(".parquet"):
        return False
    seq = name[len(table) + 1:-len(".parquet")]
    return seq.isascii() and seq.isdigit()


def _when(text: object) -> dt.datetime | None:
    """A manifest's time, or None when it is not one."""
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def published_at(store_path: Path) -> dt.datetime | None:
    m = Manifest.load(replica_dir(store_path))
    return _when(m.published_at) if m else None
