"""Backfilling CSV exports (CDRs, customers): header-mapped columns, typed in DuckDB, rejects kept.

A CSV file is read from its stored position to its last complete row (a file still being written is read up to
what is whole; the watcher waits for it to settle). Rows are parsed by pyarrow's CSV reader as text, then
trimmed of surrounding whitespace and converted in DuckDB like log lines: a row whose essential column is missing
or unconvertible goes to `rejects` with the reason. CDRs already stored (same flowno, e.g. from an overlapping
export) are counted as ignored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from fraudwatch.arrays import int64s
from fraudwatch.config import IngestConfig
from fraudwatch.errors import SourceError
from fraudwatch.formats.compile import convert_expr
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import decode_header, header_columns
from fraudwatch.ingest.summary import FileSummary
from fraudwatch.ingest.writer import Committer, IdAllocator, bad_line_rows
from fraudwatch.sources.reader import BadLine, Identity, identify, open_binary
from fraudwatch.sqltext import lit
from fraudwatch.store import positions
from fraudwatch.store.schema import TABLES
from fraudwatch.store.segments import Segments


class IngestContext(Protocol):
    """What a CSV ingest needs of the ingest that calls it (`fraudwatch.ingest.files.Ingestor`)."""

    con: duckdb.DuckDBPyConnection
    options: IngestConfig
    ids: IdAllocator
    segments: Segments
    committer: Committer
    on_commit: Callable[[str, str], None] | None

_TIME_COLUMNS = ("start_time", "stop_time")


def _time_expr(raw: str, fmt: CsvFormat, tz: str) -> str:
    """Epoch milliseconds (VOS3000's storage), epoch seconds, or datetime text in the source's zone."""
    text = f"NULLIF({raw}, '')"
    formats = ", ".join(lit(f) for f in fmt.time.formats)
    parsed = f"try_strptime({text}, [{formats}])"
    if not fmt.time.has_zone:
        parsed = f"timezone({lit(tz)}, {parsed})"
    as_int = f"TRY_CAST({text} AS BIGINT)"
    return (f"CASE WHEN regexp_full_match({text}, '[0-9]{{12,14}}') THEN make_timestamptz({as_int} * 1000)"
            f" WHEN regexp_full_match({text}, '[0-9]{{9,11}}') THEN make_timestamptz({as_int} * 1000000)"
            f" ELSE {parsed} END")


def conversion_sql(fmt: CsvFormat, mapping: dict[int, str], tz: str) -> tuple[str, list[str]]:
    """SELECT over `csvbatch` (columns c0..cN as trimmed text, plus row) giving typed columns and a `bad`
    reason."""
    table = TABLES[fmt.table]
    by_col = {col: f"c{i}" for i, col in mapping.items()}
    cols, bad = [], []
    for col in by_col:
        column = table.column(col)
        assert column is not None
        raw = by_col[col]
        expr = _time_expr(raw, fmt, tz) if col in _TIME_COLUMNS else convert_expr(column, raw)
        cols.append(col)
        conv = f"{expr} AS {col}"
        by_col[col] = conv
        if col in fmt.required:
            bad.append(f"CASE WHEN NULLIF({raw}, '') IS NULL THEN 'missing {col}' "
                       f"WHEN {col} IS NULL THEN 'bad {col}' END")
        else:
            bad.append(f"CASE WHEN NULLIF({raw}, '') IS NOT NULL AND {col} IS NULL THEN 'bad {col}' END")
    raws = ", ".join(f"c{i}" for i in mapping)
    inner = f"SELECT row, {', '.join(by_col[c] for c in cols)}, {raws} FROM csvbatch"  # nosec B608 # columns checked against the schema (csvspec); c<i> positional names
    outer = f"SELECT row, {', '.join(cols)}, concat_ws(', ', {', '.join(bad)}) AS bad FROM ({inner})"  # nosec B608 # columns checked against the schema (csvspec)
    return outer, cols


# Rows a CSV piece holds. Two pieces are in memory at once (one converted, the one before written as a segment);
# pieces of 122,880 rows backfill as fast as pieces twice that size, with 130-170 MB less at the peak, and far
# smaller pieces pay each piece's fixed cost (figures: benchmarks/RESULTS.md, "CSV pieces of one row group").
# The size is DuckDB's row group, which the conversion's parallel scan splits the piece by.
ROW_GROUP = 122_880
PIECE_ROWS = ROW_GROUP
PIECE_BLOCKS = 4  # reads of `[ingest] chunk_bytes` a piece may take at most: 546-byte rows on average by default


@dataclass
class CsvPiece:
    """Whole lines of a CSV file (`body`), the offset just after them, and an over-long line met after them
    (`long`, its line number still 0: the caller numbers it), which was never held whole."""

    body: bytes
    end: int
    long: BadLine | None = None


def csv_pieces(path: Path, start: int, size: int, final: bool, max_line: int = 64 << 10,
               max_raw: int = 4096) -> Iterator[CsvPiece]:
    """The file from `start` in pieces of PIECE_ROWS whole lines (a CSV row is one line: values with newlines
    are refused); read `size` bytes at a time. A piece of PIECE_BLOCKS reads that has not reached PIECE_ROWS
    lines (long lines) ends at its last whole line. A line longer than `max_line` is skipped to its end without
    being held (a piece of its own, `long`: memory stays bounded whatever one line holds). The last piece has the
    lines left; its unterminated last line is held back unless `final` (a compressed file is complete)."""
    block = max(size, 1 << 16)
    with open_binary(path) as f:
        f.seek(start)
        data, offset, want = b"", start, block
        while True:
            more = f.read(want)
            data += more
            while (cut := _after_lines(data, PIECE_ROWS)) is not None:
                yield CsvPiece(data[:cut], offset + cut)
                data, offset = data[cut:], offset + cut
            cut = data.rfind(b"\n") + 1
            if len(data) - cut > max_line:  # the line after the last whole one is too long: skip it
                if cut:
                    yield CsvPiece(data[:cut], offset + cut)
                skipped = _skip_line(f, data[cut:], offset + cut, block, final, max_raw)
                if skipped is None:  # a plain file that ends inside it: read again once it is whole
                    return
                long, data, offset = skipped
                yield CsvPiece(b"", offset, long)
                continue
            if not more:
                break
            if len(data) >= PIECE_BLOCKS * block and cut:  # long lines: bound memory
                yield CsvPiece(data[:cut], offset + cut)
                data, offset = data[cut:], offset + cut
            # next, about what the piece still lacks at the mean line length seen (a copy of `data` each time)
            lines = data.count(b"\n")
            want = min(block, max(1 << 16, (PIECE_ROWS - lines) * (len(data) // max(lines, 1)) * 9 // 8))
        cut = data.rfind(b"\n") + 1
        if cut:
            yield CsvPiece(data[:cut], offset + cut)
            data, offset = data[cut:], offset + cut
        if final and data:
            yield CsvPiece(data, offset + len(data))


def _skip_line(f: BinaryIO, head: bytes, at: int, block: int, final: bool,
               max_raw: int) -> tuple[BadLine, bytes, int] | None:
    """Read past the over-long line at offset `at`, whose first bytes (no newline among them) are `head`: the
    line as a BadLine (its first `max_raw` bytes, its length), the bytes read after it, and the offset just after
    it; None when a file still being written ends inside it."""
    raw, length = head[:max_raw], len(head)
    while True:
        more = f.read(block)
        if not more:
            if not final:
                return None
            return BadLine(0, at, f"line too long ({length} bytes)", raw, length), b"", at + length
        nl = more.find(b"\n")
        if nl >= 0:
            length += nl
            return BadLine(0, at, f"line too long ({length} bytes)", raw, length), more[nl + 1:], at + length + 1
        length += len(more)


def _after_lines(data: bytes, lines: int, stride: int = 1 << 20) -> int | None:
    """The offset just after the `lines`-th newline of `data`, or None when it holds fewer: counted a stride at
    a time (bytes.count runs in C), then found line by line only within the stride that holds it."""
    pos = 0
    while pos < len(data):
        n = data.count(b"\n", pos, pos + stride)
        if n >= lines:
            for _ in range(lines):
                pos = data.index(b"\n", pos) + 1
            return pos
        lines -= n
        pos += stride
    return None


def read_csv_rows(body: bytes, header: bytes, enc: str) -> tuple[pa.Table, list[tuple[int, str]], str]:
    """`body`'s rows as text columns, its invalid rows (row number, text), and the encoding it was read in:
    UTF-8, or GB18030 (VOS3000's Chinese locale) once a piece is not UTF-8, for the rest of the file."""
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((int(row.number) if row.number is not None else -1, row.text))
        return "skip"

    names = [f"c{i}" for i in range(len(decode_header(header).rstrip("\r\n").split(",")))]
    if enc == "utf8":
        try:
            header.decode("utf-8-sig")
            body.decode("utf-8")
        except UnicodeDecodeError:
            enc = "gb18030"
    table = pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(column_names=names, encoding=enc, use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    # Whitespace around a value is not part of it. Trimmed here, by Arrow, once a column: DuckDB's trim() in the
    # conversion took most of its time, and it left tabs in place (figures: benchmarks/RESULTS.md, "CSV values
    # trimmed by Arrow"). Column by column, each untrimmed one freed as its trimmed one comes.
    for i, name in enumerate(table.column_names):
        table = table.set_column(i, name, pc.utf8_trim_whitespace(table.column(i)))
    return table, invalid, enc


def ingest_csv(ing: IngestContext, path: Path, fmt: CsvFormat, tz: str, summary: FileSummary) -> None:
    """Rows after the stored position, in pieces of PIECE_ROWS lines, each committed with its
    rejects and the new position (memory stays bounded, and `ing.on_commit` sees rows as they are stored)."""
    ident = identify(path)
    if ident is None:
        return
    con = ing.con
    opts = ing.options
    with open_binary(path) as f:
        header = f.readline(opts.max_line_bytes + 1)
    if len(header) > opts.max_line_bytes:
        raise SourceError(f"{path}: header line longer than {opts.max_line_bytes} bytes ([ingest] max_line_bytes):"
                          " not a CSV export")
    mapping = header_columns(fmt, decode_header(header))
    missing = [c for c in fmt.required if c not in mapping.values()]
    if missing:
        raise SourceError(f"{path}: header lacks required column(s) {', '.join(missing)} for format {fmt.name}")
    pos = positions.find(con, path, ident)
    start = max(pos.byte_offset if pos else 0, len(header))
    line_no = pos.line_no if pos and pos.line_no else 1  # lines consumed so far (the header is line 1)
    summary.end_offset = start
    file = _CsvFile(ing, path, ident, fmt, conversion_sql(fmt, mapping, tz), summary, pos)
    enc = "utf8"
    try:
        for got in csv_pieces(path, start, opts.chunk_bytes, path.suffix == ".gz", opts.max_line_bytes,
                           opts.max_raw_bytes):
            if got.long is not None:  # a line it could not hold: kept aside, numbered, the reading goes on
                line_no = file.piece(pa.table({}), [], got.end, line_no,
                                     [dataclasses.replace(got.long, line_no=line_no + 1)])
                continue
            table, invalid, enc = (pa.table({}), [], enc) if not got.body.strip() \
                else read_csv_rows(got.body, header, enc)
            line_no = file.piece(table, invalid, got.end, line_no)
    finally:
        file.settle()  # a commit under way completes and counts, whatever stopped the reading
    if file.pos is None:  # nothing after the header yet: the file is known from now on
        file.piece(pa.table({}), [], start, line_no)
        file.settle()


def _reasons(bad: list[BadLine]) -> Counter[str]:
    return Counter(b.reason.split(" (")[0] for b in bad)


@dataclass
class _Pending:
    """A piece the writer thread commits, and what it counts once committed."""

    end: int
    lines: int
    parsed: int
    ignored: int
    rejected: int
    bad: Counter[str]  # lines kept aside before conversion (wrong number of fields, too long), by reason


class _CsvFile:
    """One CSV file's pieces: each converted here, its rows committed on the writer thread (`Committer`) while
    the next piece is read and converted; customers, a table whose rows are replaced, commit here."""

    def __init__(self, ing: IngestContext, path: Path, ident: Identity, fmt: CsvFormat,
                 conversion: tuple[str, list[str]], summary: FileSummary, pos: positions.Position | None) -> None:
        self.ing, self.path, self.ident, self.fmt, self.summary = ing, path, ident, fmt, summary
        self.conversion = conversion  # conversion_sql's SELECT and columns
        self.pos = pos
        self.pending: _Pending | None = None

    def piece(self, table: pa.Table, invalid: list[tuple[int, str]], end: int, line_no: int,
              long: list[BadLine] | None = None) -> int:
        """A piece's rows, its rejects (and the over-long `long` lines, read past without being held) and the
        file's new position, committed together; returns the lines consumed after it."""
        ing, path, fmt = self.ing, self.path, self.fmt
        con = ing.con
        # Row numbers: pyarrow numbers rows from 1 over what it read (valid and invalid alike).
        total_rows = int(table.num_rows) + len(invalid) + len(long or [])
        numbers = np.arange(line_no + 1, line_no + total_rows + 1, dtype=np.int64)
        if invalid:
            numbers = np.delete(numbers, [n - 1 for n, _ in invalid if 0 < n <= total_rows])
        batch = table.append_column("row", int64s(numbers)) if table.num_rows else None
        cap = ing.options.max_raw_bytes
        bad_lines = [BadLine(line_no + max(n, 0), -1, "wrong number of fields",
                             text.encode("utf-8", "replace")[:cap], len(text)) for n, text in invalid] + (long or [])
        select, cols = self.conversion
        if batch is not None:
            con.register("csvbatch", batch)
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE csvconv AS {select}")
            finally:
                con.unregister("csvbatch")
        self.settle()  # the piece before is stored: the look-up of CDRs already stored sees its rows
        rows: list[tuple[str, pa.Table]] = []
        counts = (0, 0, 0)
        if fmt.table == "customers":
            with ing.segments.transaction():
                if batch is not None:
                    counts = _store_rows(ing, fmt, cols, str(path), self.summary, rows)
                self._add_bad(rows, bad_lines)
                for name, got in rows:
                    ing.segments.append(name, got)
                self.pos = positions.advance(con, self.pos, path, self.ident, fmt.name, end, line_no + total_rows)
            self._account(_Pending(end, total_rows, *counts, _reasons(bad_lines)))
            return line_no + total_rows
        if batch is not None:
            counts = _store_rows(ing, fmt, cols, str(path), self.summary, rows)
        self._add_bad(rows, bad_lines)
        ing.committer.submit(rows, path, self.ident, self.pos, fmt.name, end, line_no + total_rows)
        self.pending = _Pending(end, total_rows, *counts, _reasons(bad_lines))
        return line_no + total_rows

    def _add_bad(self, rows: list[tuple[str, pa.Table]], bad_lines: list[BadLine]) -> None:
        bad = bad_line_rows(self.ing.ids, str(self.path), self.fmt.name, bad_lines)
        if bad is not None:
            rows.append(("rejects", bad))

    def settle(self) -> None:
        """Wait for the piece the writer thread commits, and count it."""
        if self.pending is None:
            return
        done, self.pending = self.pending, None
        self.pos = self.ing.committer.settle()
        self._account(done)

    def _account(self, done: _Pending) -> None:
        summary = self.summary
        summary.lines += done.lines
        summary.counts.parsed[self.fmt.table] += done.parsed
        summary.counts.ignored += done.ignored
        summary.counts.rejected += done.rejected + done.bad.total()
        summary.counts.reasons.update(done.bad)
        summary.end_offset = done.end
        if self.ing.on_commit is not None:
            self.ing.on_commit(self.fmt.table, str(self.path))


def _store_rows(ing: IngestContext, fmt: CsvFormat, cols: list[str], source: str, summary: FileSummary,
                out: list[tuple[str, pa.Table]]) -> tuple[int, int, int]:
    """The piece in `csvconv`: customers replaced in their table; CDR rows and rejects added to `out`; returns
    the rows parsed, ignored (CDRs already stored) and rejected."""
    con = ing.con
    table = TABLES[fmt.table]
    key = fmt.key
    col_list = ", ".join(cols)
    now = dt.datetime.now(dt.UTC)
    # Rejects: rows with a bad essential or an unconvertible value.
    rejected = 0
    for reason, n in con.execute("SELECT bad, count(*) FROM csvconv WHERE bad <> '' GROUP BY ALL").fetchall():
        summary.counts.reasons[reason] += n
        rejected += int(n)
    if rejected:
        base = ing.ids.take("rejects", rejected)
        out.append(("rejects", con.sql(
            "SELECT ? + row_number() OVER (ORDER BY row) - 1 AS id, ?::TIMESTAMPTZ AS ingested_at, ? AS source, "  # nosec B608 # column names of the schema; values are parameters
            "row AS line_no, NULL::BIGINT AS byte_offset, ? AS format, bad AS reason, "
            f"concat_ws(',', {col_list}) AS raw, NULL::BIGINT AS raw_bytes, "
            f"coalesce({'start_time' if 'start_time' in cols else 'NULL'}, ?::TIMESTAMPTZ) AS ts FROM csvconv "
            "WHERE bad <> '' ORDER BY row", params=[base, now, source, fmt.name, now]).to_arrow_table()))
    # A key twice in the piece (an export repeating a row): its first row only. Checked first: the check is far
    # cheaper than the window that keeps first rows (figures: benchmarks/RESULTS.md, "CSV repeated keys checked
    # before deduplicating").
    good_rows, repeats = con.execute(
        f"SELECT count(*), count(*) - count(DISTINCT {key}) FROM csvconv WHERE bad = ''").fetchall()[0]  # nosec B608 # key: a column of the schema
    good = "SELECT * FROM csvconv WHERE bad = ''"
    if repeats:
        good += f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY row) = 1"
    extras = {"source": lit(source), "line_no": "row", "updated_at": "now()"}
    extras = {name: expr for name, expr in extras.items() if table.column(name)}
    extra_cols = "".join(f", {name}" for name in extras)
    if fmt.table == "customers":
        # The newest load of an account replaces what was known of it.
        extra_vals = "".join(f", {expr}" for expr in extras.values())
        con.execute(f"DELETE FROM customers WHERE account IN (SELECT account FROM ({good}))")  # nosec B608 # good: a constant query of this module
        con.execute(f"INSERT INTO customers ({col_list}{extra_cols}) SELECT {col_list}{extra_vals} FROM ({good})")  # nosec B608 # columns of the schema and expressions of this module
        return good_rows, 0, rejected
    # CDRs: skip rows whose key is already stored (overlapping exports), looking only at the batch's time range;
    # when nothing is stored in that range (a file read in pieces, a new day) there is nothing to look up.
    lo, hi = con.execute("SELECT min(start_time), max(start_time) FROM csvconv WHERE bad = ''").fetchall()[0]
    (stored,) = con.execute(f"SELECT count(*) FROM {table.name} WHERE start_time BETWEEN ? AND ?",  # nosec B608 # a table of the schema; values are parameters
                            [lo, hi]).fetchall()[0]
    new = "" if not stored else (f" WHERE NOT EXISTS (SELECT 1 FROM {table.name} t WHERE t.{key} = g.{key} "  # nosec B608 # a table and its key column from the schema
                                 "AND t.start_time BETWEEN ? AND ?)")
    given = {c: c for c in cols} | extras
    select = ", ".join(f'{given[c.name]} AS "{c.name}"' if c.name in given else f'NULL::{c.type} AS "{c.name}"'
                       for c in table.columns)
    # In file order, as the lines came.
    rows = con.sql(f"SELECT {select} FROM ({good}) g{new} ORDER BY row",  # nosec B608 # schema columns and this module's expressions; values are parameters
                   params=[lo, hi] if stored else []).to_arrow_table()
    out.append((table.name, rows))
    inserted = rows.num_rows
    return inserted, good_rows - inserted, rejected
