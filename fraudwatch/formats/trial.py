"""Trying a format on lines without storing anything: what `fraudwatch formats test` and the sample tests use.

It runs the very SQL ingest runs (same classification, extraction and conversion), on an in-memory DuckDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.spec import LineFormat


@dataclass(frozen=True)
class LineResult:
    line_no: int
    matched: bool  # parsed into a row (not ignored, not rejected)
    ignored: bool
    pattern: str | None
    fields: dict[str, Any]  # non-null typed fields of the row
    reason: str | None  # why it was rejected


def trial(fmt: LineFormat, lines: Sequence[str], tz: str = "UTC", ref_time: dt.datetime | None = None,
          first_line_no: int = 1) -> list[LineResult]:
    """Parse `lines` (text without newlines) with `fmt`; one result per line, in order."""
    ref = (ref_time or dt.datetime.now(dt.UTC)).timestamp()
    parser = LineParser(fmt, tz, ref)
    texts = [line.rstrip("\r\n") + "\n" for line in lines]
    batch = pa.table({"idx": pa.array(range(len(texts)), pa.int64()),
                      "off": pa.array([0] * len(texts), pa.int64()),
                      "line": pa.array(texts, pa.large_string())})
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        prepare_connection(con)
        parser.parse(con, batch)
        return batch_results(con, parser, first_line_no)
    finally:
        con.close()


def batch_results(con: duckdb.DuckDBPyConnection, parser: LineParser, first_line_no: int) -> list[LineResult]:
    """One result per line of the batch `parser.parse` just left on `con` (its `cls` and `conv`), in order."""
    kinds = con.execute("SELECT idx, k FROM cls ORDER BY idx").fetchall()
    cur = con.execute("SELECT * FROM conv")
    names = [d[0] for d in cur.description]
    rows = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    variants = parser.compiled.variants
    out = []
    for idx, k in kinds:
        row = rows.get(idx)
        if k < 0 or row is None:
            out.append(LineResult(first_line_no + idx, False, k == -1, None, {},
                                  None if k == -1 else "no pattern matched"))
            continue
        fields = {n: v for n, v in row.items() if n not in ("idx", "off", "variant", "bad") and v is not None}
        bad = row["bad"] or None
        out.append(LineResult(first_line_no + idx, bad is None, False, variants[k].pattern.name, fields, bad))
    return out
