"""`fraudwatch detect`: replay stored events through the rule engine, on event time.

The store is read source by source in time steps (whole minutes merged up to about STEP_ROWS events: a quiet
day is one step, a flood minute one on its own), every source up to the same instant before the next step, so
memory stays bounded and windows carry across steps exactly as they carry across the watcher's batches. Only
the columns the rules read are fetched. Alerts are saved with origin 'replay'; replaying a range again replaces
the replay alerts of that range, never the watcher's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert, AlertBook
from fraudwatch.detect.incident import Incident, IncidentChange
from fraudwatch.detect.runners.engine import PARALLEL, Engine
from fraudwatch.detect.types import RuleType
from fraudwatch.netaddr import IPNetwork
from fraudwatch.store.schema import ALERTS

if TYPE_CHECKING:
    import duckdb

_SAVED_HERE = ("origin", "updated_at")  # alert columns save_alert_rows fills; alerts_table makes the rest
_MADE_ROWS = tuple(n for n in ALERTS.names if n not in _SAVED_HERE)
_ALERT_FIELDS = tuple(n for n in _MADE_ROWS if n != "evidence")  # Alert fields; evidence is made JSON
_ALERT_TYPES: dict[str, pl.DataType] = {
    c.name: {"BIGINT": pl.Int64(), "INTEGER": pl.Int32(), "DOUBLE": pl.Float64(), "BOOLEAN": pl.Boolean(),
             "VARCHAR": pl.String(), "TIMESTAMPTZ": pl.Datetime("us", "UTC")}[c.type] for c in ALERTS.columns}
_EVIDENCE_JSON = json.JSONEncoder(default=str, ensure_ascii=False)  # made once: json.dumps makes one a call

TIME_COLUMN = {"sip_events": "ts", "netfilter_events": "ts", "cdrs": "stop_time", "rejects": "ts"}
ORDER = {"sip_events": "ts, id", "netfilter_events": "ts, id", "cdrs": "stop_time, flowno", "rejects": "ts, id"}


@dataclass(frozen=True)
class ReplayResult:
    rules: list[RuleType]
    alerts: list[Alert]
    events: dict[str, int]
    since: dt.datetime | None
    until: dt.datetime | None
    incidents: list[Incident] = field(default_factory=list)  # the alerts joined (fraudwatch.detect.incidents)
    changes: list[IncidentChange] = field(default_factory=list)  # what happened to them, in order


def credit_context(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, float], dict[str, str]]:
    rows = con.execute("SELECT account, coalesce(money, 0) + coalesce(limit_money, 0), name FROM customers").fetchall()
    return {a: float(v) for a, v, _ in rows}, {a: n for a, _, n in rows if n}


def data_range(con: duckdb.DuckDBPyConnection, sources: Iterable[str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    lo: dt.datetime | None = None
    hi: dt.datetime | None = None
    for s in sources:
        col = TIME_COLUMN[s]
        a, b = con.execute(f"SELECT min({col}), max({col}) FROM {s}").fetchall()[0]  # nosec B608 # source table and its time column from the store's schema
        if a is not None:
            lo = a if lo is None else min(lo, a)
            hi = b if hi is None else max(hi, b)
    return lo, hi


# Events per replay step, about: big enough to amortise per-batch work, small for memory. Much of a step's cost
# follows the keys it holds, not its rows (each ongoing attack's key makes a match per rule and step), so fewer,
# larger steps cost less, at the same peak RSS up to this size and more beyond (figures: benchmarks/RESULTS.md,
# "Replay step size (300k events)").
STEP_ROWS = 300_000
SLOT = dt.timedelta(minutes=1)  # the finest step: a flood minute is one step on its own


def _steps(con: duckdb.DuckDBPyConnection, sources: Sequence[str], since: dt.datetime, until: dt.datetime,
           step: dt.timedelta, rows_per_step: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """Time steps of whole minutes (or of `step` when shorter), counted in the store and merged while together
    they hold fewer than `rows_per_step` events: a quiet day is one step, a flood a few minutes. Steps never cut
    an instant, and smaller steps bound memory (a window's detector keeps only its window between steps)."""
    slot_s = min(step, SLOT).total_seconds()
    per_slot: dict[int, int] = {}
    for s in sources:
        col = TIME_COLUMN[s]
        for slot, n in con.execute(
                f"SELECT floor((epoch({col}) - epoch(?::TIMESTAMPTZ)) / ?)::BIGINT, count(*) FROM {s} "  # nosec B608 # source table and its time column from the store's schema; values are parameters
                f"WHERE {col} >= ? AND {col} < ? GROUP BY 1", [since, slot_s, since, until]).fetchall():
            per_slot[slot] = per_slot.get(slot, 0) + n
    size = dt.timedelta(seconds=slot_s)
    bounds: list[tuple[dt.datetime, dt.datetime]] = []
    start, acc, slot = since, 0, 0
    last = max(per_slot, default=0)
    while since + slot * size < until:
        n = per_slot.get(slot, 0)
        if slot > last:  # nothing after this: one step to the end
            bounds.append((start, until))
            break
        if acc and acc + n > rows_per_step:
            cut = since + slot * size
            bounds.append((start, cut))
            start, acc = cut, 0
        acc += n
        slot += 1
        if since + slot * size >= until:
            bounds.append((start, until))
    return bounds


def replay(con: duckdb.DuckDBPyConnection, rules: Sequence[RuleType], ctx: Context, trusted: Sequence[IPNetwork] = (),
           trusted_accounts: Iterable[str] = (), since: dt.datetime | None = None, until: dt.datetime | None = None,
           step: dt.timedelta = dt.timedelta(hours=1), next_id: int = 1, rows_per_step: int = STEP_ROWS,
           lock_in_trusted: bool = False, prepare: Callable[[Engine], object] | None = None) -> ReplayResult:
    """Score the store's events from `since` to `until` (default: all of them). `prepare` is given the engine
    before it scores anything (a ranged replay's rules learning from the history before the range)."""
    engine = Engine(rules, ctx, trusted)
    if prepare is not None:
        prepare(engine)
    book = AlertBook({r.common.id: r for r in rules}, trusted, trusted_accounts, next_id, lock_in_trusted)
    lo, hi = data_range(con, engine.sources)
    since = since or lo
    until = until or (hi + dt.timedelta(microseconds=1) if hi else None)
    alerts: dict[int, Alert] = {}
    counts = dict.fromkeys(engine.sources, 0)
    columns = {s: engine.columns(s) for s in engine.sources}
    if since is None or until is None:
        return ReplayResult(list(rules), [], counts, since, until)
    for t, t_next in _steps(con, engine.sources, since, until, step, rows_per_step):
        for source in engine.sources:
            col = TIME_COLUMN[source]
            frame = con.sql(f"SELECT {', '.join(columns[source])} FROM {source} WHERE {col} >= ? AND {col} < ? "  # nosec B608 # table and column names from the store's schema; values are parameters
                            f"ORDER BY {ORDER[source]}", params=[t, t_next]).pl()
            counts[source] += frame.height
            for alert in book.apply(engine.process(source, frame, PARALLEL)):
                alerts[alert.id] = alert
    return ReplayResult(list(rules), sorted(alerts.values(), key=lambda a: a.id), counts, since, until)


def next_alert_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(id), 0) + 1 FROM alerts").fetchall()[0][0])


def alerts_table(alerts: Sequence[Alert]) -> pa.Table:
    """The alerts as rows of the `alerts` table, less the columns saving adds (origin, updated_at). Built column
    by column, cheaper than one dict per alert. The scoring process of `ingest --detect` sends its alerts this
    way, cheaper than pickling the Alert objects there and back. Made by polars, not `pa.table` (both cost the
    same, mostly the evidence's JSON): pyarrow's first conversion of Python values imports pandas (figures:
    benchmarks/RESULTS.md, "Alerts as Arrow rows between processes")."""
    columns = {**{k: [getattr(a, k) for a in alerts] for k in _ALERT_FIELDS},
               "evidence": [_EVIDENCE_JSON.encode(a.evidence) for a in alerts]}
    return pl.DataFrame(columns, schema={k: _ALERT_TYPES[k] for k in columns}).to_arrow()


def alerts_from_rows(rows: pa.Table) -> list[Alert]:
    """`alerts_table` rows back into alerts (the scoring process of `ingest --detect` sends them so). Through
    polars: pyarrow's own conversion of zoned times to Python imports pandas."""
    frame = pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    out = []
    for r in frame.to_dicts():
        r["evidence"] = json.loads(r["evidence"]) if r.get("evidence") else {}
        out.append(Alert(**{k: r[k] for k in _MADE_ROWS}))
    return out


def save_alerts(con: duckdb.DuckDBPyConnection, alerts: Sequence[Alert], origin: str,
                replace_range: tuple[dt.datetime, dt.datetime] | None = None) -> None:
    """Write alerts (insert or replace by id); optionally first drop this origin's alerts in a time range."""
    save_alert_rows(con, alerts_table(alerts), origin, replace_range)


def save_alert_rows(con: duckdb.DuckDBPyConnection, rows: pa.Table, origin: str,
                    replace_range: tuple[dt.datetime, dt.datetime] | None = None) -> None:
    """`save_alerts` for alerts already made rows (`alerts_table`)."""
    now = dt.datetime.now(dt.UTC)
    con.execute("BEGIN")
    try:
        if replace_range is not None:
            con.execute("DELETE FROM alerts WHERE origin = ? AND detected_at >= ? AND detected_at < ?",
                        [origin, *replace_range])
        if rows.num_rows:
            con.register("new_alerts", rows)
            try:
                # the lower bound lets DuckDB skip the row groups of older alerts (by their min/max) instead of
                # probing the whole table: the watcher saves the alerts a batch changed, mostly recent ones
                con.execute("DELETE FROM alerts WHERE id >= ? AND id IN (SELECT id FROM new_alerts)",
                            [pc.min(rows.column("id")).as_py()])
                made = ", ".join(_MADE_ROWS)
                con.execute(f"INSERT INTO alerts ({made}, {', '.join(_SAVED_HERE)}) SELECT {made}, ?, ? "  # nosec B608 # column names are constants of this module; values are parameters
                            "FROM new_alerts", [origin, now])
            finally:
                con.unregister("new_alerts")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
