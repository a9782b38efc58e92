"""Starting live detection where the last run left it.

A restart (an upgrade, a reboot, a crash) must not blind the rules nor split an ongoing attack in two. So before
the watcher reads anything new it

1. seeds the alert book with the alerts still open — those whose last event is within their rule's cooldown of
   the newest stored event — so an attack that goes on across the restart updates its alert instead of opening a
   second one; and
2. feeds the engine the recent past (the longest rule window, capped by `horizon` and by `max_rows` per table),
   so sliding windows that span the restart are whole. The matches this produces were acted on by the run that
   stored those events, so they are dropped here.

3. teaches the new-term rules (new address, new country) the terms each key was seen with in the store's history
   (`learn_terms`: up to their `forget`, the newest `LEARN_ROWS` rows per table), without scoring, so a restart
   does not blind them again for their `learn` period.

Hour-of-week baselines (seasonal rules) are not rebuilt this way: those rules learn again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import duckdb
import polars as pl

from fraudwatch.detect.decide import Alert
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.detect.runners.history import learn_terms

__all__ = ["learn_terms", "replay_recent", "seed_open_alerts"]
from fraudwatch.detect.runners.replay import ORDER, TIME_COLUMN, data_range
from fraudwatch.detect.types.base import RuleType

log = logging.getLogger("fraudwatch.watch")
WARMUP_BATCH = 100_000  # rows of the recent past fed to the rules at a time

ALERT_FIELDS = ("id", "rule", "severity", "key_type", "key", "first_seen", "last_seen", "detected_at", "count",
                "value", "action", "trusted", "report_only", "description", "evidence", "updates")


def seed_open_alerts(con: duckdb.DuckDBPyConnection, book: Any) -> int:
    """Put the store's still-open alerts into `book.open`; returns how many."""
    newest = data_range(con, TIME_COLUMN)[1]
    if newest is None:
        return 0
    seeded = 0
    rows = con.execute(f"SELECT {', '.join(ALERT_FIELDS)} FROM alerts ORDER BY id").fetchall()  # nosec B608 # ALERT_FIELDS: a constant of this module
    for row in rows:
        rec = dict(zip(ALERT_FIELDS, row, strict=True))
        rule = book.rules.get(rec["rule"])
        if rule is None:
            continue
        cooldown = dt.timedelta(seconds=float(rule.common.cooldown))
        if newest - rec["last_seen"] > cooldown:
            continue
        evidence = rec["evidence"]
        rec["evidence"] = json.loads(evidence) if isinstance(evidence, str) and evidence else {}
        rec["count"], rec["updates"] = int(rec["count"]), int(rec["updates"] or 0)
        rec["value"] = float(rec["value"] or 0)
        book.open[(rec["rule"], rec["key"])] = Alert(**rec)
        seeded += 1
    return seeded


def replay_recent(con: duckdb.DuckDBPyConnection, engine: Engine, rules: list[RuleType], horizon: dt.timedelta,
                  max_rows: int) -> int:
    """Feed `engine` each table's events of the last `horizon` before the newest stored (at most the newest
    `max_rows`), before the watcher reads anything new; matches dropped.

    The rows are found by their time alone first (one column), then read in order and fed in batches of
    `WARMUP_BATCH` (the rules give the same state for any cut of the stream): reading them as one frame, sorted
    twice, cost the watcher 650 MiB at its start on a store of a million recent events, for a 40 MiB frame
    (figures: benchmarks/RESULTS.md, "Watcher warm-up in batches")."""
    span = max((float(r.common.window) for r in rules), default=0.0)
    horizon = min(horizon, dt.timedelta(seconds=span))
    fed = 0
    for table, col in TIME_COLUMN.items():
        if not engine.detectors.get(table):
            continue
        (newest,) = con.execute(f"SELECT max({col}) FROM {table}").fetchall()[0]  # nosec B608 # event tables and time columns of the schema
        if newest is None:
            continue
        # the oldest time among the newest `max_rows` rows of the horizon, and how many rows are that recent (more
        # than `max_rows` when several share that time: the oldest of those in ORDER's order are skipped)
        (since,) = con.execute(f"SELECT min({col}) FROM (SELECT {col} FROM {table} WHERE {col} > ? "  # nosec B608 # event tables and time columns of the schema; values are parameters
                               f"ORDER BY {col} DESC LIMIT ?)", [newest - horizon, max_rows]).fetchall()[0]
        if since is None:
            continue
        (recent,) = con.execute(f"SELECT count(*) FROM {table} WHERE {col} >= ?", [since]).fetchall()[0]  # nosec B608 # event tables and time columns of the schema; values are parameters
        cols = ", ".join(f'"{c}"' for c in engine.columns(table))
        reader = con.sql(f"SELECT {cols} FROM {table} WHERE {col} >= ? ORDER BY {ORDER[table]} OFFSET ?",  # nosec B608 # event tables, columns and ORDER of the schema; values are parameters
                         params=[since, max(0, int(recent) - max_rows)]).to_arrow_reader(WARMUP_BATCH)
        for batch in reader:
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            if frame.height:
                engine.process(table, frame)
                fed += frame.height
    return fed
