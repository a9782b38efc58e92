"""Reading the `alerts` table as rows for people and scripts (`fraudwatch alerts list|show`), parameters bound."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def list_alerts(con: duckdb.DuckDBPyConnection, *, since: dt.datetime | None = None, rule: str | None = None,
                severity: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Alerts active since `since` (their last event at or after it), of `rule` and `severity` when given, in the
    order they were detected; at most `limit`."""
    where, params = ["TRUE"], []
    for clause, value in (("last_seen >= ?", since), ("rule = ?", rule), ("severity = ?", severity)):
        if value is not None:
            where.append(clause)
            params.append(value)
    return _rows(con.execute(f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY detected_at, id LIMIT ?",  # nosec B608 # constant clauses; values are parameters
                             [*params, limit]))


def alert_by_id(con: duckdb.DuckDBPyConnection, alert_id: int) -> dict[str, Any] | None:
    """The alert `alert_id`, or None when there is none."""
    found = _rows(con.execute("SELECT * FROM alerts WHERE id = ?", [alert_id]))
    return found[0] if found else None
