"""Opening the DuckDB file: the writer (migrates on open) and read-only connections.

DuckDB allows one process to hold a database file for writing, and then no other process can open it at all.
The writer is therefore opened only for as long as a command writes, and read-only commands open the file
read-only — or, while the watcher holds it, read the event segments directly and the small tables from the
snapshot the watcher publishes beside it (`fraudwatch.store.replica`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from fraudwatch.errors import FraudwatchError, StoreError
from fraudwatch.store.compaction import empty_trash
from fraudwatch.store.evolve import conform_segments
from fraudwatch.store.failures import StoreLocked, classify
from fraudwatch.store.files import make_private, private_umask
from fraudwatch.store.layout import SEGMENTED, make_view, segments_root
from fraudwatch.store.schema import MIGRATIONS, SCHEMA_VERSION
from fraudwatch.store.segments import Segments

__all__ = ["Store", "StoreLocked", "check_store_file", "open_read_only"]


DUCKDB_MAGIC = b"DUCK"  # a DuckDB database file has these bytes at offset 8, after its header's checksum
_MAGIC_AT = 8


def missing_store(path: Path) -> StoreError:
    """The error for a store that is not there: reading commands never create one (a misspelt --db, or a
    command run outside the folder of its config, would otherwise leave an empty store behind)."""
    return StoreError(f"{path}: no store here (run `fraudwatch ingest` to create one, or give --config or --db)")


def not_a_store(path: Path, why: str) -> StoreError:
    return StoreError(f"{path} is not a fraudwatch store ({why})")


def check_store_file(path: Path) -> None:
    """Raise a one-line error unless `path` is there and is a DuckDB database file: what every command that needs
    an existing store checks before DuckDB (whose own message for a CSV file is 'Cannot launch in-memory database
    in read-only mode!') sees it."""
    if not path.exists():
        raise missing_store(path)
    if path.is_dir():
        raise not_a_store(path, "it is a folder; give the store's file")
    try:
        with path.open("rb") as f:
            head = f.read(_MAGIC_AT + len(DUCKDB_MAGIC))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the store: {exc.strerror or exc}") from None
    if not head:
        raise not_a_store(path, "an empty file")
    if head[_MAGIC_AT:] != DUCKDB_MAGIC:
        raise not_a_store(path, "not a DuckDB database file")


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        known = classify(exc, path)  # corrupt, locked (only then the read copy serves), or disk full
        if known is not None:
            raise known from None
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StoreError(f"{path}: cannot open the store: {first}") from None
    con.execute("SET TimeZone = 'UTC'")
    return con


def open_read_only(path: Path, sandboxed: bool = False) -> duckdb.DuckDBPyConnection:
    """A read-only connection to an existing store: what every reading command opens, so none of them creates a
    store, and a missing store or a file that is not one is a one-line error naming the path. `sandboxed`: for
    SQL a person types (`fraudwatch sql`): the instance reads no file but the store's segments (or, while the
    watcher holds the store, the segments and the read copy), and its configuration is locked
    (`fraudwatch.store.sandbox`)."""
    check_store_file(path)
    try:
        con = _connect(path, read_only=True)
    except StoreLocked:
        from fraudwatch.store.replica import open_replica

        return open_replica(path, sandboxed)
    try:
        version = _version(con)
        if version == 0:
            raise not_a_store(path, "a DuckDB database without fraudwatch's tables")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{path}: schema version {version}, this fraudwatch needs {SCHEMA_VERSION}; "
                             "open it once for writing (e.g. `fraudwatch ingest`) to migrate")
        if sandboxed:
            from fraudwatch.store.sandbox import seal

            seal(con, [segments_root(path)])
        _segment_views(con, path)
    except BaseException:
        con.close()
        raise
    return con


def _segment_views(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """The event tables as temporary views over the segments where they are now (the stored views name the
    folder the writer last saw; a store copied elsewhere still reads)."""
    for table in SEGMENTED:
        make_view(con, segments_root(path), table, "TEMP")


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    got = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database()"
                      ).fetchall()
    return bool(got and got[0][0])


def _version(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()[0]
    if not row or not row[0]:
        return 0
    got = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    return int(got[0]) if got and got[0] is not None else 0


class Store:
    """The single writer: opens (creating, with `create`, and migrating) the store file, and closes it on exit.
    Commands that work on what is stored (`detect`, `bans list`) pass `create=False`: a missing store is then an
    error naming the path, not a new empty one."""

    def __init__(self, path: Path, create: bool = True) -> None:
        self.path = path
        if path.exists() or not create:
            check_store_file(path)
        private_umask()  # the store, its log, segments and read copy: 0640 / 0750 whatever the umask
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con = _connect(path, read_only=False)
        make_private(path, path.with_name(path.name + ".wal"), segments_root(path))
        try:
            if _version(self.con) == 0 and _has_tables(self.con):  # another program's database: leave it be
                raise not_a_store(path, "a DuckDB database without fraudwatch's tables")
            self.migrate()
            self.segments = Segments(self.con, path)
            conform_segments(self.segments)  # a column a migration added to an event table, in older segments
            self.segments.recover()
            empty_trash(self.segments)  # what merges replaced, once readers are done with it
            self.segments.flush_hot()  # rows left hot by a crash, or an older store's tables
        except Exception as exc:
            self.con.close()
            known = None if isinstance(exc, FraudwatchError) else classify(exc, path)
            if known is not None:
                raise known from exc
            raise

    def migrate(self) -> None:
        con = self.con
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, applied_at TIMESTAMPTZ)")
        current = _version(con)
        if current > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: schema version {current} is newer than this fraudwatch "
                             f"({SCHEMA_VERSION}); upgrade fraudwatch")
        applied = {int(r[0]) for r in con.execute("SELECT version FROM schema_version").fetchall()}
        for version in sorted(v for v in MIGRATIONS if v not in applied):  # also one that landed out of order
            con.execute("BEGIN")
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [version, dt.datetime.now(dt.UTC)])
            con.execute("COMMIT")

    def close(self) -> None:
        try:
            self.segments.flush_hot()
        finally:
            self.segments.close()
            self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *info: object) -> None:
        exc = info[1] if len(info) > 1 and isinstance(info[1], BaseException) else None
        try:
            self.close()
        except Exception as closing:
            known = classify(closing, self.path)
            if known is not None:
                raise known from closing
            raise
        if exc is not None and not isinstance(exc, FraudwatchError):
            known = classify(exc, self.path)  # a write that ran out of space, a block that failed its checksum
            if known is not None:
                raise known from exc
