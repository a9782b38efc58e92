"""Following log files from their end, for early bans: what was appended since the last look, parsed into rows
shaped like the store's (the format's patterns, and the ingest's typing), never stored. Rows are plain lists
(`fraudwatch.detect.rows.Rows`): a tick's few hundred lines cost less that way than any frame query.

The watcher's reader owns the store and the read positions; this follows the same files with offsets of its
own, in memory, from where they ended when it started (what was there already is the reader's). A file whose
inode changes, or that shrinks, was rotated or truncated: it is followed from its start. When more than
`max_behind` bytes are waiting (the sentry fell behind), the oldest are skipped and counted: early bans are
only worth having while they are early, and the watcher's own rules see every line anyway.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.config import IngestConfig, SourceConfig
from fraudwatch.detect.rows import Rows
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import detect_format
from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import Format
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import read_chunks
from fraudwatch.store.schema import TABLES
from fraudwatch.watch.files import files_of

MAX_BEHIND = 1 << 20  # bytes waiting in one file beyond which the oldest are skipped (a flood's ~0.3 s)


@dataclass
class _Followed:
    inode: int
    offset: int
    parser: LineParser | None  # None: not known yet, or nothing for the gates (`skip`)
    skip: bool = False  # a CSV export, or a table no gate reads: kept up with, never read


@dataclass
class TailStats:
    lines: int = 0
    bytes: int = 0
    skipped_bytes: int = 0
    errors: list[str] = field(default_factory=list)


class LogTail:
    """`poll()` returns the rows appended to the line sources since the last poll, per table, in time order
    (ts in epoch microseconds), with their `source` file and `byte_offset`."""

    def __init__(self, sources: Sequence[SourceConfig], formats: dict[str, Format], options: IngestConfig,
                 columns: dict[str, list[str]], max_behind: int = MAX_BEHIND) -> None:
        self.sources, self.formats, self.options = list(sources), formats, options
        self.columns = {t: [c for c in TABLES[t].names if c in cols] for t, cols in columns.items() if cols}
        self.max_behind = max_behind
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET threads = 1")  # a few hundred lines a poll: no gain in more, only contention
        prepare_connection(self.con)
        self.parts: dict[str, list[tuple[str, dict[str, list[Any]]]]] = {}
        self.files: dict[Path, _Followed] = {}
        self.first = True
        self.stats = TailStats()

    def poll(self) -> dict[str, Rows]:
        self.parts = {t: [] for t in self.columns}
        present: set[Path] = set()
        for src in self.sources:
            for path in files_of(src):
                if path.suffix == ".gz":
                    continue
                present.add(path)
                try:
                    self._follow(path, src)
                except Exception as exc:
                    self._failed(path, exc)
        for gone in [p for p in self.files if p not in present]:
            del self.files[gone]
        self.first = False
        return {table: self._rows(table, parts) for table, parts in self.parts.items() if parts}

    def _rows(self, table: str, parts: list[tuple[str, dict[str, list[Any]]]]) -> Rows:
        """The parts of a table (one per file read) as rows in time order, stable, those without a time last."""
        named = {n for _, got in parts for n in got}
        columns: dict[str, list[Any]] = {c: [] for c in ("ts", *self.columns[table]) if c in named}
        columns["source"], columns["byte_offset"] = [], []
        for path, got in parts:
            n = len(got["idx"])
            got["source"], got["byte_offset"] = [path] * n, got["off"]
            for c, values in columns.items():
                values.extend(got[c] if c in got else [None] * n)
        stamps = columns["ts"]
        n = len(stamps)
        if any(a is None or b is None or a > b for a, b in pairwise(stamps)):
            order = sorted(range(n), key=lambda i: (stamps[i] is None, stamps[i] or 0))
            columns = {c: [values[i] for i in order] for c, values in columns.items()}
        return Rows(columns, n)

    def _failed(self, path: Path, exc: Exception) -> None:
        """Note the error and go past what is there now: whatever it was cannot fail again on every tick (the
        watcher reads, counts and keeps aside every line itself)."""
        self.stats.errors = [*self.stats.errors[-9:], f"{path}: {type(exc).__name__}: {exc}"[:300]]
        f = self.files.get(path)
        if f is not None:
            try:
                size = os.stat(path).st_size
            except OSError:
                return
            if size > f.offset:
                self.stats.skipped_bytes += size - f.offset
                f.offset = size

    def _follow(self, path: Path, src: SourceConfig) -> None:
        st = os.stat(path)
        f = self.files.get(path)
        if f is None or f.inode != st.st_ino or st.st_size < f.offset:
            # at the start, from the end (what is there is the reader's); a file appearing later, from its start
            f = self.files[path] = _Followed(st.st_ino, st.st_size if self.first else 0, None)
        if st.st_size <= f.offset:
            return
        if f.skip:
            f.offset = st.st_size
            return
        if f.parser is None:
            name = src.format
            fmt = self.formats.get(name) if name else detect_format(path, self.formats)
            if fmt is None or isinstance(fmt, CsvFormat) or fmt.table not in self.columns:
                f.offset, f.skip = st.st_size, True  # nothing for the gates here: keep up without reading
                return
            f.parser = LineParser(fmt, src.timezone, st.st_mtime)
        if st.st_size - f.offset > self.max_behind:
            start = self._line_start(path, st.st_size - self.max_behind)
            self.stats.skipped_bytes += start - f.offset
            f.offset = start
        opts = self.options
        for chunk in read_chunks(path, f.offset, 0, self.max_behind, opts.max_line_bytes, opts.max_raw_bytes,
                                 until=st.st_size):
            batch = to_batch(chunk, opts.max_line_bytes, opts.max_raw_bytes)
            if batch.table.num_rows:
                self._parse(f.parser, path, batch.table)
            self.stats.lines += chunk.lines
            self.stats.bytes += chunk.end_offset - f.offset
            f.offset = chunk.end_offset

    def _parse(self, parser: LineParser, path: Path, batch: pa.Table) -> None:
        """The batch's good rows (`LineParser.parse_rows`: typed row by row, DuckDB only for what Python cannot
        type with certainty); rejected lines are left out."""
        table = parser.fmt.table
        rows = parser.parse_rows(self.con, batch.column("line").to_pylist(), batch.column("off").to_pylist(),
                                 self.columns[table])
        if rows["idx"]:
            self.parts[table].append((str(path), rows))

    @staticmethod
    def _line_start(path: Path, offset: int) -> int:
        """The offset of the first line that starts at or after `offset`."""
        with path.open("rb") as fh:
            fh.seek(max(0, offset - 1))
            fh.readline()  # the rest of the line `offset` falls in
            return fh.tell()
