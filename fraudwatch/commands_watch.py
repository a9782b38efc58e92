"""`fraudwatch watch` (the service) and `fraudwatch status` (how it is doing)."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from fraudwatch.commands import _cell, _config, _out
from fraudwatch.config import Config
from fraudwatch.jsontext import dumps


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    w = sub.add_parser("watch", parents=[common], help="run as a service: tail every source, detect, act",
                       description="Follow every [[sources]] entry (files, folders, globs; rotation by rename or "
                                   "copytruncate; CDR exports once complete), store each line exactly once, run "
                                   "the rules on what arrives and act on the alerts. SIGTERM stops it cleanly, "
                                   "SIGHUP reloads the config and rules.")
    w.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                   help="stop after SECONDS (trials and benchmarks)")
    w.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    st = sub.add_parser("status", parents=[common], help="per source: lag, rate, counts; the store; the last alert",
                        description="What the watcher is doing (live, from its socket) or, when it does not run, "
                                    "what the store says: per file its format, bytes not yet read, lines/s, "
                                    "parsed and rejected lines and the last event time; the store's size, "
                                    "today's events and the last alert.")
    st.add_argument("--json", action="store_true", help="print as JSON")


def cmd_watch(args: argparse.Namespace) -> int:
    from fraudwatch.watch.service import Watcher

    cfg = _config(args)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="fraudwatch: %(levelname)s %(message)s")
    if not cfg.sources:
        from fraudwatch.errors import UsageError

        raise UsageError("nothing to watch: the config has no [[sources]]")
    watcher = Watcher(cfg, getattr(args, "config", None) or cfg.path)
    return watcher.run(args.duration)


def collect_status(cfg: Config) -> dict[str, Any]:
    """The live status from the watcher's socket, else from the store and the files."""
    from fraudwatch.watch.control import watcher_call
    from fraudwatch.watch.stats import read_status

    live = watcher_call(cfg.store_path, "status")
    if live and live.get("ok"):
        snap: dict[str, Any] = live["status"]
    else:
        snap = _offline_status(cfg)
        last = read_status(cfg.store_path)
        if last is not None:
            snap["last_run"] = {k: last.get(k) for k in ("pid", "started_at", "updated_at", "running")}
    snap.update(_store_facts(cfg.store_path))
    return snap


def _offline_status(cfg: Config) -> dict[str, Any]:
    from fraudwatch.detect.runners.replay import TIME_COLUMN
    from fraudwatch.errors import StoreError
    from fraudwatch.sources.reader import identify
    from fraudwatch.store import positions
    from fraudwatch.store.db import open_read_only
    from fraudwatch.watch.files import files_of

    files: list[dict[str, Any]] = []
    try:
        con = open_read_only(cfg.store_path)
    except StoreError:
        con = None
    for src in cfg.sources:
        for path in files_of(src):
            size = path.stat().st_size
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
    if con is not None:
        by_source: dict[str, dict[str, Any]] = {}
        for table, col in TIME_COLUMN.items():
            for source, n, last in con.execute(
                    f"SELECT source, count(*), max({col}) FROM {table} GROUP BY 1").fetchall():
                by_source[source] = {"parsed": n, "last_event": last.isoformat() if last else None}
        rejected = dict(con.execute("SELECT source, count(*) FROM rejects GROUP BY 1").fetchall())
        con.close()
        for entry in files:
            entry.update(by_source.get(entry["path"], {"parsed": 0, "last_event": None}))
            entry["rejected"] = int(rejected.get(entry["path"], 0))
    return {"running": False, "store": str(cfg.store_path), "files": files}


def _store_facts(store_path: Path) -> dict[str, Any]:
    from fraudwatch.detect.runners.replay import TIME_COLUMN
    from fraudwatch.errors import StoreError
    from fraudwatch.store.db import open_read_only
    from fraudwatch.store.replica import replica_dir

    size = store_path.stat().st_size if store_path.exists() else 0
    wal = store_path.with_name(store_path.name + ".wal")
    size += wal.stat().st_size if wal.exists() else 0
    folder = replica_dir(store_path)
    copy = sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0
    facts: dict[str, Any] = {"store_bytes": size, "read_copy_bytes": copy}
    try:
        con = open_read_only(store_path)
    except StoreError as exc:
        facts["store_error"] = str(exc)
        return facts
    try:
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        events = 0
        for table, col in TIME_COLUMN.items():
            events += int(con.execute(f"SELECT count(*) FROM {table} WHERE {col} >= ?", [today]).fetchall()[0][0])
        facts["events_today"] = events
        row = con.execute("SELECT id, rule, severity, key, last_seen, action FROM alerts "
                          "ORDER BY updated_at DESC, id DESC LIMIT 1").fetchall()
        facts["last_alert"] = (dict(zip(("id", "rule", "severity", "key", "last_seen", "action"), row[0],
                                        strict=True)) if row else None)
        if "replica_info" in {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}:
            facts["data_as_of"] = con.execute("SELECT published_at FROM replica_info").fetchall()[0][0]
    finally:
        con.close()
    return facts


def cmd_status(args: argparse.Namespace) -> int:
    cfg = _config(args)
    snap = collect_status(cfg)
    if args.json:
        print(dumps(snap))
        return 0
    console = _out()
    state = (f"[green]running[/] (pid {snap.get('pid')}, since {snap.get('started_at')})" if snap.get("running")
             else "[yellow]not running[/]")
    console.print(f"watcher: {state}")
    table = Table()
    for col in ("file", "format", "lag", "lines/s", "parsed", "rejected", "last event"):
        table.add_column(col, overflow="fold")
    for f in snap.get("files", []):
        table.add_row(escape(f["path"]), escape(str(f.get("format") or "?")), _bytes(f.get("lag_bytes", 0)),
                      f"{f.get('lines_per_s', 0):,.0f}", f"{f.get('parsed', 0):,}", f"{f.get('rejected', 0):,}",
                      _cell(f.get("last_event")))
    console.print(table)
    console.print(f"store: {snap['store']} ({_bytes(snap.get('store_bytes', 0))}; read copy "
                  f"{_bytes(snap.get('read_copy_bytes', 0))}), events today: {snap.get('events_today', 0):,}")
    last = snap.get("last_alert")
    if last:
        console.print(f"last alert: #{last['id']} {last['severity']} {escape(last['rule'])} "
                      f"{escape(str(last['key']))} ({last['action']})")
    if snap.get("store_error"):
        console.print(f"[red]{escape(snap['store_error'])}[/]")
    return 0


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{n} B"
