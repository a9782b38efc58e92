"""The `bans` table: the desired state the kernel is reconciled to, and the history of every ban.

All functions take the writer's DuckDB connection and keep their transactions short (the watcher calls them
from its own thread). Large batches go in as one Arrow table, not row by row.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.enforce.targets import Target, TargetError, parse_target
from fraudwatch.store.schema import ARROW_TYPES, BANS


@dataclass(slots=True)
class Ban:
    """An active ban as the enforcer keeps it (times as epoch seconds: 100k of them are compared per reconcile)."""

    id: int
    net: Target
    level: int
    expires: float
    created: float = 0.0
    source: str = "rule"
    rule: str | None = None
    alert_id: int | None = None
    severity: str | None = None
    reason: str = ""

    @property
    def expires_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires, dt.UTC)


_SCHEMA = pa.schema([(c.name, ARROW_TYPES[c.type]) for c in BANS.columns])


def next_id(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM bans").fetchall()[0]
    return int(row[0])


def active(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> list[Ban]:
    """The active bans (only the columns the enforcer needs: this runs on every start and reconcile)."""
    # column by column (Arrow to lists): faster than rows of tuples for a restore's many bans (figures:
    # benchmarks/RESULTS.md, "Active bans read column by column")
    table = con.sql("SELECT id, network, level, epoch(expires_at), source FROM bans WHERE removed_at IS NULL "
                    "AND expires_at > ? ORDER BY id", params=[now]).to_arrow_table()
    out: list[Ban] = []
    append = out.append
    pton, inet = socket.inet_pton, socket.AF_INET
    for ban_id, network, level, expires, source in zip(*(c.to_pylist() for c in table.columns), strict=True):
        try:
            if "/" in network or ":" in network:
                target = parse_target(network)
            else:  # an IPv4 address, checked by inet_pton as parse_target would (100k of them on a restore)
                target = Target(4, int.from_bytes(pton(inet, network), "big"), 32, network)
        except (TargetError, OSError):  # not written by us: never sent to a firewall
            continue
        append(Ban(ban_id, target, level, expires, source=source or "rule"))
    return out


def _micros(epoch: Sequence[float]) -> pa.Array:
    seconds = pc.multiply(pa.array(epoch, pa.float64()), 1_000_000.0)
    return pc.round(seconds).cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def insert(con: duckdb.DuckDBPyConnection, bans: Sequence[Ban], backend: str) -> None:
    if not bans:
        return
    n = len(bans)
    cols: dict[str, Any] = {
        "id": [b.id for b in bans],
        "network": [b.net.text for b in bans],
        "family": [b.net.version for b in bans],
        "prefixlen": [b.net.prefixlen for b in bans],
        "source": [b.source for b in bans],
        "rule": [b.rule for b in bans],
        "alert_id": [b.alert_id for b in bans],
        "severity": [b.severity for b in bans],
        "reason": [b.reason for b in bans],
        "level": [b.level for b in bans],
        "created_at": _micros([b.created for b in bans]),
        "expires_at": _micros([b.expires for b in bans]),
        "removed_at": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "removed_reason": pa.nulls(n, pa.string()),
        "backend": [backend] * n,
    }
    table = pa.Table.from_pydict(cols, schema=_SCHEMA)
    con.register("_fw_new_bans", table)
    try:
        names = ", ".join(f'"{c}"' for c in BANS.names)
        con.execute(f"INSERT INTO bans ({names}) SELECT {names} FROM _fw_new_bans")  # nosec B608 # names: the bans table's columns, a constant
    finally:
        con.unregister("_fw_new_bans")


def extend(con: duckdb.DuckDBPyConnection, bans: Sequence[Ban]) -> None:
    """New expiry times, in one statement: an ongoing flood extends thousands of bans per batch."""
    if not bans:
        return
    table = pa.table({"id": pa.array([b.id for b in bans], pa.int64()),
                      "expires_at": pa.array([b.expires_at for b in bans], pa.timestamp("us", tz="UTC"))})
    con.register("_fw_extended", table)
    try:
        con.execute("UPDATE bans SET expires_at = e.expires_at FROM _fw_extended e WHERE bans.id = e.id")
    finally:
        con.unregister("_fw_extended")


def link(con: duckdb.DuckDBPyConnection, pairs: Sequence[tuple[int, int | None]]) -> None:
    """Record the alert behind each early ban, (ban id, alert id), in one statement: a flood's botnet links
    thousands at once."""
    if not pairs:
        return
    table = pa.table({"id": pa.array([b for b, _ in pairs], pa.int64()),
                      "alert_id": pa.array([a for _, a in pairs], pa.int64())})
    con.register("_fw_linked", table)
    try:
        con.execute("UPDATE bans SET alert_id = l.alert_id FROM _fw_linked l WHERE bans.id = l.id")
    finally:
        con.unregister("_fw_linked")


def remove(con: duckdb.DuckDBPyConnection, ids: Iterable[int], now: dt.datetime, reason: str) -> None:
    id_list = list(ids)
    if id_list:
        con.execute("UPDATE bans SET removed_at = ?, removed_reason = ? WHERE id IN (SELECT unnest(?))",
                    [now, reason, id_list])


def expire(con: duckdb.DuckDBPyConnection, now: dt.datetime) -> list[str]:
    """Close the bans whose time is up; their networks."""
    rows = con.execute("UPDATE bans SET removed_at = expires_at, removed_reason = 'expired' "
                       "WHERE removed_at IS NULL AND expires_at <= ? RETURNING network", [now]).fetchall()
    return [r[0] for r in rows]


def ban_counts(con: duckdb.DuckDBPyConnection, since: dt.datetime) -> dict[str, int]:
    """How many bans each network had since `since` (escalation levels), for networks banned since then."""
    rows = con.execute("SELECT network, count(*) FROM bans WHERE created_at >= ? GROUP BY 1", [since]).fetchall()
    return dict(rows)


def listing(con: duckdb.DuckDBPyConnection, now: dt.datetime, include_history: bool = False,
            limit: int | None = None) -> list[dict[str, Any]]:
    """Bans for people and JSON: active ones (or all, newest first, with --all)."""
    where = "" if include_history else "WHERE removed_at IS NULL AND expires_at > $now"
    order = "ORDER BY id DESC" if include_history else "ORDER BY expires_at, id"
    lim = f" LIMIT {int(limit)}" if limit else ""
    cur = con.execute(
        f"SELECT id, network, source, rule, alert_id, severity, level, created_at, expires_at, removed_at, "  # nosec B608 # only constant clauses are formatted in; values are parameters
        f"removed_reason, reason, backend, (removed_at IS NULL AND expires_at > $now) AS active "
        f"FROM bans {where} {order}{lim}", {"now": now})
    names = [d[0] for d in cur.description or ()]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
