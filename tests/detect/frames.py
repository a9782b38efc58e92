"""Hand-built event frames and rules for the engine tests: typed like the store, times as seconds from T0."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from fraudwatch.detect.base import Context, Match
from fraudwatch.detect.fields import columns_of
from fraudwatch.detect.spec import load_rule_file
from fraudwatch.detect.types import TYPES
from fraudwatch.store.schema import TABLES

T0 = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)
_DTYPES: dict[str, pl.DataType] = {
    "BIGINT": pl.Int64(), "INTEGER": pl.Int32(), "SMALLINT": pl.Int16(), "VARCHAR": pl.Utf8(),
    "TIMESTAMPTZ": pl.Datetime("us", "UTC"), "DECIMAL(18,4)": pl.Decimal(18, 4), "DOUBLE": pl.Float64(),
    "BOOLEAN": pl.Boolean(),
}


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def schema(source: str) -> dict[str, pl.DataType]:
    return {c.name: _DTYPES[c.type] for c in TABLES[source].columns}


def events(source: str, rows: Iterable[dict[str, Any]], first_id: int = 1) -> pl.DataFrame:
    """One row per dict: `t` is seconds after T0 (the event time; a CDR's stop time), other keys are columns.
    Every column of the source's table is present, typed as the store gives it; ids and line numbers count up."""
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        ts = at(row.pop("t"))
        n = first_id + i
        if source == "cdrs":
            hold = row.get("hold_seconds", 0)
            row = {"flowno": n, "stop_time": ts, "start_time": ts - dt.timedelta(seconds=hold),
                   "hold_seconds": hold, "source": "cdr.csv", "line_no": n + 1, **row}
        else:
            row = {"id": n, "ts": ts, "source": "test.log", "line_no": n, "byte_offset": 100 * n, **row}
        out.append(row)
    cols = schema(source)
    unknown = {k for r in out for k in r} - set(cols)
    assert not unknown, f"not columns of {source}: {unknown}"
    return pl.DataFrame(out, schema=cols)


def sip(*rows: dict[str, Any], first_id: int = 1) -> pl.DataFrame:
    return events("sip_events", rows, first_id)


def load_rules_text(tmp_path: Path, text: str, name: str = "rules.yaml") -> list[Any]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rule_file(path, TYPES).rules


def rule(tmp_path: Path, text: str) -> Any:
    rules = load_rules_text(tmp_path, text)
    assert len(rules) == 1
    return rules[0]


def lists_dir(tmp_path: Path, **lists: list[str]) -> Path:
    folder = tmp_path / "lists"
    folder.mkdir(exist_ok=True)
    for name, entries in lists.items():
        (folder / f"{name.replace('_', '-')}.txt").write_text("# test list\n" + "\n".join(entries) + "\n",
                                                              encoding="utf-8")
    return folder


def detector(tmp_path: Path, text: str, ctx: Context | None = None, stream: bool = False) -> Any:
    """The rule's detector: for replays (frames), or with `stream` for the watcher (incremental windows, for the
    types that have them)."""
    r = rule(tmp_path, text)
    ctx, columns = ctx or Context(lists_dir(tmp_path)), columns_of(r.common.source)
    det = r.incremental_detector(ctx, columns) if stream else None
    return det if det is not None else r.frame_detector(ctx, columns)


def run(det: Any, *batches: pl.DataFrame) -> list[Match]:
    out: list[Match] = []
    for b in batches:
        out.extend(det.process(b))
    return out


def split_every(frame: pl.DataFrame, n: int) -> list[pl.DataFrame]:
    return [frame.slice(i, n) for i in range(0, frame.height, n)]
