"""Reading the `alerts` table as rows for people and scripts (`fraudwatch alerts list|show`), parameters bound."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# A key's parts: rules keyed on several fields join them with '|' (`fraudwatch.detect.base.key_text`: ip|user)
_PART_OF_KEY = "(key = ? OR list_contains(string_split(key, '|'), ?))"
# The evidence names a value as a whole JSON string ("192.0.2.1", not the prefix of "192.0.2.10")
_IN_EVIDENCE = "(evidence IS NOT NULL AND strpos(evidence, ?) > 0)"


def list_alerts(con: duckdb.DuckDBPyConnection, *, since: dt.datetime | None = None, rule: str | None = None,
                severity: str | None = None, ip: str | None = None, account: str | None = None,
                key: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Alerts active since `since` (their last event at or after it), of `rule` and `severity` when given, newest
    detected first; at most `limit`.

    `key`: the alert's key, or one part of a composite key (`198.51.100.7|1001`). `ip` (canonical form) and
    `account`: the same, or an alert whose evidence names it as a value (an account alert listing the new address
    it came from, an address alert listing the accounts it tried): a text search of the evidence, cheap on a
    table of alerts, that finds what shares one attack with the address or the account."""
    where: list[str] = []
    params: list[object] = []
    for clause, value in (("last_seen >= ?", since), ("rule = ?", rule), ("severity = ?", severity)):
        if value is not None:
            where.append(clause)
            params.append(value)
    if key is not None:
        where.append(_PART_OF_KEY)
        params += [key, key]
    for value in (ip, account):
        if value is not None:
            where.append(f"({_PART_OF_KEY} OR {_IN_EVIDENCE})")
            params += [value, value, json.dumps(value, ensure_ascii=False)]  # as evidence is written
    sql = f"SELECT * FROM alerts WHERE {' AND '.join(where) or 'TRUE'} ORDER BY detected_at DESC, id DESC LIMIT ?"  # nosec B608 # constant clauses; values are parameters
    return _rows(con.execute(sql, [*params, limit]))


def alert_totals(con: duckdb.DuckDBPyConnection) -> tuple[int, dt.datetime | None]:
    """How many alerts the store holds, and when the newest was detected: what an empty filtered list says."""
    got = con.execute("SELECT count(*), max(detected_at) FROM alerts").fetchall()[0]
    return int(got[0]), got[1]


def alert_by_id(con: duckdb.DuckDBPyConnection, alert_id: int) -> dict[str, Any] | None:
    """The alert `alert_id`, or None when there is none."""
    found = _rows(con.execute("SELECT * FROM alerts WHERE id = ?", [alert_id]))
    return found[0] if found else None
