"""`fraudwatch status`'s facts: the watcher's live status from its socket, or, when it does not run, what the
store and the files say; and the store's own facts (size, today's events, the last alert) either way."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fraudwatch.config import Config
from fraudwatch.detect.runners.replay import TIME_COLUMN
from fraudwatch.errors import StoreError
from fraudwatch.store.db import open_read_only

EVENT_TIME = {t: c for t, c in TIME_COLUMN.items() if t != "rejects"}  # what rules read, less the rejects


def collect_status(cfg: Config) -> dict[str, Any]:
    """The live status from the watcher's socket, else from the store and the files."""
    from fraudwatch.watch.control import watcher_call
    from fraudwatch.watch.stats import read_status

    live = watcher_call(cfg.store_path, "status")
    if live and live.get("ok"):
        snap: dict[str, Any] = live["status"]
    else:
        snap = offline_status(cfg)
        snap["firewall"] = firewall_of(cfg)
        last = read_status(cfg.store_path)
        if last is not None:
            snap["last_run"] = {k: last.get(k) for k in ("pid", "started_at", "updated_at", "running")}
    snap.update(store_facts(cfg.store_path))
    return snap


def offline_status(cfg: Config) -> dict[str, Any]:
    """Per file of the config's sources, with no watcher running: its format, size, the offset the store has
    read to and what is left, and the parsed and rejected lines and last event time the store holds of it."""
    from fraudwatch.sources.reader import identify
    from fraudwatch.store import positions
    from fraudwatch.watch.files import files_of
    from fraudwatch.watch.preflight import missing
    from fraudwatch.watch.rulecounts import RuleCounts, from_store

    files: list[dict[str, Any]] = []
    gone: list[dict[str, Any]] = []
    try:
        con = open_read_only(cfg.store_path)
    except StoreError:
        con = None
    for src in cfg.sources:
        why = missing(src)
        if why is not None:
            gone.append({"path": str(src.path), "error": why})
            continue
        for path in files_of(src):
            try:
                size = path.stat().st_size
            except OSError:  # gone since it was listed
                continue
            entry: dict[str, Any] = {"path": str(path), "format": src.format, "size": size, "offset": 0,
                                     "lag_bytes": size, "lines_per_s": 0.0}
            if con is not None:
                ident = identify(path)
                pos = positions.find(con, path, ident) if ident else None
                if pos is not None:
                    entry["format"] = pos.format
                    entry["offset"] = pos.byte_offset
                    entry["lag_bytes"] = 0 if path.suffix == ".gz" else max(0, size - pos.byte_offset)
                    entry["lines"] = pos.line_no
            files.append(entry)
    rules: dict[str, Any] | None = None
    if con is not None:
        counts = RuleCounts()
        from_store(con, counts, dt.datetime.now(dt.UTC))
        rules = counts.summary()
        by_source: dict[str, dict[str, Any]] = {}
        for table, col in EVENT_TIME.items():
            for source, n, last in con.execute(
                    f"SELECT source, count(*), max({col}) FROM {table} GROUP BY 1").fetchall():  # nosec B608 # event tables and time columns of the schema
                by_source[source] = {"parsed": n, "last_event": last.isoformat() if last else None}
        rejected = dict(con.execute("SELECT source, count(*) FROM rejects GROUP BY 1").fetchall())
        con.close()
        for entry in files:
            entry.update(by_source.get(entry["path"], {"parsed": 0, "last_event": None}))
            entry["rejected"] = int(rejected.get(entry["path"], 0))
    return {"running": False, "store": str(cfg.store_path), "files": files, "missing": gone, "rules": rules}


def firewall_of(cfg: Config) -> dict[str, Any]:
    """The configured firewall backend, and whether it is the dry run (it changes no firewall)."""
    from fraudwatch.enforce.backends import BACKENDS, DRY_RUN

    backend = BACKENDS.get(cfg.firewall.backend, BACKENDS[DRY_RUN])
    return {"backend": backend.name, "dry_run": not backend.changes_firewall}


def store_facts(store_path: Path) -> dict[str, Any]:
    """The store's size, its event segments' and its snapshot's for readers, today's events, the last alert, and
    when the snapshot was published (when the store is one); `store_error` when it cannot be opened."""
    from fraudwatch.store.layout import segments_root
    from fraudwatch.store.replica import replica_dir

    size = store_path.stat().st_size if store_path.exists() else 0
    wal = store_path.with_name(store_path.name + ".wal")
    size += wal.stat().st_size if wal.exists() else 0
    folder = replica_dir(store_path)
    copy = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
    root = segments_root(store_path)
    segments = sum(p.stat().st_size for p in root.rglob("*.parquet")) if root.is_dir() else 0
    facts: dict[str, Any] = {"store_bytes": size, "segments_bytes": segments, "read_copy_bytes": copy}
    try:
        con = open_read_only(store_path)
    except StoreError as exc:
        facts["store_error"] = str(exc)
        return facts
    try:
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        events = 0
        for table, col in EVENT_TIME.items():
            events += int(con.execute(f"SELECT count(*) FROM {table} WHERE {col} >= ?", [today]).fetchall()[0][0])  # nosec B608 # event tables and time columns of the schema; the day is a parameter
        facts["events_today"] = events
        row = con.execute("SELECT id, rule, severity, key, last_seen, action FROM alerts "
                          "ORDER BY updated_at DESC, id DESC LIMIT 1").fetchall()
        facts["last_alert"] = (dict(zip(("id", "rule", "severity", "key", "last_seen", "action"), row[0],
                                        strict=True)) if row else None)
        if "replica_info" in {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}:
            facts["data_as_of"], facts["events_as_of"] = con.execute(
                "SELECT published_at, events_as_of FROM replica_info").fetchall()[0]
    finally:
        con.close()
    return facts
