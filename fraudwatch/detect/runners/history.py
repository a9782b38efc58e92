"""What the store's history teaches the rules before a run scores anything: the terms each key was seen with, for
the new-term rules (new address, new country), so a watcher's start or a replay of a range does not learn blind
for their `learn` period (issue 23: "learning from whatever history the store holds")."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.runners.engine import Engine
from fraudwatch.detect.runners.replay import ORDER, TIME_COLUMN
from fraudwatch.detect.types.newterm import NewTermDetector

LEARN_ROWS = 2_000_000  # rows of history per table the new-term rules learn from
BATCH = 100_000  # rows read and learned at a time


def learn_terms(con: duckdb.DuckDBPyConnection, engine: Engine, max_rows: int = LEARN_ROWS,
                before: dt.datetime | None = None) -> int:
    """Teach the engine's new-term detectors what the store's history holds (the newest `max_rows` rows of each
    table they read — a few more when events share the oldest one's time — within their longest `forget`; with
    `before`, of the rows before it), in time order and in batches, without scoring: returns the rows read.
    Enrichment here is a fresh one, so the engine's own (its open challenges) is left as it was."""
    fed = 0
    enrich = Enricher(engine.enrich.trusted)
    for table, col in TIME_COLUMN.items():
        learners = [d for d in engine.detectors.get(table, []) if isinstance(d, NewTermDetector)]
        if not learners or max_rows <= 0:
            continue
        forget = max(float(d.rule.forget) for d in learners)
        if before is None:
            (newest,) = con.execute(f"SELECT max({col}) FROM {table}").fetchall()[0]  # nosec B608 # event tables and time columns of the schema
        else:
            (newest,) = con.execute(f"SELECT max({col}) FROM {table} WHERE {col} < ?", [before]).fetchall()[0]  # nosec B608 # event tables and time columns of the schema; values are parameters
        if newest is None:
            continue
        (since,) = con.execute(f"SELECT min({col}) FROM (SELECT {col} FROM {table} WHERE {col} > ? AND {col} <= ? "  # nosec B608 # event tables and time columns of the schema; values are parameters
                               f"ORDER BY {col} DESC LIMIT ?)",
                               [newest - dt.timedelta(seconds=forget), newest, max_rows]).fetchall()[0]
        if since is None:
            continue
        (recent,) = con.execute(f"SELECT count(*) FROM {table} WHERE {col} >= ? AND {col} <= ?",  # nosec B608 # event tables and time columns of the schema; values are parameters
                                [since, newest]).fetchall()[0]
        cols = ", ".join(f'"{c}"' for c in engine.columns(table))
        # in time slices of about BATCH rows, each sorted on its own: one sort of the whole history held it all
        # in memory at once (a watcher's start-up peak on a store of a million recent events: 555 -> 898 MiB)
        slices = max(1, -(-int(recent) // BATCH))
        step = (newest - since) / slices
        for k in range(slices):
            lo, last = since + step * k, k == slices - 1
            hi = newest if last else since + step * (k + 1)
            reader = con.sql(f"SELECT {cols} FROM {table} WHERE {col} >= ? AND {col} {'<=' if last else '<'} ? "  # nosec B608 # event tables, columns and ORDER of the schema; values are parameters
                             f"ORDER BY {ORDER[table]}", params=[lo, hi]).to_arrow_reader(BATCH)
            for batch in reader:
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                if frame.height:
                    enriched = enrich(table, frame)
                    for d in learners:
                        d.learn_only(enriched)
                    fed += frame.height
    return fed
