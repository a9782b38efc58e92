"""Running a compiled line format over a batch of lines inside DuckDB.

`LineParser.parse(con, batch)` leaves two temp tables on the connection — `cls` (every line and its pattern
index `k`) and `conv` (typed rows for matched lines, with `bad` naming failed conversions) — which the ingest
writer copies into the store and `fraudwatch formats test` reads back. Both callers therefore run the very same
SQL, so what `formats test` reports is what ingest will do.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb.func import FunctionNullHandling, PythonUDFType

from fraudwatch.formats.compile import CompiledFormat, compile_format, ignore_regex, variants_of
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


# Idioms a backtracking engine (Python's re) runs far slower than RE2, and their unrolled form (Friedl): the same
# strings, matched without a choice per character. Unrolled, the quoted-value body of the VOS3000 formats makes
# `LineParser.capture` much cheaper (figures: benchmarks/RESULTS.md, "Quoted values unrolled for Python's re").
_UNROLLED = {r'(?:[^"\\]|\\.)*': r'[^"\\]*(?:\\.[^"\\]*)*', r"(?:[^'\\]|\\.)*": r"[^'\\]*(?:\\.[^'\\]*)*"}


# RE2 syntax Python's re reads differently or not at all (POSIX classes, \Q...\E, Unicode classes, \C, \z): a
# format using any of it is parsed by DuckDB only.
_RE2_ONLY = ("[[:", "\\Q", "\\E", "\\p", "\\P", "\\C", "\\z")


class SqlOnly(Exception):
    """The format's patterns cannot run in Python's re (see _RE2_ONLY): DuckDB parses it."""


def _python_pattern(regex: str) -> re.Pattern[str]:
    if any(token in regex for token in _RE2_ONLY):
        raise SqlOnly(regex)
    try:
        return re.compile(_for_backtracking(regex), re.ASCII)
    except re.error:
        raise SqlOnly(regex) from None


def _for_backtracking(regex: str) -> str:
    for idiom, unrolled in _UNROLLED.items():
        regex = regex.replace(idiom, unrolled)
    return regex


@functools.lru_cache(maxsize=64)
def compiled(fmt: LineFormat, tz: str, year: int, ref_epoch: float) -> CompiledFormat:
    return compile_format(fmt, tz, year, ref_epoch)


@functools.lru_cache(maxsize=64)
def _python_patterns(fmt: LineFormat) -> tuple[list[tuple[str | None, re.Pattern[str]]], re.Pattern[str] | None]:
    """The format's variants (contains hint, pattern) and ignore rules for Python's re, compiled once per format
    (the watcher makes a parser per pass); raises SqlOnly when they cannot run there."""
    matchers = [(v.pattern.contains, _python_pattern(v.regex)) for v in variants_of(fmt)]
    ignore = _python_pattern(ignore_regex(fmt)) if fmt.ignores else None
    return matchers, ignore


@functools.lru_cache(maxsize=64)
def _converter(fmt: LineFormat, tz: str, columns: tuple[str, ...] | None) -> Any:
    """The typing of `parse_small` for a format, zone and column set, built once (it does not depend on the
    year or the reference time a parser has: formats needing those are left to the SQL)."""
    from fraudwatch.formats.pyconvert import CaptureConverter

    return CaptureConverter(compiled(fmt, tz, 1970, 0.0), tz, columns)


class LineParser:
    """Parses batches of one format for one source (its zone and reference time fix the SQL)."""

    def __init__(self, fmt: LineFormat, tz: str = "UTC", ref_epoch: float = 0.0) -> None:
        import datetime as dt

        year = dt.datetime.fromtimestamp(ref_epoch, dt.UTC).year if ref_epoch else dt.datetime.now(dt.UTC).year
        self.fmt = fmt
        self.compiled = compiled(fmt, tz, year, ref_epoch or dt.datetime.now(dt.UTC).timestamp())
        self.tz = tz

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
        # `conv` in DuckDB's batches, as they come (combining them was for DuckDB's own insert, which events no
        # longer take: benchmarks/RESULTS.md, "Parsed rows inserted from one record batch")
        conv = con.sql(self.compiled.convert_sql_for(v for v in present if v is not None)).to_arrow_table()
        parsed = Parsed(cls, conv)
        parsed.register(con)
        return parsed

    def capture(self, lines: Sequence[str], offsets: Sequence[int]) -> pa.Table:
        """Classification and capture in Python, for batches too small to pay DuckDB's fixed cost of compiling
        every pattern (figures: benchmarks/RESULTS.md, "Small batches parsed without DuckDB"): the first variant
        that fully matches, as `classify_sql` picks it, and its groups ('' for a group that took no part, as
        regexp_extract gives them). `caps(idx, off, k, m)` holds the matched lines only (ignored and unmatched
        lines are left out); `convert_captured` types them.

        The patterns are RE2 syntax that Python's `re` reads the same (named groups, classes, lazy repeats;
        RE2 refuses backreferences and lookaround, so formats have none); `re.ASCII` keeps \\d, \\w and \\s
        ASCII as in RE2. tests/formats/test_capture.py holds the two to the same rows on every known line."""
        return self._caps_table(self._captures(lines, offsets))

    def parse_small(self, con: duckdb.DuckDBPyConnection, lines: Sequence[str], offsets: Sequence[int],
                    columns: Sequence[str] | None = None) -> pa.Table:
        """`conv` for a small batch without DuckDB's per-batch fixed cost where it can: captured in Python, typed in
        Python where the reading is certain (`fraudwatch.formats.pyconvert`), the rest by the ingest's SQL.
        `columns` narrows the output to those (and ts); which rows are kept or rejected does not change."""
        if not self.python_ok:
            batch = pa.table({"idx": pa.array(range(len(lines)), pa.int64()), "off": pa.array(offsets, pa.int64()),
                              "line": pa.array(lines, pa.large_string())})
            return self.parse(con, batch).conv
        return self._typed(con, self._captures(lines, offsets), columns)

    def parse_rows(self, con: duckdb.DuckDBPyConnection, lines: Sequence[str], offsets: Sequence[int],
                   columns: Sequence[str]) -> dict[str, list[Any]]:
        """`parse_small`'s good rows as plain lists, column by column, in line order: idx, off, ts (in epoch
        microseconds) and `columns`. What the sentry reads: typed in Python (`CaptureConverter.rows`), the rows
        it cannot type with certainty by the SQL; rows with a bad value are left out."""
        if not self.python_ok:
            conv = self.parse_small(con, lines, offsets, columns)
            return _plain_rows(conv, ("idx", "off", "ts", *(c for c in conv.column_names if c in columns)))
        converter = _converter(self.fmt, self.tz, tuple(columns))
        captures = self._captures(lines, offsets)
        rows: dict[str, list[Any]]
        rows, left = converter.rows(captures)
        if left:  # rare: the SQL's rows join the others, in line order
            rest = _plain_rows(self.convert_captured(con, self._caps_table([captures[i] for i in left])),
                               converter.row_names)
            both = {n: [*v, *rest[n]] for n, v in rows.items()}
            order = sorted(range(len(both["idx"])), key=both["idx"].__getitem__)
            rows = {n: [v[i] for i in order] for n, v in both.items()}
        return rows

    def parse_batch_small(self, con: duckdb.DuckDBPyConnection, batch: pa.Table) -> Parsed:
        """`parse` for a small batch: the same `cls` (with ignored and unmatched lines classified as
        `classify_sql` does) and `conv`, registered the same way, from `capture` and `parse_small`'s typing.
        A format whose patterns Python cannot run the same is parsed by `parse`."""
        if not self.python_ok:
            return self.parse(con, batch)
        lines = batch.column("line").to_pylist()
        ks: list[int] = []
        rows = self._captures(lines, batch.column("off").to_pylist(), batch.column("idx").to_pylist(), ks)
        parsed = Parsed(batch.append_column("k", pa.array(ks, pa.int32())), self._typed(con, rows, None))
        parsed.register(con)
        return parsed

    def _typed(self, con: duckdb.DuckDBPyConnection, rows: list[tuple[int, int, int, tuple[str, ...]]],
               columns: Sequence[str] | None) -> pa.Table:
        done, left = _converter(self.fmt, self.tz, None if columns is None else tuple(columns)).convert(rows)
        if not left:
            return done
        rest = self.convert_captured(con, self._caps_table([rows[i] for i in left]))
        return pa.concat_tables([done, rest.select(done.column_names).cast(done.schema)])

    def _captures(self, lines: Sequence[str], offsets: Sequence[int], idx: Sequence[int] | None = None,
                  ks: list[int] | None = None) -> list[tuple[int, int, int, tuple[str, ...]]]:
        """(idx, off, variant, its groups in regex order ('' for one that took no part)) of the matched lines;
        `ks`, when given, gets every line's class as `classify_sql` gives it (-1 ignored, -2 unmatched)."""
        matchers, ignore = self._matchers(), self._ignore()
        out: list[tuple[int, int, int, tuple[str, ...]]] = []
        for i, line in enumerate(lines):
            for k, (contains, rx) in enumerate(matchers):
                if contains is not None and contains not in line:
                    continue
                m = rx.fullmatch(line)
                if m is not None:
                    out.append((i if idx is None else idx[i], offsets[i], k, m.groups("")))
                    if ks is not None:
                        ks.append(k)
                    break
            else:
                if ks is not None:
                    ks.append(-1 if ignore is not None and ignore.fullmatch(line) else -2)
        return out

    def _caps_table(self, rows: Sequence[tuple[int, int, int, tuple[str, ...]]]) -> pa.Table:
        names = self.compiled.group_names
        at = [{g: j for j, g in enumerate(self.compiled.variant_groups[k])} for k in range(len(self.compiled.variants))]
        columns = []
        for n in names:
            columns.append(pa.array([r[3][at[r[2]][n]] if n in at[r[2]] else "" for r in rows], pa.string()))
        struct = pa.StructArray.from_arrays(columns, names=list(names)) if names \
            else pa.array([{}] * len(rows), pa.struct([]))
        return pa.table({"idx": pa.array([r[0] for r in rows], pa.int64()),
                         "off": pa.array([r[1] for r in rows], pa.int64()),
                         "k": pa.array([r[2] for r in rows], pa.int32()), "m": struct})

    def convert_captured(self, con: duckdb.DuckDBPyConnection, caps: pa.Table) -> pa.Table:
        """`conv` (the same typed rows and `bad` as `parse`) from `capture`'s table."""
        con.register("caps", caps)
        try:
            sql = self.compiled.captured_sql_for(pc.unique(caps.column("k")).to_pylist())
            return con.sql(sql).to_arrow_table()
        finally:
            con.unregister("caps")

    def _ignore(self) -> re.Pattern[str] | None:
        return _python_patterns(self.fmt)[1]

    def _matchers(self) -> list[tuple[str | None, re.Pattern[str]]]:
        return _python_patterns(self.fmt)[0]

    @property
    def python_ok(self) -> bool:
        """Whether the format's patterns run in Python's re (else DuckDB parses every batch)."""
        try:
            _python_patterns(self.fmt)
        except SqlOnly:
            return False
        return True


def _plain_rows(conv: pa.Table, names: Sequence[str]) -> dict[str, list[Any]]:
    """The good rows of a `conv` table as lists of `names`, ts in epoch microseconds."""
    conv = conv.filter(pc.equal(conv.column("bad"), ""))
    return {n: (pc.cast(pc.cast(conv.column(n), pa.timestamp("us", "UTC")), pa.int64()) if n == "ts"
                else conv.column(n)).to_pylist() for n in dict.fromkeys(names)}
