"""Backfilling CSV exports (CDRs, customers): header-mapped columns, typed in DuckDB, rejects kept.

A CSV file is read from its stored position to its last complete row (a file still being written is read up to
what is whole; the watcher waits for it to settle). Rows are parsed by pyarrow's CSV reader as text, then
converted in DuckDB like log lines: a row whose essential column is missing or unconvertible goes to `rejects`
with the reason. CDRs already stored (same flowno, e.g. from an overlapping export) are counted as ignored.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.csv as pacsv

from fraudwatch.errors import SourceError
from fraudwatch.formats.compile import convert_expr, lit
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import decode_header, header_columns
from fraudwatch.sources.reader import BadLine, identify, open_binary
from fraudwatch.store import positions
from fraudwatch.store.schema import TABLES
from fraudwatch.store.writer import write_bad_lines

if TYPE_CHECKING:
    from fraudwatch.ingest import FileSummary, Ingestor

_TIME_COLUMNS = ("start_time", "stop_time")


def _time_expr(raw: str, fmt: CsvFormat, tz: str) -> str:
    """Epoch milliseconds (VOS3000's storage), epoch seconds, or datetime text in the source's zone."""
    text = f"NULLIF(trim({raw}), '')"
    formats = ", ".join(lit(f) for f in fmt.time.formats)
    parsed = f"try_strptime({text}, [{formats}])"
    if not fmt.time.has_zone:
        parsed = f"timezone({lit(tz)}, {parsed})"
    as_int = f"TRY_CAST({text} AS BIGINT)"
    return (f"CASE WHEN regexp_full_match({text}, '[0-9]{{12,14}}') THEN make_timestamptz({as_int} * 1000)"
            f" WHEN regexp_full_match({text}, '[0-9]{{9,11}}') THEN make_timestamptz({as_int} * 1000000)"
            f" ELSE {parsed} END")


def conversion_sql(fmt: CsvFormat, mapping: dict[int, str], tz: str) -> tuple[str, list[str]]:
    """SELECT over `csvbatch` (columns c0..cN as text, plus row) giving typed columns and a `bad` reason."""
    table = TABLES[fmt.table]
    by_col = {col: f"c{i}" for i, col in mapping.items()}
    cols, bad = [], []
    for col in by_col:
        column = table.column(col)
        assert column is not None
        raw = by_col[col]
        expr = _time_expr(raw, fmt, tz) if col in _TIME_COLUMNS else convert_expr(column, f"trim({raw})")
        cols.append(col)
        conv = f"{expr} AS {col}"
        by_col[col] = conv
        if col in fmt.required:
            bad.append(f"CASE WHEN NULLIF(trim({raw}), '') IS NULL THEN 'missing {col}' "
                       f"WHEN {col} IS NULL THEN 'bad {col}' END")
        else:
            bad.append(f"CASE WHEN NULLIF(trim({raw}), '') IS NOT NULL AND {col} IS NULL THEN 'bad {col}' END")
    raws = ", ".join(f"c{i}" for i in mapping)
    inner = f"SELECT row, raw, {', '.join(by_col[c] for c in cols)}, {raws} FROM csvbatch"
    outer = f"SELECT row, raw, {', '.join(cols)}, concat_ws(', ', {', '.join(bad)}) AS bad FROM ({inner})"
    return outer, cols


def _read_rows(path: Path, start: int, header: bytes, final: bool) -> tuple[pa.Table, list[tuple[int, str]], int]:
    """Rows after `start` as text columns, invalid rows (row number, text), and the offset of the end."""
    with open_binary(path) as f:
        data = f.read()
    end = len(data) if final and data and not data.endswith(b"\n") else data.rfind(b"\n") + 1
    body = data[start:end]
    if not body.strip():
        return pa.table({}), [], end
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append((int(row.number) if row.number is not None else -1, row.text))
        return "skip"

    names = [f"c{i}" for i in range(len(decode_header(header).rstrip("\r\n").split(",")))]
    enc = "utf8"
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
    return table, invalid, end


def ingest_csv(ing: Ingestor, path: Path, fmt: CsvFormat, tz: str, summary: FileSummary) -> None:
    ident = identify(path)
    if ident is None:
        return
    con = ing.con
    with open_binary(path) as f:
        header = f.readline()
    mapping = header_columns(fmt, decode_header(header))
    missing = [c for c in fmt.required if c not in mapping.values()]
    if missing:
        raise SourceError(f"{path}: header lacks required column(s) {', '.join(missing)} for format {fmt.name}")
    pos = positions.find(con, path, ident)
    start = max(pos.byte_offset if pos else 0, len(header))
    line_no = pos.line_no if pos and pos.line_no else 1
    data_start_line = line_no  # lines consumed so far (header counts as line 1)
    table, invalid, end = _read_rows(path, start, header, final=path.suffix == ".gz")
    summary.end_offset = max(end, start)
    if end <= start and pos is not None:
        return
    # Row numbers: pyarrow numbers rows from 1 over what it read (valid and invalid alike).
    bad_numbers = {n for n, _ in invalid}
    total_rows = table.num_rows + len(invalid)
    valid_numbers = [n for n in range(1, total_rows + 1) if n not in bad_numbers]
    rows = pa.array([data_start_line + n for n in valid_numbers], pa.int64())
    raw = pa.array([""] * table.num_rows, pa.string())
    batch = table.append_column("row", rows).append_column("raw", raw) if table.num_rows else None
    cap = ing.options.max_raw_bytes
    bad_lines = [BadLine(data_start_line + max(n, 0), -1, "wrong number of fields",
                         text.encode("utf-8", "replace")[:cap], len(text)) for n, text in invalid]
    con.execute("BEGIN")
    try:
        parsed = ignored = rejected = 0
        if batch is not None:
            select, cols = conversion_sql(fmt, mapping, tz)
            con.register("csvbatch", batch)
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE csvconv AS {select}")
            finally:
                con.unregister("csvbatch")
            parsed, ignored, rejected = _store_rows(ing, fmt, cols, str(path), summary)
        write_bad_lines(con, ing.ids, str(path), fmt.name, bad_lines)
        positions.advance(con, pos, path, ident, fmt.name, end, data_start_line + total_rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    summary.lines += total_rows
    summary.counts.parsed[fmt.table] += parsed
    summary.counts.ignored += ignored
    summary.counts.rejected += rejected + len(bad_lines)
    if bad_lines:
        summary.counts.reasons["wrong number of fields"] += len(bad_lines)


def _store_rows(ing: Ingestor, fmt: CsvFormat, cols: list[str], source: str,
                summary: FileSummary) -> tuple[int, int, int]:
    con = ing.con
    table = TABLES[fmt.table]
    key = fmt.key
    col_list = ", ".join(cols)
    now = dt.datetime.now(dt.UTC)
    # Rejects: rows with a bad essential or an unconvertible value.
    for reason, n in con.execute("SELECT bad, count(*) FROM csvconv WHERE bad <> '' GROUP BY ALL").fetchall():
        summary.counts.reasons[reason] += n
    rej = con.execute("SELECT count(*) FROM csvconv WHERE bad <> ''").fetchall()[0]
    rejected = int(rej[0]) if rej else 0
    if rejected:
        base = ing.ids.take("rejects", rejected)
        con.execute("INSERT INTO rejects SELECT ? + row_number() OVER () - 1, ?, ?, row, NULL, ?, bad, "
                    f"concat_ws(',', {col_list}), NULL FROM csvconv WHERE bad <> ''", [base, now, source, fmt.name])
    good = f"SELECT * FROM csvconv WHERE bad = '' QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY row) = 1"
    extra_cols, extra_vals = "", ""
    if table.column("source"):
        extra_cols += ", source"
        extra_vals += f", {lit(source)}"
    if table.column("line_no"):
        extra_cols += ", line_no"
        extra_vals += ", row"
    if table.column("updated_at"):
        extra_cols += ", updated_at"
        extra_vals += ", now()"
    total = con.execute("SELECT count(*) FROM csvconv WHERE bad = ''").fetchall()[0]
    good_rows = int(total[0]) if total else 0
    if fmt.table == "customers":
        # The newest load of an account replaces what was known of it.
        con.execute(f"DELETE FROM customers WHERE account IN (SELECT account FROM ({good}))")
        con.execute(f"INSERT INTO customers ({col_list}{extra_cols}) SELECT {col_list}{extra_vals} FROM ({good})")
        return good_rows, 0, rejected
    # CDRs: skip rows whose key is already stored (overlapping exports), looking only at the batch's time range.
    cur = con.execute(
        f"INSERT INTO {table.name} ({col_list}{extra_cols}) SELECT {col_list}{extra_vals} FROM ({good}) g "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table.name} t WHERE t.{key} = g.{key} "
        f"AND t.start_time BETWEEN (SELECT min(start_time) FROM csvconv) AND (SELECT max(start_time) FROM csvconv))")
    inserted_row = cur.fetchall()[0]
    inserted = int(inserted_row[0]) if inserted_row else 0
    return inserted, good_rows - inserted, rejected
