"""The single writer: turns parsed batches into the store's rows, with their rejects and the read position, in one
transaction per batch — so a crash at any instant leaves either the whole batch and its position, or neither.
The rows go to the event tables' segments (`fraudwatch.store.segments`), which the caller's
`Segments.transaction()` commits together with the position.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.arrays import bools, instant, int64_values, int64s, repeated, strings, utc_micros
from fraudwatch.formats.engine import LineParser, Parsed
from fraudwatch.sources.reader import BadLine, Identity
from fraudwatch.store import positions
from fraudwatch.store.compaction import maybe_compact
from fraudwatch.store.schema import TABLES, arrow_schema
from fraudwatch.store.segments import Segments, next_id


@dataclass
class BatchCounts:
    parsed: Counter[str] = field(default_factory=Counter)  # per event type (or table)
    ignored: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    repaired: int = 0  # lines whose bytes were repaired (invalid UTF-8, NUL), whatever became of them

    def add(self, other: BatchCounts) -> None:
        self.parsed.update(other.parsed)
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.repaired += other.repaired
        self.reasons.update(other.reasons)


def raw_text(raw: bytes) -> str:
    """Bytes as storable text: invalid UTF-8 as \\xNN, NUL as \\x00 (DuckDB text must be valid UTF-8)."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def full_rows(table: str, columns: dict[str, pa.Array | pa.ChunkedArray], n: int) -> pa.Table:
    """A table's rows from the columns given; the others NULL."""
    schema = arrow_schema(table)
    return pa.table([columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema],
                    schema=schema)


class IdAllocator:
    """Row ids per table: the writer is the only one, so the highest id at open plus a running count is unique."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.next: dict[str, int] = {}

    def take(self, table: str, count: int) -> int:
        if table not in self.next:
            self.next[table] = next_id(self.con, table)
        base = self.next[table]
        self.next[table] = base + count
        return base


def bad_line_rows(ids: IdAllocator, source: str, fmt: str, bad: Sequence[BadLine],
                  ts: dt.datetime | None = None) -> pa.Table | None:
    """Lines the reader could not take (too long, wrong number of fields, ...) as rows of rejects; their time
    `ts` (the last line's before them), else when they were rejected."""
    if not bad:
        return None
    n = len(bad)
    base = ids.take("rejects", n)
    now = now_micros()
    at = now if ts is None else (ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    return full_rows("rejects", {
        "id": int64s(np.arange(base, base + n)),
        "ingested_at": utc_micros(np.full(n, now)),
        "ts": utc_micros(np.full(n, at)),
        "source": repeated(source, n),
        "line_no": int64s(np.array([b.line_no for b in bad])),
        "byte_offset": int64s(np.array([b.offset for b in bad])),
        "format": repeated(fmt, n),
        "reason": strings([b.reason for b in bad]),
        "raw": strings([raw_text(b.raw) for b in bad]),
        "raw_bytes": int64s(np.array([b.length for b in bad]))}, n)


def now_micros() -> int:
    return (dt.datetime.now(dt.UTC) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


def parsed_rows(con: duckdb.DuckDBPyConnection, ids: IdAllocator, parser: LineParser, parsed: Parsed, source: str,
                first_line_no: int, lines: int, max_raw_bytes: int, repaired: np.ndarray | None = None,
                before: dt.datetime | None = None) -> tuple[BatchCounts, list[tuple[str, pa.Table]]]:
    """The good rows of `conv` as rows of the format's table, the rest of `cls` as rows of rejects (the good ones
    built in Arrow: no query), with the batch's counts; `cls` and `conv` are registered on `con` by the parse.
    `repaired` lists the line indexes whose bytes were repaired (`fraudwatch.sources.lines`): their rows say so.
    A reject's `ts` is the time of the last good line before it in the batch, else `before` (the file's last
    time before the batch), else now."""
    out: list[tuple[str, pa.Table]] = []
    fmt = parser.fmt
    table = TABLES[fmt.table]
    counts = count_parsed(table.name, parsed)
    base = ids.take(table.name, lines)
    conv = parsed.conv
    mask = good_mask(conv)
    good = conv if conv.num_rows == pc.sum(pc.cast(mask, pa.int64())).as_py() else conv.filter(mask)
    n = good.num_rows
    if n:
        idx = int64_values(pc.cast(good.column("idx"), pa.int64()))
        names = strings([v.pattern.name for v in parser.compiled.variants])
        columns: dict[str, pa.Array | pa.ChunkedArray] = {c: good.column(c) for c in parser.compiled.columns}
        columns.update({
            "id": int64s(idx + base),
            "source": repeated(source, n),
            "line_no": int64s(idx + first_line_no),
            "byte_offset": good.column("off"),
            "format": repeated(fmt.name, n),
            "pattern": pc.take(names, good.column("variant"))})
        if table.column("repaired") is not None:
            fixed = repaired if repaired is not None and len(repaired) else None
            columns["repaired"] = bools(np.zeros(n, dtype=bool) if fixed is None else np.isin(idx, fixed))
        out.append((table.name, full_rows(table.name, columns, n)))
    if counts.rejected:
        rbase = ids.take("rejects", lines)
        now = dt.datetime.now(dt.UTC)
        rejects = con.sql(
            "SELECT ? + r.idx AS id, ?::TIMESTAMPTZ AS ingested_at, ? AS source, ? + r.idx AS line_no, "
            "r.off AS byte_offset, ? AS format, reason, left(raw, ?) AS raw, strlen(raw) AS raw_bytes, "
            "coalesce(g.ts, ?::TIMESTAMPTZ, ?::TIMESTAMPTZ) AS ts FROM ("
            "  SELECT idx, off, 'no pattern matched' AS reason, rtrim(line, chr(10)) AS raw FROM cls WHERE k = -2"
            "  UNION ALL"
            "  SELECT conv.idx, conv.off, conv.bad, rtrim(cls.line, chr(10)) FROM conv JOIN cls USING (idx)"
            "  WHERE conv.bad <> '') r"
            " ASOF LEFT JOIN (SELECT idx, ts FROM conv WHERE bad = '' AND ts IS NOT NULL) g ON r.idx > g.idx"
            " ORDER BY r.idx",
            params=[rbase, now, source, first_line_no, fmt.name, max_raw_bytes, before, now]).to_arrow_table()
        out.append(("rejects", rejects))
    return counts, out


def latest_time(conv: pa.Table) -> dt.datetime | None:
    """The newest time among `conv`'s good rows (None: none has one)."""
    if not conv.num_rows or "ts" not in conv.column_names:
        return None
    return instant(pc.max(conv.column("ts").filter(good_mask(conv))))  # (`as_py` would import pandas)


def good_mask(conv: pa.Table) -> pa.ChunkedArray:
    """Which rows of `conv` converted everywhere (`bad` empty, length 0)."""
    return pc.invert(pc.cast(pc.utf8_length(conv.column("bad")), pa.bool_()))

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
    good = good_mask(conv)
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


class Committer:
    """Commits a chunk's rows and its file's new position on a writer thread, one chunk at a time, in order, while
    the caller parses the next chunk: the Parquet encoding runs without the GIL, beside DuckDB's parse (figures:
    benchmarks/RESULTS.md, "Parse and write overlapped"). `settle` waits for the chunk under way."""

    def __init__(self, con: duckdb.DuckDBPyConnection, segments: Segments) -> None:
        self.con = con
        self.segments = segments
        self._pool: ThreadPoolExecutor | None = None  # made at the first chunk
        self._cursor: duckdb.DuckDBPyConnection | None = None  # the writer thread's connection
        self._pending: Future[positions.Position] | None = None

    def submit(self, rows: list[tuple[str, pa.Table]], path: Path, ident: Identity, pos: positions.Position | None,
               fmt: str, end_offset: int, end_line_no: int) -> None:
        assert self._pending is None, "settle the chunk under way first"
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fraudwatch-write")
            self._cursor = self.con.cursor()
        self._pending = self._pool.submit(self._commit, rows, path, ident, pos, fmt, end_offset, end_line_no)

    def settle(self) -> positions.Position | None:
        """The position the chunk under way committed (its error, raised here); None when none is under way."""
        pending, self._pending = self._pending, None
        return pending.result() if pending is not None else None

    def _commit(self, rows: list[tuple[str, pa.Table]], path: Path, ident: Identity, pos: positions.Position | None,
                fmt: str, end_offset: int, end_line_no: int) -> positions.Position:
        con = self._cursor
        assert con is not None
        with self.segments.transaction(con):
            for table, got in rows:
                self.segments.append(table, got)
            new_pos = positions.advance(con, pos, path, ident, fmt, end_offset, end_line_no)
        maybe_compact(self.segments, con)
        return new_pos
