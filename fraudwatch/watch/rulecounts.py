"""Per-rule counters for `fraudwatch status`, like a fail2ban jail's: matches, alerts and bans in the last hour and
the last day.

- **matches**: events the rule counted toward its alerts (the growth of their event counts, `alerts.count`), so
  an ongoing attack keeps counting while its alert stays one;
- **alerts**: alerts the rule opened;
- **bans**: bans made for the rule's alerts (new bans, early ones included; an extension is not a new ban). With
  the dry-run backend these are the bans it would have made.

Kept by the watcher in one-minute buckets per rule (at most 1,440 a rule), so a flood costs a dict lookup and an
addition per reported alert, and the status sums at most a day of buckets. At start they are seeded from the
store, so a restart does not zero them: the bans created in the last day, and the alerts updated in it with their
event counts (the store keeps no time of each match, so these count at the alert's last update).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from typing import Any

import duckdb

BUCKET = 60  # seconds a bucket covers
DAY = 86400
HOUR = 3600
KINDS = ("matches", "alerts", "bans")
MANUAL = "(manual)"  # `bans add`: no rule


class RuleCounts:
    """Counters per rule in time buckets; `add` from the acting thread, `summary` from any (under `lock`)."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self.buckets: dict[str, deque[list[int]]] = {}  # rule -> [bucket start, matches, alerts, bans], in order
        self.lock = threading.Lock()

    def add(self, rule: str, matches: int = 0, alerts: int = 0, bans: int = 0, at: float | None = None) -> None:
        start = int((self.clock() if at is None else at) // BUCKET * BUCKET)
        with self.lock:
            rows = self.buckets.get(rule)
            if rows is None:
                rows = self.buckets[rule] = deque()
            if rows and rows[-1][0] == start:
                row = rows[-1]
            elif rows and rows[-1][0] > start:  # an older time (seeding): its own bucket, kept in order
                found = [r for r in rows if r[0] == start]
                row = found[0] if found else _insert(rows, start)
            else:
                row = [start, 0, 0, 0]
                rows.append(row)
            row[1] += matches
            row[2] += alerts
            row[3] += bans
            cut = start - DAY
            while rows and rows[0][0] < cut:
                rows.popleft()

    def summary(self) -> dict[str, dict[str, dict[str, int]]]:
        """rule -> {"hour": {matches, alerts, bans}, "day": {...}}, for the rules with a count in the last day."""
        now = self.clock()
        out: dict[str, dict[str, dict[str, int]]] = {}
        with self.lock:
            for rule, rows in self.buckets.items():
                hour, day = [0, 0, 0], [0, 0, 0]
                for start, *counts in rows:
                    age = now - start - BUCKET  # a bucket counts while any of it is inside the span
                    if age >= DAY:
                        continue
                    for i, n in enumerate(counts):
                        day[i] += n
                        if age < HOUR:
                            hour[i] += n
                if any(day):
                    out[rule] = {"hour": dict(zip(KINDS, hour, strict=True)),
                                 "day": dict(zip(KINDS, day, strict=True))}
        return out


def _insert(rows: deque[list[int]], start: int) -> list[int]:
    row = [start, 0, 0, 0]
    i = next((i for i, r in enumerate(rows) if r[0] > start), len(rows))
    rows.insert(i, row)
    return row


def from_store(con: duckdb.DuckDBPyConnection, counts: RuleCounts, now: dt.datetime) -> None:
    """Seed `counts` with the last day of the store: the watcher's own alerts updated in it (by when they were
    detected), their events at their last update (what the store can say of matches), and bans by creation
    time."""
    since = now - dt.timedelta(seconds=DAY)
    rows: list[tuple[float, str, int, int, int]] = []  # (time, rule, matches, alerts, bans)
    for rule, detected, updated, events in con.execute(
            "SELECT rule, epoch(detected_at), epoch(updated_at), count FROM alerts "
            "WHERE origin = 'live' AND updated_at >= ?", [since]).fetchall():
        rows.append((float(updated), str(rule), int(events or 0), 0, 0))
        # when it opened: its detection, when that is wall time (live data); else (old or simulated logs, whose
        # event time is long past) its last update, the one wall time the store has of it
        opened = detected if detected is not None and since.timestamp() <= detected <= updated else updated
        rows.append((float(opened), str(rule), 0, 1, 0))
    for rule, at, n in con.execute(
            "SELECT coalesce(rule, ?), epoch(date_trunc('minute', created_at)), count(*) FROM bans "
            "WHERE created_at >= ? GROUP BY ALL", [MANUAL, since]).fetchall():
        rows.append((float(at), str(rule), 0, 0, int(n)))
    for at, rule, matches, alerts, bans in sorted(rows):  # in time order: each an append or an addition
        counts.add(rule, matches, alerts, bans, at=at)
