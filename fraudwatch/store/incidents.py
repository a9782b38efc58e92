"""The `incidents` and `incident_alerts` tables: writing the incident book's incidents, and reading them for people
and scripts (`fraudwatch incidents list|show`). Every value is a bound parameter; lists are JSON text."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, Protocol

import duckdb

LIST_COLUMNS = ("ips", "accounts", "rules", "keys")


class IncidentLike(Protocol):
    """What is saved of an incident (`fraudwatch.detect.incident.Incident`; the store sits below detection),
    read-only."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def first_seen(self) -> dt.datetime: ...
    @property
    def last_seen(self) -> dt.datetime: ...
    @property
    def opened_at(self) -> dt.datetime: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...
    @property
    def alert_ids(self) -> list[int]: ...
    @property
    def rules(self) -> list[str]: ...
    @property
    def ips(self) -> list[str]: ...
    @property
    def accounts(self) -> list[str]: ...
    @property
    def keys(self) -> list[str]: ...
    @property
    def members(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def trusted(self) -> bool: ...
    @property
    def report_only(self) -> bool: ...
    @property
    def merged_into(self) -> str | None: ...


_COLUMNS = ("id", "origin", "kind", "title", "severity", "action", "state", "first_seen", "last_seen", "opened_at",
            "ended_at", "members", "count", "trusted", "report_only", "merged_into", *LIST_COLUMNS, "updated_at")


def _row(inc: IncidentLike, origin: str, now: dt.datetime) -> list[Any]:
    return [inc.id, origin, inc.kind, inc.title, inc.severity, inc.action, inc.state, inc.first_seen, inc.last_seen,
            inc.opened_at, inc.ended_at, inc.members, inc.count, inc.trusted, inc.report_only, inc.merged_into,
            *(json.dumps(getattr(inc, c), ensure_ascii=False) for c in LIST_COLUMNS), now]


def save_incidents(con: duckdb.DuckDBPyConnection, incidents: Iterable[IncidentLike], origin: str,
                   replace_range: tuple[dt.datetime, dt.datetime] | None = None,
                   linked: MutableMapping[str, set[int]] | None = None) -> None:
    """Write incidents (insert or replace by id and origin) and their member links, in one transaction;
    optionally first drop this origin's incidents opened in a time range (a replay of that range).

    `linked`: the member links already stored, by incident, for a caller that saves the same incidents again and
    again (the watcher, after every batch of a flood): the links of an incident whose members only grew are then
    added to, not rewritten (a botnet's campaign of 8,000 members took 20 ms a save). It is brought up to date
    once the transaction commits; an ended incident is dropped from it (it changes no more)."""
    now = dt.datetime.now(dt.UTC)
    rows = {inc.id: inc for inc in incidents}
    con.execute("BEGIN")
    try:
        if replace_range is not None:
            con.execute("DELETE FROM incident_alerts WHERE origin = ? AND incident_id IN (SELECT id FROM incidents "
                        "WHERE origin = ? AND opened_at >= ? AND opened_at < ?)", [origin, origin, *replace_range])
            con.execute("DELETE FROM incidents WHERE origin = ? AND opened_at >= ? AND opened_at < ?",
                        [origin, *replace_range])
        if rows:
            ids = list(rows)
            con.execute("DELETE FROM incidents WHERE origin = ? AND list_contains(?, id)", [origin, ids])
            grown = {} if linked is None else {
                iid: linked[iid] for iid, inc in rows.items()
                if iid in linked and inc.merged_into is None and linked[iid] <= set(inc.alert_ids)}
            rewrite = [iid for iid in ids if iid not in grown]
            if rewrite:
                con.execute("DELETE FROM incident_alerts WHERE origin = ? AND list_contains(?, incident_id)",
                            [origin, rewrite])
            marks = ", ".join("?" for _ in _COLUMNS)
            con.executemany(f"INSERT INTO incidents ({', '.join(_COLUMNS)}) VALUES ({marks})",  # nosec B608 # constant column names; values are parameters
                            [_row(inc, origin, now) for inc in rows.values()])
            # a campaign lists thousands: as two lists bound once, not a row at a time (and not Arrow arrays made
            # from Python values, whose first conversion imports pandas); a merged incident lists none (the
            # older one it went into lists them)
            members = [inc for inc in rows.values() if inc.merged_into is None]
            pairs = [(inc.id, a) for inc in members for a in inc.alert_ids if a not in grown.get(inc.id, ())]
            if pairs:
                con.execute("INSERT INTO incident_alerts (incident_id, origin, alert_id) "
                            "SELECT unnest(?::VARCHAR[]), ?, unnest(?::BIGINT[])",
                            [[i for i, _ in pairs], origin, [a for _, a in pairs]])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    if linked is not None:
        for iid, inc in rows.items():
            if inc.state == "ended" or inc.merged_into is not None:
                linked.pop(iid, None)
            else:
                linked[iid] = set(inc.alert_ids)


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description or []]
    out = []
    for r in cur.fetchall():
        row = dict(zip(names, r, strict=True))
        for c in LIST_COLUMNS:
            if isinstance(row.get(c), str):
                row[c] = json.loads(row[c])
        out.append(row)
    return out


_MEMBER_KEY = ("EXISTS (SELECT 1 FROM incident_alerts m JOIN alerts a ON a.id = m.alert_id "
               "WHERE m.incident_id = incidents.id AND m.origin = incidents.origin AND a.key_type = '{kind}' "
               "AND split_part(a.key, '|', 1) = ?)")


def list_incidents(con: duckdb.DuckDBPyConnection, *, since: dt.datetime | None = None, ip: str | None = None,
                   account: str | None = None, key: str | None = None, state: str | None = None,
                   limit: int = 1000) -> list[dict[str, Any]]:
    """Incidents newest first (by when they opened): active since `since` (their last event at or after it),
    about `ip`, `account` or a key (`key` matches any member key, with or without its type), in `state`. An
    incident merged into an older one is left out (the older one lists its alerts)."""
    where, params = ["merged_into IS NULL"], []
    checks: Sequence[tuple[str, Any]] = (
        ("last_seen >= ?", since),
        # the lists hold the first LISTED of each; a campaign's other members are found by their alerts' keys
        ("(list_contains(from_json(ips, '[\"VARCHAR\"]'), ?) OR " + _MEMBER_KEY.format(kind="ip") + ")", ip),
        ("(list_contains(from_json(accounts, '[\"VARCHAR\"]'), ?) OR " + _MEMBER_KEY.format(kind="account") + ")",
         account),
        ("len(list_filter(from_json(keys, '[\"VARCHAR\"]'), "
         "lambda k: k = ? OR substr(k, strpos(k, ':') + 1) = ?)) > 0", key),
        ("state = ?", state),
    )
    for clause, value in checks:
        if value is not None:
            where.append(clause)
            params += [value, value] if clause.count("?") == 2 else [value]
    return _rows(con.execute(f"SELECT * FROM incidents WHERE {' AND '.join(where)} "  # nosec B608 # constant clauses; values are parameters
                             "ORDER BY opened_at DESC, id DESC LIMIT ?", [*params, limit]))


def count_incidents(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM incidents WHERE merged_into IS NULL").fetchall()[0][0])


def incident_by_id(con: duckdb.DuckDBPyConnection, incident_id: str) -> list[dict[str, Any]]:
    """The incidents whose id is `incident_id` or starts with it (a unique prefix is enough), newest first."""
    return _rows(con.execute("SELECT * FROM incidents WHERE id = ? OR starts_with(id, ?) "
                             "ORDER BY id = ? DESC, opened_at DESC LIMIT 10", [incident_id, incident_id, incident_id]))


def incident_alerts(con: duckdb.DuckDBPyConnection, incident_id: str, origin: str) -> list[dict[str, Any]]:
    """The member alerts of an incident, in the order they were detected."""
    cur = con.execute("SELECT a.* FROM incident_alerts m JOIN alerts a ON a.id = m.alert_id "
                      "WHERE m.incident_id = ? AND m.origin = ? ORDER BY a.detected_at, a.id", [incident_id, origin])
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def incident_bans(con: duckdb.DuckDBPyConnection, ips: Sequence[str], alert_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The bans made for an incident: of its alerts, or of its addresses while it went on (any source)."""
    cur = con.execute("SELECT * FROM bans WHERE list_contains(?, alert_id) OR list_contains(?, network) "
                      "ORDER BY created_at, id", [list(alert_ids), list(ips)])
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def proposed_bans(con: duckdb.DuckDBPyConnection, incident_ids: Sequence[str]) -> list[tuple[str, str]]:
    """The addresses whose alerts in these incidents propose a ban (not trusted, not on trial), with the
    incident, in the order they were detected."""
    found = con.execute(
        "SELECT a.key, m.incident_id, min(a.detected_at) FROM incident_alerts m JOIN alerts a ON a.id = m.alert_id "
        "WHERE list_contains(?, m.incident_id) AND a.key_type = 'ip' AND a.action = 'ban_ip' AND NOT a.trusted "
        "AND NOT a.report_only GROUP BY 1, 2 ORDER BY 3, 1", [list(incident_ids)]).fetchall()
    return [(str(k).split("|", 1)[0], str(i)) for k, i, _ in found]
