"""Backfill: read files and folders (plain or .gz) into the store, every line accounted for.

For each file: find its stored position by content fingerprint (so a file read before under any name is not
read again, and a grown file adds only its new part), read whole-line chunks from there, parse each chunk in
DuckDB, and commit rows, rejects and the new position together.
"""

from __future__ import annotations

import datetime as dt
import glob
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from fraudwatch.config import IngestConfig
from fraudwatch.errors import FraudwatchError, SourceError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import detect_format
from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import Format
from fraudwatch.ingest.csvfiles import ingest_csv
from fraudwatch.ingest.summary import FileSummary, Progress
from fraudwatch.ingest.writer import BatchCounts, Committer, IdAllocator, bad_line_rows, latest_time, parsed_rows
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import Chunk, identify, read_chunks
from fraudwatch.sources.roots import glob_root, inside
from fraudwatch.store import positions
from fraudwatch.store.db import Store
from fraudwatch.store.failures import StoreFull, classify


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, files inside folders (recursively, sorted, hidden ones skipped), and glob matches; a file a
    folder or glob finds that resolves outside that folder (a link) is refused (`fraudwatch.sources.roots`)."""
    for p in paths:
        if any(ch in str(p) for ch in "*?[") and not p.exists():
            matches = sorted(Path(m) for m in glob.glob(str(p)))
            if not matches:
                raise SourceError(f"{p}: no file matches")
            root = glob_root(p)
            yield from expand_paths(m for m in matches if inside(root, m))
        elif p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file() and not any(
                part.startswith(".") for part in f.relative_to(p).parts) and inside(p, f))
        elif p.is_file():
            yield p
        elif not p.exists():
            raise SourceError(f"{p}: no such file or folder")
        else:
            raise SourceError(f"{p}: not a regular file")


# Batches of at most this many lines are parsed by `LineParser.parse_batch_small` (Python's re and polars, the
# same rows): DuckDB's parse has a fixed cost a batch whatever its size (RE2 compiling every pattern, planning the
# conversion), which is most of a quiet watcher's pass. Past a few thousand lines DuckDB is cheaper, and it releases
# the GIL (figures: benchmarks/RESULTS.md, "Small batches parsed without DuckDB").
SMALL_PARSE = 2000


@dataclass(frozen=True)
class Job:
    """One file to ingest: its format (None: to be detected, which failed so far) and its table when known."""

    path: Path
    format: str | None
    timezone: str
    table: str | None


class Ingestor:
    """Backfills files into one open store."""

    def __init__(self, store: Store, formats: dict[str, Format], options: IngestConfig | None = None,
                 on_commit: Callable[[str, str], None] | None = None) -> None:
        self.store = store
        self.on_commit = on_commit  # called with the table's name and the rows' source after each committed chunk
        self.con = store.con
        self.formats = formats
        self.options = options or IngestConfig()
        self.ids = IdAllocator(self.con)
        self.segments = store.segments
        self.committer = Committer(self.con, self.segments)
        self.last_ts: dict[str, dt.datetime] = {}  # per file, the newest line time read so far: rejects' time
        prepare_connection(self.con)

    def ingest(self, path: Path, format_name: str | None = None, tz: str = "UTC",
               progress: Progress | None = None, budget_bytes: int | None = None,
               until: int | None = None) -> FileSummary:
        """Ingest one file; failures of this file are reported in the summary, not raised.

        With `budget_bytes` a log file is read only until that many bytes were committed (whole chunks; the
        summary says `more`), so the watcher can serve its other sources and signals between chunks."""
        summary = FileSummary(path, format_name)
        path = path.absolute()  # rows and positions name the file absolutely, whatever the working folder
        try:
            fmt = self.format_for(path, format_name)
            summary.format = fmt.name
            if isinstance(fmt, CsvFormat):
                ingest_csv(self, path, fmt, tz, summary)
            else:
                self._ingest_lines(path, fmt, tz, summary, progress, budget_bytes, until)
        except FraudwatchError as exc:
            summary.error = str(exc)
        except OSError as exc:
            if isinstance(full := classify(exc, self.store.path), StoreFull):
                raise full from exc  # the store's disk, not this file: every file after it would fail alike
            summary.error = f"{path}: {exc.strerror or exc}"
        return summary

    def format_for(self, path: Path, name: str | None) -> Format:
        """The format `name`, or the one `path`'s first lines show; SourceError when neither is found."""
        if name is None:
            return detect_format(path, self.formats)
        if name not in self.formats:
            raise SourceError(f"unknown format '{name}' (known: {', '.join(sorted(self.formats))})")
        return self.formats[name]

    def known_format(self, path: Path, name: str | None) -> Format | None:
        """`format_for`, or None when it is not known (the ingest will say why)."""
        try:
            return self.format_for(path, name)
        except (FraudwatchError, OSError):
            return None

    def plan(self, files: Iterable[tuple[Path, str | None, str]]) -> list[Job]:
        """`files` (each with its format name or None, and its zone) in the order to read them: each file's format
        found once, and customer exports first, since the credit-limit rule reads balances when detection runs
        during the ingest."""
        jobs = []
        for path, name, tz in files:
            fmt = self.known_format(path, name)
            jobs.append(Job(path, fmt.name if fmt is not None else name, tz, fmt.table if fmt is not None else None))
        return sorted(jobs, key=lambda j: j.table != "customers")

    def _ingest_lines(self, path: Path, fmt: Format, tz: str, summary: FileSummary,
                      progress: Progress | None, budget_bytes: int | None = None,
                      until: int | None = None) -> None:
        # Pipelined: while chunk N is parsed (DuckDB, both cores), chunk N-1 is written as Parquet and committed
        # on the writer thread (pyarrow encodes without the GIL), so the write costs little wall time (figures:
        # benchmarks/RESULTS.md, "Parse and write overlapped").
        assert not isinstance(fmt, CsvFormat)
        ident = identify(path)
        if ident is None:
            return
        opts = self.options
        pos = positions.find(self.con, path, ident)
        start, line_no = (pos.byte_offset, pos.line_no) if pos else (0, 0)
        parser = LineParser(fmt, tz, ident.mtime)
        end = summary.end_offset = start
        pending: tuple[Chunk, int, BatchCounts] | None = None  # the chunk the writer thread commits

        def settle() -> None:
            """Wait for the chunk being committed, and account for it."""
            nonlocal pos, end, pending
            assert pending is not None
            done, lines, counts = pending
            pending = None
            pos = self.committer.settle()
            if self.on_commit is not None:
                self.on_commit(fmt.table, str(path))
            summary.lines += lines
            summary.counts.add(counts)
            end = summary.end_offset = done.end_offset
            if progress:
                progress(path, end - start)

        try:
            for chunk in read_chunks(path, start, line_no, opts.chunk_bytes, opts.max_line_bytes,
                                     opts.max_raw_bytes, ident=ident, until=until):
                batch = to_batch(chunk, opts.max_line_bytes, opts.max_raw_bytes)
                n = batch.table.num_rows
                parsed = None if not n else parser.parse_batch_small(self.con, batch.table) if n <= SMALL_PARSE \
                    else parser.parse(self.con, batch.table)
                counts, rows = BatchCounts(), list[tuple[str, pa.Table]]()
                before = self.last_ts.get(str(path))
                if parsed is not None:
                    counts, rows = parsed_rows(self.con, self.ids, parser, parsed, str(path), batch.first_line_no,
                                               chunk.lines, opts.max_raw_bytes, batch.repaired, before)
                    counts.repaired += len(batch.repaired)
                    if (newest := latest_time(parsed.conv)) is not None:
                        self.last_ts[str(path)] = newest if before is None else max(before, newest)
                bad = bad_line_rows(self.ids, str(path), parser.fmt.name, batch.bad, before)
                if bad is not None:
                    rows.append(("rejects", bad))
                counts.rejected += len(batch.bad)
                counts.reasons.update(Counter(b.reason.split(" (")[0] for b in batch.bad))
                if pending is not None:
                    settle()
                self.committer.submit(rows, path, ident, pos, parser.fmt.name, chunk.end_offset, chunk.end_line_no)
                pending = (chunk, batch.lines, counts)
                if budget_bytes is not None and chunk.end_offset - start >= budget_bytes:
                    summary.more = True
                    break
        finally:
            if pending is not None:  # a commit under way completes and counts, whatever stopped the reading
                settle()
        if path.suffix != ".gz":
            summary.pending_bytes = max(0, path.stat().st_size - end)
