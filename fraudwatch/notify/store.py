"""The notification tables (see store/schema.py): outbox rows, realert state, open digests and silences.

Inserts are column-wise (`SELECT unnest(?), unnest(?) ...`): one statement for any number of rows. Each writer
owns its rows — the notifier inserts outbox rows and writes state and digests; the dispatcher only updates the
status columns of outbox rows — so DuckDB's optimistic concurrency never sees two threads change one row;
`retrying` still retries a transaction conflict a few times.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import duckdb

from fraudwatch.store.schema import NOTIFY_DIGEST, NOTIFY_OUTBOX, NOTIFY_STATE, SILENCES, Table

T = TypeVar("T")
Cursor = duckdb.DuckDBPyConnection


def retrying(cur: Cursor, work: Callable[[], T], attempts: int = 5) -> T:
    """Run `work` in a transaction, retrying when DuckDB reports a conflict with another thread's transaction."""
    for i in range(attempts):
        cur.execute("BEGIN TRANSACTION")
        try:
            out = work()
            cur.execute("COMMIT")
            return out
        except duckdb.TransactionException:
            cur.execute("ROLLBACK")
            if i == attempts - 1:
                raise
            time.sleep(0.01 * (i + 1))
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                cur.execute("ROLLBACK")
            raise
    raise AssertionError("unreachable")


def insert_rows(cur: Cursor, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    cols = table.columns
    select = ", ".join(f"unnest(?::{c.type}[])" for c in cols)
    params = [[r.get(c.name) for r in rows] for c in cols]
    names = ", ".join(f'"{c.name}"' for c in cols)
    cur.execute(f"INSERT INTO {table.name} ({names}) SELECT {select}", params)


def _dicts(cur: Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --- outbox -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outgoing:
    channel: str
    kind: str
    rule: str
    severity: str
    alert_ids: tuple[int, ...]
    keys: int
    title: str
    body: str
    body_format: str


def enqueue(cur: Cursor, items: Sequence[Outgoing], now: dt.datetime) -> list[int]:
    """Insert pending rows (inside the caller's transaction); their ids."""
    if not items:
        return []
    start = int(cur.execute("SELECT coalesce(max(id), 0) FROM notify_outbox").fetchall()[0][0]) + 1
    rows: list[dict[str, Any]] = [
        {"id": start + i, "created_at": now, "channel": o.channel, "kind": o.kind, "rule": o.rule,
             "severity": o.severity, "alert_ids": json.dumps(list(o.alert_ids[:1000])), "keys": o.keys,
             "title": o.title, "body": o.body, "body_format": o.body_format, "status": "pending", "attempts": 0,
             "next_attempt_at": now, "last_error": None, "sent_at": None} for i, o in enumerate(items)]
    insert_rows(cur, NOTIFY_OUTBOX, rows)
    return [r["id"] for r in rows]


def due(cur: Cursor, now: dt.datetime, limit: int = 200) -> list[dict[str, Any]]:
    cur.execute("SELECT id, created_at, channel, kind, title, body, body_format, attempts FROM notify_outbox "
                "WHERE status = 'pending' AND next_attempt_at <= ? ORDER BY id LIMIT ?", [now, limit])
    return _dicts(cur)


def mark_sent(cur: Cursor, row_id: int, now: dt.datetime) -> None:
    retrying(cur, lambda: cur.execute(
        "UPDATE notify_outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, last_error = NULL "
        "WHERE id = ?", [now, row_id]))


def mark_failed(cur: Cursor, row_id: int, error: str, next_at: dt.datetime, give_up: bool) -> None:
    retrying(cur, lambda: cur.execute(
        "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ? "
        "WHERE id = ?", [error[:1000], next_at, "failed" if give_up else "pending", row_id]))


def prune_sent(cur: Cursor, before: dt.datetime) -> int:
    """Delete sent rows sent before `before` (the newest row is kept: ids keep growing); how many."""
    def work() -> int:
        cur.execute("DELETE FROM notify_outbox WHERE status = 'sent' AND sent_at < ? "
                    "AND id < (SELECT max(id) FROM notify_outbox)", [before])
        rows = cur.fetchall()
        return int(rows[0][0]) if rows else 0
    return retrying(cur, work)


def outbox_rows(cur: Cursor, include_sent: bool, limit: int = 1000) -> list[dict[str, Any]]:
    where = "TRUE" if include_sent else "status <> 'sent'"
    cur.execute(f"SELECT id, created_at, channel, kind, rule, severity, keys, title, status, attempts, "  # nosec B608 # only constant clauses are formatted in; values are parameters
                f"next_attempt_at, last_error, sent_at, alert_ids FROM notify_outbox WHERE {where} "
                f"ORDER BY id DESC LIMIT ?", [limit])
    return _dicts(cur)


def retry_failed(cur: Cursor, now: dt.datetime) -> int:
    def work() -> int:
        n = cur.execute("SELECT count(*) FROM notify_outbox WHERE status = 'failed'").fetchall()[0][0]
        cur.execute("UPDATE notify_outbox SET status = 'pending', next_attempt_at = ?, created_at = ? "
                    "WHERE status = 'failed'", [now, now])
        return int(n)
    return retrying(cur, work)


# --- realert state ----------------------------------------------------------------------------------------------

@dataclass
class State:
    severity: str
    notified_at: dt.datetime
    alert_id: int
    suppressed: int = 0


def load_state(cur: Cursor) -> dict[tuple[str, str], State]:
    cur.execute("SELECT rule, key, severity, notified_at, alert_id, suppressed FROM notify_state WHERE rule <> ?",
                [INCIDENT])
    return {(r[0], r[1]): State(r[2], r[3], int(r[4]), int(r[5] or 0)) for r in cur.fetchall()}


def save_state(cur: Cursor, changed: Mapping[tuple[str, str], State]) -> None:
    """Replace the rows of `changed` (inside the caller's transaction)."""
    if not changed:
        return
    sep = "\x1f"
    cur.execute("DELETE FROM notify_state WHERE rule || chr(31) || key IN (SELECT unnest(?::VARCHAR[]))",
                [[f"{r}{sep}{k}" for r, k in changed]])
    insert_rows(cur, NOTIFY_STATE, [{"rule": r, "key": k, "severity": s.severity, "notified_at": s.notified_at,
                                     "alert_id": s.alert_id, "suppressed": s.suppressed}
                                    for (r, k), s in changed.items()])


# --- incidents ----------------------------------------------------------------------------------------------------

INCIDENT = "@incident"  # notify_state's `rule` of an incident's row (no rule id starts with '@')
HOLD = "incident-hold"  # notify_digest's `kind` of an escalation waiting to be sent (its `grp`: the incident id)


@dataclass
class Notice:
    """What the last message about an incident said, and when: a `notify_state` row with `rule` '@incident',
    `key` the incident id, `severity` 'SEVERITY ACTION', `alert_id` the messages told (the summary not counted)
    and `suppressed` the changes folded since the last message."""

    severity: str
    action: str
    notified_at: dt.datetime
    told: int = 1
    folded: int = 0


def load_notices(cur: Cursor) -> dict[str, Notice]:
    cur.execute("SELECT key, severity, notified_at, alert_id, suppressed FROM notify_state WHERE rule = ?",
                [INCIDENT])
    out = {}
    for key, said, at, told, folded in cur.fetchall():
        severity, _, action = str(said).partition(" ")
        out[key] = Notice(severity, action or "alert", at, int(told or 0), int(folded or 0))
    return out


def save_notices(cur: Cursor, changed: Mapping[str, Notice | None]) -> None:
    """Replace (None: delete) the incident rows of `changed` (inside the caller's transaction)."""
    if not changed:
        return
    cur.execute("DELETE FROM notify_state WHERE rule = ? AND key IN (SELECT unnest(?::VARCHAR[]))",
                [INCIDENT, list(changed)])
    insert_rows(cur, NOTIFY_STATE, [{"rule": INCIDENT, "key": k, "severity": f"{n.severity} {n.action}",
                                     "notified_at": n.notified_at, "alert_id": n.told, "suppressed": n.folded}
                                    for k, n in changed.items() if n is not None])


def drop_holds(cur: Cursor, incident_ids: Sequence[str]) -> None:
    """Delete the escalations waiting for these incidents (folded into their summary)."""
    if incident_ids:
        cur.execute("DELETE FROM notify_digest WHERE kind = ? AND grp IN (SELECT unnest(?::VARCHAR[]))",
                    [HOLD, list(incident_ids)])


def member_alerts(cur: Cursor, ids: Sequence[int]) -> list[tuple[Any, ...]]:
    """(id, rule, key_type, key, action, trusted, report_only) of stored alerts (an incident's members after a
    restart)."""
    if not ids:
        return []
    cur.execute("SELECT id, rule, key_type, key, action, trusted, report_only FROM alerts "
                "WHERE id IN (SELECT unnest(?::BIGINT[]))", [list(ids)])
    return list(cur.fetchall())


# --- digests ----------------------------------------------------------------------------------------------------

def add_to_digest(cur: Cursor, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add alerts to open digests; an alert already in one (its severity rose) is replaced, not counted twice."""
    if not rows:
        return
    cur.execute("DELETE FROM notify_digest WHERE grp || chr(31) || kind || chr(31) || channels || chr(31) || "
                "alert_id IN (SELECT unnest(?::VARCHAR[]))",
                [[f"{r['grp']}\x1f{r['kind']}\x1f{r['channels']}\x1f{r['alert_id']}" for r in rows]])
    insert_rows(cur, NOTIFY_DIGEST, rows)


def open_digests(cur: Cursor) -> dict[tuple[str, str, str], dt.datetime]:
    """(grp, kind, channels JSON) -> due_at of every open digest."""
    cur.execute("SELECT grp, kind, channels, min(due_at) FROM notify_digest GROUP BY ALL")
    return {(r[0], r[1], r[2]): r[3] for r in cur.fetchall()}


def digest_groups_due(cur: Cursor, now: dt.datetime) -> list[tuple[str, str, str]]:
    cur.execute("SELECT grp, kind, channels FROM notify_digest GROUP BY ALL HAVING min(due_at) <= ? "
                "ORDER BY min(due_at)", [now])
    return [(r[0], r[1], r[2]) for r in cur.fetchall()]


def digest_group(cur: Cursor, group: tuple[str, str, str], top: int) -> tuple[list[dict[str, Any]], int,
                                                                               dict[str, int], list[int]]:
    """(top rows by events, number of alerts, alerts per severity, alert ids) of one open digest."""
    params = list(group)
    where = "grp = ? AND kind = ? AND channels = ?"
    cur.execute(f"SELECT row FROM notify_digest WHERE {where} ORDER BY count DESC, alert_id LIMIT ?", [*params, top])  # nosec B608 # where: a constant clause; values are parameters
    rows = [json.loads(r[0]) for r in cur.fetchall()]
    cur.execute(f"SELECT severity, count(*) FROM notify_digest WHERE {where} GROUP BY 1", params)  # nosec B608 # where: a constant clause; values are parameters
    sev = {r[0]: int(r[1]) for r in cur.fetchall()}
    cur.execute(f"SELECT alert_id FROM notify_digest WHERE {where} ORDER BY alert_id LIMIT 1000", params)  # nosec B608 # where: a constant clause; values are parameters
    ids = [int(r[0]) for r in cur.fetchall()]
    return rows, sum(sev.values()), sev, ids


def digest_window(cur: Cursor, group: tuple[str, str, str]) -> tuple[str, str]:
    cur.execute("SELECT min(json_extract_string(row, '$.first_seen')), max(json_extract_string(row, '$.last_seen')) "
                "FROM notify_digest WHERE grp = ? AND kind = ? AND channels = ?", list(group))
    r = cur.fetchall()[0]
    return str(r[0]), str(r[1])


def drop_digest(cur: Cursor, group: tuple[str, str, str]) -> None:
    cur.execute("DELETE FROM notify_digest WHERE grp = ? AND kind = ? AND channels = ?", list(group))


# --- silences ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Silence:
    id: int
    key: str
    rule: str | None
    until: dt.datetime
    reason: str | None = None
    created_by: str | None = None
    created_at: dt.datetime | None = None

    def matches(self, rule: str, key: str) -> bool:
        if self.rule is not None and self.rule != rule:
            return False
        first = key.split("|", 1)[0]
        if self.key in (key, first):
            return True
        if "/" in self.key:
            try:
                return ipaddress.ip_address(first) in ipaddress.ip_network(self.key, strict=False)
            except ValueError:
                return False
        return False


def active_silences(cur: Cursor, now: dt.datetime) -> list[Silence]:
    cur.execute("SELECT id, key, rule, until, reason, created_by, created_at FROM silences "
                "WHERE ended_at IS NULL AND until > ? ORDER BY id", [now])
    return [Silence(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6]) for r in cur.fetchall()]


def all_silences(cur: Cursor) -> list[dict[str, Any]]:
    cur.execute("SELECT * FROM silences ORDER BY id")
    return _dicts(cur)


def add_silence(cur: Cursor, key: str, rule: str | None, until: dt.datetime, reason: str | None, by: str | None,
                now: dt.datetime) -> int:
    def work() -> int:
        new_id = int(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM silences").fetchall()[0][0])
        insert_rows(cur, SILENCES, [{"id": new_id, "key": key, "rule": rule, "created_at": now, "until": until,
                                     "reason": reason, "created_by": by, "ended_at": None}])
        return new_id
    return retrying(cur, work)


def end_silences(cur: Cursor, target: str, now: dt.datetime) -> list[int]:
    """End the active silence with id `target`, or every active silence on key `target`; the ids ended."""
    def work() -> list[int]:
        cond, param = ("id = ?", int(target)) if target.isdigit() else ("key = ?", target)
        if target.isdigit() and not cur.execute("SELECT 1 FROM silences WHERE id = ? AND ended_at IS NULL "
                                                "AND until > ?", [param, now]).fetchall():
            cond, param = "key = ?", target  # a numeric key (an account) rather than an id
        cur.execute(f"SELECT id FROM silences WHERE {cond} AND ended_at IS NULL AND until > ?", [param, now])  # nosec B608 # cond: one of two constant clauses; the value is a parameter
        ids = [int(r[0]) for r in cur.fetchall()]
        if ids:
            cur.execute("UPDATE silences SET ended_at = ? WHERE id IN (SELECT unnest(?::BIGINT[]))", [now, ids])
        return ids
    return retrying(cur, work)


def names_of(cur: Cursor, accounts: Iterable[str]) -> dict[str, str]:
    wanted = sorted(set(accounts))
    if not wanted:
        return {}
    cur.execute("SELECT account, name FROM customers WHERE account IN (SELECT unnest(?::VARCHAR[])) "
                "AND name IS NOT NULL AND name <> ''", [wanted])
    return {r[0]: r[1] for r in cur.fetchall()}
