"""Running a compiled line format over a batch of lines inside DuckDB.

`LineParser.parse(con, batch)` leaves two temp tables on the connection — `cls` (every line and its pattern
index `k`) and `conv` (typed rows for matched lines, with `bad` naming failed conversions) — which the ingest
writer copies into the store and `fraudwatch formats test` reads back. Both callers therefore run the very same
SQL, so what `formats test` reports is what ingest will do.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType

from fraudwatch.formats.compile import CompiledFormat, compile_format
from fraudwatch.formats.spec import LineFormat
from fraudwatch.netaddr import canonical_ip_array

SLICE_ROWS = 1 << 16  # rows per Arrow record batch: DuckDB parallelises an Arrow scan by batch


def prepare_connection(con: duckdb.DuckDBPyConnection) -> None:
    """Register the helper functions the compiled SQL uses (idempotent per connection)."""
    with contextlib.suppress(duckdb.CatalogException, duckdb.NotImplementedException):  # already registered
        con.create_function("fw_ip", canonical_ip_array, [duckdb.sqltype("VARCHAR")],
                            duckdb.sqltype("VARCHAR"), type=PythonUDFType.ARROW,
                            null_handling=FunctionNullHandling.SPECIAL,
                            side_effects=False)


@dataclass(frozen=True)
class Parsed:
    """A parsed batch: `cls` (idx, off, line, k) for every line, `conv` (typed rows, `bad`) for matched ones."""

    cls: pa.Table
    conv: pa.Table

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register("cls", self.cls)
        con.register("conv", self.conv)


@functools.lru_cache(maxsize=64)
def compiled(fmt: LineFormat, tz: str, year: int, ref_epoch: float) -> CompiledFormat:
    return compile_format(fmt, tz, year, ref_epoch)


class LineParser:
    """Parses batches of one format for one source (its zone and reference time fix the SQL)."""

    def __init__(self, fmt: LineFormat, tz: str = "UTC", ref_epoch: float = 0.0) -> None:
        import datetime as dt

        year = dt.datetime.fromtimestamp(ref_epoch, dt.UTC).year if ref_epoch else dt.datetime.now(dt.UTC).year
        self.fmt = fmt
        self.compiled = compiled(fmt, tz, year, ref_epoch or dt.datetime.now(dt.UTC).timestamp())

    def parse(self, con: duckdb.DuckDBPyConnection, batch: pa.Table) -> Parsed:
        """Parse `batch` (columns idx BIGINT, off BIGINT, line VARCHAR); leaves `cls` and `conv` registered.

        Both stay Arrow tables on the Python side (cheaper than DuckDB temp tables, which compress what they
        store), sliced so that DuckDB scans them on all cores, and can be registered on another connection.
        """
        batch = pa.Table.from_batches(batch.to_batches(max_chunksize=SLICE_ROWS), schema=batch.schema)
        con.register("batch", batch)
        try:
            k = con.sql(self.compiled.classify_sql).to_arrow_table().column("k")
        finally:
            con.unregister("batch")
        cls = batch.append_column("k", k)
        con.register("cls", cls)
        present = pc.unique(k).to_pylist()
        conv = con.sql(self.compiled.convert_sql_for(v for v in present if v is not None)).to_arrow_table()
        parsed = Parsed(cls, conv)
        parsed.register(con)
        return parsed

    def pattern_names_sql(self) -> str:
        """An SQL list literal mapping `variant` (0-based) to its pattern name: use as `names[variant + 1]`."""
        names = ", ".join("'" + v.pattern.name.replace("'", "''") + "'" for v in self.compiled.variants)
        return f"[{names}]"
