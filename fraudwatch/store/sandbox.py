"""SQL that a person or another process hands us, run so that it can only read the store.

`fraudwatch sql` and the watcher's control socket (`query`) run text someone typed. DuckDB itself can do far
more than read: `COPY ... TO` and `EXPORT DATABASE` write files, `read_text()` and `read_csv()` read any file the
process may (in the watcher, `/proc/self/environ` holds the alert channels' passwords), `ATTACH` opens other
databases, `SET`, `LOAD` and `INSTALL` change the engine or fetch extensions over the network. So a query runs in
a DuckDB instance that (docs/security.md, *The SQL sandbox*, names DuckDB's documentation for each setting):

- has external access off (`enable_external_access = false`): no file outside `allowed_directories` (the
  store's segments folder and the read copy's folder), no network, no spilling to disk (`temp_directory = ''`);
  extensions are neither installed nor loaded on demand (`autoinstall_known_extensions`,
  `autoload_known_extensions`), and Python variables are not scanned by name (`python_enable_replacements`);
- has its configuration locked (`lock_configuration`) before any query, so no statement can undo the above;
- runs exactly one statement that DuckDB's own parser calls a SELECT (or an EXPLAIN of one) with nothing but
  queries inside: a `WITH t AS (DELETE ... RETURNING *) SELECT ...` is a SELECT statement to the parser, so
  its parse tree (DuckDB's `json_serialize_sql`) is walked and any node that is not a query refuses it;
- is interrupted after a time limit.

The watcher's own instance cannot be locked down (it writes segments with COPY and keeps its DuckDB file), so
the watcher answers the socket's queries from a second, sandboxed instance in its process (`LiveQueries`): the
segments are read where they are, and the hot rows and the small tables the query names are handed over as
Arrow from one transaction of the writer, so a query sees every committed row at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.errors import StoreError, UsageError
from fraudwatch.jsontext import jsonable
from fraudwatch.sqltext import lit
from fraudwatch.store.layout import SEGMENTED, hot, listed_files, segments_root, view_sql
from fraudwatch.store.schema import TABLES

DEFAULT_SECONDS = 30.0  # `fraudwatch sql --timeout`; the watcher's is `[watch] query_seconds`
LIVE_MEMORY = "256MB"  # the watcher's query instance: beside the writer's `[watch] memory_limit`, not inside it
# Parse-tree nodes a read-only statement is made of (DuckDB's QueryNodeType); any other (INSERT_QUERY_NODE,
# UPDATE_QUERY_NODE, DELETE_QUERY_NODE, a future kind) refuses the statement.
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
READ_ONLY = "the store is read-only to SQL here: one query (SELECT) at a time"
# Tables the live instance can show: the small tables (copied when named) and the event tables (their segments
# and hot rows). Our own names, never the query's.
SMALL_TABLES = (*(t for t in TABLES if t not in SEGMENTED), "schema_version")
# `watcher_settings` (name, value): these settings of the writer's instance (the query's own instance has its own
# `current_setting`); a list, not `duckdb_settings()` whole, which may hold credentials (s3_secret_access_key).
WATCHER_SETTINGS = "watcher_settings"
SHOWN_SETTINGS = ("memory_limit", "checkpoint_threshold", "threads", "TimeZone")


def seal(con: duckdb.DuckDBPyConnection, allowed: Sequence[Path]) -> None:
    """Turn `con`'s instance into a sandbox that reads nothing outside `allowed` (folders), then lock it."""
    folders = ", ".join(lit(str(p.absolute()).rstrip("/") + "/") for p in allowed)
    for statement in ("SET autoinstall_known_extensions = false", "SET autoload_known_extensions = false",
                      "SET temp_directory = ''", f"SET allowed_directories = [{folders}]",
                      "SET enable_external_access = false", "SET python_enable_replacements = false",
                      "SET lock_configuration = true"):
        con.execute(statement)


def sandbox(allowed: Sequence[Path], memory_limit: str = "", threads: int = 0) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB, sealed (`seal`): it reads files inside `allowed` only."""
    config: dict[str, str | bool | int | float | list[str]] = {"autoinstall_known_extensions": False,
                                           "autoload_known_extensions": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    try:
        con.execute("SET TimeZone = 'UTC'")
        seal(con, allowed)
    except BaseException:
        con.close()
        raise
    return con


def check(con: duckdb.DuckDBPyConnection, sql: str) -> set[str]:
    """Refuse (UsageError) anything but one read-only query; returns the table names it reads (lower case)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"query: {_first_line(exc)}") from None
    if len(statements) != 1:
        raise UsageError(f"{READ_ONLY}; this text holds {len(statements)} statements")
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        sql = _explained(sql)
        inner = con.extract_statements(sql)
        kind = inner[0].type if len(inner) == 1 else kind
    if kind != duckdb.StatementType.SELECT:
        raise UsageError(f"{READ_ONLY}, not {kind.name}")
    (text,) = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0]
    tree = json.loads(text)
    if tree.get("error"):
        raise UsageError(f"{READ_ONLY}: {tree.get('error_message', 'DuckDB cannot check this statement')}")
    tables: set[str] = set()
    for node in _nodes(tree["statements"]):
        kind_name = node.get("type")
        if isinstance(kind_name, str) and kind_name.endswith("_NODE") and kind_name not in QUERY_NODES:
            writes = kind_name.removesuffix("_QUERY_NODE").removesuffix("_NODE")
            raise UsageError(f"{READ_ONLY}: this one would run {writes} inside it")
        if kind_name == "BASE_TABLE" and isinstance(node.get("table_name"), str):
            tables.add(node["table_name"].lower())
    return tables


def _nodes(value: object) -> Iterator[dict[str, Any]]:
    """Every JSON object in a parse tree (an explicit stack: a deep tree is no recursion limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _explained(sql: str) -> str:
    """The statement an EXPLAIN explains: what follows `EXPLAIN [ANALYZE] [(options)]`, found with DuckDB's own
    tokenizer (comments skipped, parentheses balanced)."""
    tokens = [(start, kind) for start, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    i = 1  # tokens[0] is EXPLAIN: the parser said so
    if i < len(tokens) and sql[tokens[i][0]:tokens[i][0] + 7].upper() == "ANALYZE":
        i += 1
    if i < len(tokens) and sql[tokens[i][0]] == "(":
        depth = 0
        while i < len(tokens):
            char = sql[tokens[i][0]]
            depth += (char == "(") - (char == ")") if tokens[i][1] == duckdb.token_type.operator else 0
            i += 1
            if depth == 0:
                break
    if i >= len(tokens):
        raise UsageError(f"{READ_ONLY}: EXPLAIN of nothing")
    return sql[tokens[i][0]:]


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any], seconds: float,
        max_rows: int | None = None) -> Result:
    """Run one checked query on a sealed connection, interrupted after `seconds`; at most `max_rows` rows."""
    check(con, sql)
    return _limited(con, sql, params, seconds, max_rows)


def _limited(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any], seconds: float,
             max_rows: int | None) -> Result:
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        con.interrupt()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        cur = con.execute(sql, list(params))
        columns = [d[0] for d in cur.description or []]
        rows = (cur.fetchall() if max_rows is None else cur.fetchmany(max_rows + 1)) if columns else []
    except duckdb.Error as exc:
        if expired.is_set():
            raise StoreError(f"query stopped after {seconds:g} s, its time limit") from None
        if isinstance(exc, duckdb.InterruptException):
            raise  # Ctrl-C: the CLI says "interrupted"
        raise StoreError(f"query failed: {_first_line(exc)}") from None
    finally:
        timer.cancel()
        timer.join()
    truncated = max_rows is not None and len(rows) > max_rows
    return Result(columns, rows[:max_rows] if truncated else rows, truncated)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class LiveQueries:
    """The watcher's answer to the socket's `query`: a sandboxed in-memory DuckDB beside the writer's.

    Per query, on a cursor of its own: the statement is checked; the writer (a cursor of its connection, in one
    transaction) hands over the segments listed and the hot rows of each event table the query names, and each
    small table it names in full, as Arrow; those become the cursor's temporary views; the query runs, limited
    in time. A table the query does not name costs nothing."""

    def __init__(self, store_path: Path, seconds: float) -> None:
        self.root = segments_root(store_path)
        self.seconds = seconds
        self.db = sandbox([self.root], memory_limit=LIVE_MEMORY, threads=1)
        self.lock = threading.Lock()  # DuckDB refuses two threads' calls on one connection: cursors are made here

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def answer(self, writer: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any],
               max_rows: int) -> dict[str, Any]:
        """The socket's reply: columns, JSON-ready rows, and whether rows were left out."""
        got = self.run(writer, sql, params, max_rows)
        return {"ok": True, "columns": got.columns, "rows": [[jsonable(v) for v in r] for r in got.rows],
                "truncated": got.truncated}

    def run(self, writer: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any], max_rows: int) -> Result:
        with self.lock:
            cur = self.db.cursor()
        try:
            named = check(cur, sql)
            small, events = self._take(writer, named)
            for table, rows in small.items():
                cur.register(table, rows)
            for table, (files, hot_rows) in events.items():
                cur.register(hot(table), hot_rows)
                cur.execute(f"CREATE TEMP VIEW {table} AS {view_sql(table, files, with_hot=True)}")
            return _limited(cur, sql, params, self.seconds, max_rows)
        finally:
            cur.close()

    def _take(self, writer: duckdb.DuckDBPyConnection,
              named: set[str]) -> tuple[dict[str, pa.Table], dict[str, tuple[list[Path], pa.Table]]]:
        """From one snapshot of the writer: the small tables named, and the event tables' segments and hot
        rows."""
        small: dict[str, pa.Table] = {}
        events: dict[str, tuple[list[Path], pa.Table]] = {}
        wanted = [t for t in (*SMALL_TABLES, *SEGMENTED, WATCHER_SETTINGS) if t in named]
        if not wanted:
            return small, events
        with self.lock:
            cur = writer.cursor()  # the writer's own thread uses `writer` meanwhile
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                for t in wanted:
                    if t == WATCHER_SETTINGS:
                        small[t] = cur.sql("SELECT name, value FROM duckdb_settings() WHERE list_contains(?, name) "
                                           "ORDER BY name", params=[list(SHOWN_SETTINGS)]).to_arrow_table()
                    elif t in SEGMENTED:
                        events[t] = (listed_files(cur, self.root, t), _arrow(cur, hot(t)))
                    else:
                        small[t] = _arrow(cur, t)
            finally:
                cur.execute("ROLLBACK")
        finally:
            cur.close()
        return small, events


def _arrow(cur: duckdb.DuckDBPyConnection, table: str) -> pa.Table:
    """Every row of one of our own tables (`table` is a schema name, never a query's)."""
    return cur.sql(f"SELECT * FROM {table}").to_arrow_table()  # nosec B608 # a schema name (SMALL_TABLES, hot())
