"""Trying a format on lines without storing anything: what `fraudwatch formats test` and the sample tests use.

It runs the very SQL ingest runs (same classification, extraction and conversion), on an in-memory DuckDB; a
file is read by the same reader and batcher as ingest (`trial_file`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.spec import LineFormat
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import read_chunks


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


@dataclass
class FileTrial:
    """What a format makes of a whole file: lines per pattern, ignored, rejected by reason, first rejected lines."""

    lines: int = 0
    hits: Counter[str] = field(default_factory=Counter)  # pattern name -> lines it parsed
    ignored: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> lines
    unmatched: list[tuple[int, str, str]] = field(default_factory=list)  # (line number, reason, text), in order


def trial_file(path: Path, fmt: LineFormat, tz: str = "UTC", examples: int = 5,
               each_line: Callable[[LineResult], None] | None = None) -> FileTrial:
    """Parse `path` with `fmt` as ingest would, storing nothing. With `each_line`, every line's result is handed
    to it as it is parsed (`formats test --json`), and the counts are left empty."""
    parser = LineParser(fmt, tz, path.stat().st_mtime)
    names = [v.pattern.name for v in parser.compiled.variants]
    result = FileTrial()
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        prepare_connection(con)
        for chunk in read_chunks(path, final=True):
            batch = to_batch(chunk)
            result.lines += batch.lines
            for b in batch.bad:
                result.rejected[b.reason.split(" (")[0]] += 1
                if len(result.unmatched) < examples:
                    result.unmatched.append((b.line_no, b.reason, b.raw.decode("utf-8", "backslashreplace")))
                if each_line is not None:
                    each_line(LineResult(b.line_no, False, False, None, {}, b.reason))
            if not batch.table.num_rows:
                continue
            parser.parse(con, batch.table)
            if each_line is not None:
                for r in batch_results(con, parser, batch.first_line_no):
                    each_line(r)
                continue
            _count(con, names, result)
            if len(result.unmatched) < examples:
                rows = con.execute(
                    "SELECT idx, reason, line FROM (SELECT idx, 'no pattern matched' AS reason, line FROM cls "
                    "WHERE k = -2 UNION ALL SELECT conv.idx, conv.bad, cls.line FROM conv JOIN cls USING (idx) "
                    "WHERE conv.bad <> '') ORDER BY idx LIMIT ?", [examples - len(result.unmatched)]).fetchall()
                result.unmatched += [(batch.first_line_no + i, r, line.rstrip("\n")) for i, r, line in rows]
    finally:
        con.close()
    return result


def _count(con: duckdb.DuckDBPyConnection, names: list[str], result: FileTrial) -> None:
    """Add the batch `parser.parse` just left on `con` to the counts."""
    for k, n in con.execute("SELECT k, count(*) FROM cls GROUP BY k").fetchall():
        if k == -1:
            result.ignored += n
        elif k == -2:
            result.rejected["no pattern matched"] += n
    for variant, bad, n in con.execute("SELECT variant, bad, count(*) FROM conv GROUP BY ALL").fetchall():
        if bad:
            result.rejected[bad] += n
        else:
            result.hits[names[variant]] += n
