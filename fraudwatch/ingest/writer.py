"""The single writer: copies parsed batches into the store, with their rejects and the read position, in one
transaction per batch — so a crash at any instant leaves either the whole batch and its position, or neither."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.formats.engine import LineParser, Parsed
from fraudwatch.sources.reader import BadLine
from fraudwatch.store.schema import TABLES

REJECT_SCHEMA = pa.schema([("line_no", pa.int64()), ("off", pa.int64()), ("reason", pa.string()),
                           ("raw", pa.string()), ("raw_bytes", pa.int64())])


@dataclass
class BatchCounts:
    parsed: Counter[str] = field(default_factory=Counter)  # per event type (or table)
    ignored: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, other: BatchCounts) -> None:
        self.parsed.update(other.parsed)
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.reasons.update(other.reasons)


def raw_text(raw: bytes) -> str:
    """Bytes as storable text: invalid UTF-8 as \\xNN, NUL as \\x00 (DuckDB text must be valid UTF-8)."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


class IdAllocator:
    """Row ids per table: the writer is the only one, so max(id) at open plus a running count is unique."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.next: dict[str, int] = {}

    def take(self, table: str, count: int) -> int:
        if table not in self.next:
            row = self.con.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchall()[0]
            self.next[table] = int(row[0]) if row else 1
        base = self.next[table]
        self.next[table] = base + count
        return base


def write_bad_lines(con: duckdb.DuckDBPyConnection, ids: IdAllocator, source: str, fmt: str,
                    bad: Sequence[BadLine]) -> None:
    if not bad:
        return
    tbl = pa.Table.from_pylist(
        [{"line_no": b.line_no, "off": b.offset, "reason": b.reason, "raw": raw_text(b.raw), "raw_bytes": b.length}
         for b in bad], schema=REJECT_SCHEMA)
    base = ids.take("rejects", len(bad))
    con.register("bad_lines", tbl)
    try:
        con.execute("INSERT INTO rejects SELECT ? + row_number() OVER () - 1, ?, ?, line_no, off, ?, reason, raw, "
                    "raw_bytes FROM bad_lines", [base, dt.datetime.now(dt.UTC), source, fmt])
    finally:
        con.unregister("bad_lines")


def write_parsed(con: duckdb.DuckDBPyConnection, ids: IdAllocator, parser: LineParser, parsed: Parsed,
                 source: str, first_line_no: int, lines: int, max_raw_bytes: int) -> BatchCounts:
    """Copy `conv` (good rows) into the format's table and the rest of `cls` into rejects."""
    fmt = parser.fmt
    table = TABLES[fmt.table]
    cols = parser.compiled.columns
    counts = count_parsed(table.name, parsed)
    base = ids.take(table.name, lines)
    names = parser.pattern_names_sql()
    col_list = ", ".join(f'"{c}"' for c in cols)
    con.execute(
        f'INSERT INTO {table.name} (id, source, line_no, byte_offset, format, pattern, {col_list}) '
        f"SELECT ? + idx, ?, ? + idx, off, ?, {names}[variant + 1], {col_list} FROM conv WHERE bad = ''",
        [base, source, first_line_no, fmt.name])
    if counts.rejected:
        rbase = ids.take("rejects", lines)
        con.execute(
            "INSERT INTO rejects SELECT ? + idx, ?, ?, ? + idx, off, ?, reason, left(raw, ?), strlen(raw) FROM ("
            "  SELECT idx, off, 'no pattern matched' AS reason, rtrim(line, chr(10)) AS raw FROM cls WHERE k = -2"
            "  UNION ALL"
            "  SELECT conv.idx, conv.off, conv.bad, rtrim(cls.line, chr(10)) FROM conv JOIN cls USING (idx)"
            "  WHERE conv.bad <> '')",
            [rbase, dt.datetime.now(dt.UTC), source, first_line_no, fmt.name, max_raw_bytes])
    return counts



def count_parsed(table_name: str, parsed: Parsed) -> BatchCounts:
    """Per-event (or per-table) counts of a parsed batch, its ignored lines and the reasons of its rejected ones,
    computed on the Arrow tables in memory: a query's fixed cost would dominate the small batches of a quiet log."""
    # (no Python scalar is handed to pyarrow.compute: its first conversion imports pandas, see fraudwatch.arrays)
    counts = BatchCounts()
    for item in pc.value_counts(parsed.cls.column("k")).to_pylist():  # the variant matched; -1 ignored, -2 none
        k, n = item["values"], item["counts"]
        if k == -1:
            counts.ignored += n
        elif k is not None and k < -1:
            counts.rejected += n
            counts.reasons["no pattern matched"] += n
    conv = parsed.conv
    good = pc.invert(pc.cast(pc.utf8_length(conv.column("bad")), pa.bool_()))  # no reason: length 0
    labels = conv.column("event").filter(good) if "event" in conv.column_names else None
    n_good = pc.sum(pc.cast(good, pa.int64())).as_py() or 0
    if labels is not None:
        for item in pc.value_counts(labels).to_pylist():
            counts.parsed[str(item["values"])] += item["counts"]
    elif n_good:
        counts.parsed[table_name] += n_good
    if conv.num_rows > n_good:
        counts.rejected += conv.num_rows - n_good
        for item in pc.value_counts(conv.column("bad").filter(pc.invert(good))).to_pylist():
            counts.reasons[item["values"]] += item["counts"]
    return counts
