"""What each row of a CSV export (CDRs, customers) becomes, as ingest makes it, without a store.

The rows go through ingest's own CSV reading (pieces of whole lines, pyarrow's reader, values trimmed) and its
conversion SQL (`fraudwatch.ingest.csvfiles`), on an in-memory DuckDB. What ingest does with the store — skip
CDRs already stored — has no store to look in here: a flowno repeated within one piece counts once, as ingest
counts it; one repeated across pieces (122,880 rows apart) would count twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from fraudwatch.arrays import int64s
from fraudwatch.config import IngestConfig
from fraudwatch.detect.explain.lines import EVENT, REJECTED, TEXT_KEPT, LineCounts, LineView
from fraudwatch.errors import SourceError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import decode_header, header_columns
from fraudwatch.formats.engine import prepare_connection
from fraudwatch.ingest.csvfiles import conversion_sql, csv_pieces, read_csv_rows
from fraudwatch.sources.reader import open_binary
from fraudwatch.store.schema import TABLES

WRONG_FIELDS = "wrong number of fields"


class CsvStage:
    """Converts a CSV export with one CSV format; `rows` yields each piece's rows as ingest would store them
    (the format's table, and rejects), and `counts` says what the rows became (per table, not per pattern)."""

    def __init__(self, fmt: CsvFormat, source: str, tz: str = "UTC", keep: int = 20,
                 options: IngestConfig | None = None) -> None:
        self.fmt, self.source, self.tz, self.keep = fmt, source, tz, keep
        self.options = options or IngestConfig()
        self.counts = LineCounts()
        self._next_reject = 1

    def rows(self, path: Path) -> Iterator[list[tuple[str, pa.Table]]]:
        opts = self.options
        with open_binary(path) as f:
            header = f.readline(opts.max_line_bytes + 1)
        if len(header) > opts.max_line_bytes:
            raise SourceError(f"{path}: header line longer than {opts.max_line_bytes} bytes: not a CSV export")
        mapping = header_columns(self.fmt, decode_header(header))
        missing = [c for c in self.fmt.required if c not in mapping.values()]
        if missing:
            raise SourceError(f"{path}: header lacks required column(s) {', '.join(missing)} for format "
                              f"{self.fmt.name}")
        select, cols = conversion_sql(self.fmt, mapping, self.tz)
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            prepare_connection(con)  # the conversion's IP function
            line_no, enc = 1, "utf8"  # the header is line 1
            for piece in csv_pieces(path, len(header), opts.chunk_bytes, True, opts.max_line_bytes,
                                 opts.max_raw_bytes):
                if piece.long is not None:
                    line_no += 1
                    self.counts.lines += 1
                    self._reject(line_no, piece.long.reason, piece.long.raw.decode("utf-8", "backslashreplace"))
                    continue
                if not piece.body.strip():
                    continue
                table, invalid, enc = read_csv_rows(piece.body, header, enc)
                total = int(table.num_rows) + len(invalid)
                self.counts.lines += total
                numbers = np.arange(line_no + 1, line_no + total + 1, dtype=np.int64)
                if invalid:
                    numbers = np.delete(numbers, [n - 1 for n, _ in invalid if 0 < n <= total])
                for n, text in invalid:
                    self._reject(line_no + max(n, 0), WRONG_FIELDS, text)
                line_no += total
                if not table.num_rows:
                    continue
                con.register("csvbatch", table.append_column("row", int64s(numbers)))
                try:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE csvconv AS {select}")
                finally:
                    con.unregister("csvbatch")
                lines = piece.body.split(b"\n") if len(self.counts.details) < self.keep \
                    or len(self.counts.problems) < self.keep else []
                yield self._piece_rows(con, cols, lines, line_no - total + 1)
        finally:
            con.close()

    def _reject(self, line_no: int, reason: str, text: str) -> None:
        self.counts.rejected[reason.split(" (")[0]] += 1
        view = LineView(line_no, REJECTED, text[:TEXT_KEPT], reason=reason)
        if len(self.counts.details) < self.keep:
            self.counts.details.append(view)
        if len(self.counts.problems) < self.keep:
            self.counts.problems.append(view)

    def _piece_rows(self, con: duckdb.DuckDBPyConnection, cols: list[str], lines: list[bytes], first: int
                    ) -> list[tuple[str, pa.Table]]:
        """The converted piece in `csvconv` as rows of the format's table (a key repeated in the piece: its first
        row only, as ingest keeps it) and of rejects, counted and kept in detail (`lines`: the piece's lines,
        the first numbered `first`, while details are wanted)."""
        c, table, key = self.counts, TABLES[self.fmt.table], self.fmt.key
        col_list = ", ".join(cols)
        if lines:
            self._details(con, cols, lines, first)
        out: list[tuple[str, pa.Table]] = []
        for reason, n in con.execute("SELECT bad, count(*) FROM csvconv WHERE bad <> '' GROUP BY ALL").fetchall():
            c.rejected[reason] += int(n)
        rejects = con.sql(
            "SELECT ? + row_number() OVER (ORDER BY row) - 1 AS id, now() AS ingested_at, ? AS source, "  # nosec B608 # columns of the schema; values are parameters
            "row AS line_no, NULL::BIGINT AS byte_offset, ? AS format, bad AS reason, "
            f"concat_ws(',', {col_list}) AS raw, NULL::BIGINT AS raw_bytes, "
            f"coalesce({'start_time' if 'start_time' in cols else 'NULL'}, now()) AS ts FROM csvconv "
            "WHERE bad <> '' ORDER BY row", params=[self._next_reject, self.source, self.fmt.name]).to_arrow_table()
        if rejects.num_rows:
            self._next_reject += rejects.num_rows
            out.append(("rejects", rejects))
        good = "SELECT * FROM csvconv WHERE bad = ''"
        if key:
            good += f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY row) = 1"
        extras = {"source": "?", "line_no": "row", "updated_at": "now()"}
        given = {col: col for col in cols} | {n: e for n, e in extras.items() if table.column(n)}
        select = ", ".join(f'{given[col.name]} AS "{col.name}"' if col.name in given
                           else f'NULL::{col.type} AS "{col.name}"' for col in table.columns)
        rows = con.sql(f"SELECT {select} FROM ({good}) g ORDER BY row",  # nosec B608 # schema columns and this module's expressions; values are parameters
                       params=[self.source] if "source" in given else []).to_arrow_table()
        c.patterns[table.name] += rows.num_rows
        c.events[table.name] += rows.num_rows
        c.ignored += int(con.execute("SELECT count(*) FROM csvconv WHERE bad = ''").fetchall()[0][0]) - rows.num_rows
        out.insert(0, (table.name, rows))
        return out

    def _details(self, con: duckdb.DuckDBPyConnection, cols: list[str], lines: list[bytes], first: int) -> None:
        c = self.counts

        def view(values: tuple[Any, ...], names: list[str]) -> LineView:
            row = dict(zip(names, values, strict=True))
            at = int(row["row"]) - first
            text = lines[at].rstrip(b"\r").decode("utf-8", "backslashreplace") if 0 <= at < len(lines) else ""
            return self._view(row, cols, text)

        want = max(self.keep - len(c.details), 0)
        if want:
            cur = con.execute("SELECT * FROM csvconv ORDER BY row LIMIT ?", [want])
            names = [d[0] for d in cur.description or []]
            c.details += [view(v, names) for v in cur.fetchall()]
        want = max(self.keep - len(c.problems), 0)
        if want:
            cur = con.execute("SELECT * FROM csvconv WHERE bad <> '' ORDER BY row LIMIT ?", [want])
            names = [d[0] for d in cur.description or []]
            c.problems += [view(v, names) for v in cur.fetchall()]

    def _view(self, row: dict[str, Any], cols: list[str], text: str) -> LineView:
        fields = {n: row[n] for n in cols if row.get(n) is not None and row.get(n) != ""}
        text = text[:TEXT_KEPT]
        if row["bad"]:
            return LineView(int(row["row"]), REJECTED, text, None, fields, row["bad"])
        return LineView(int(row["row"]), EVENT, text, self.fmt.table, fields)
