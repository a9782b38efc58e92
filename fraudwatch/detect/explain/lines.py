"""What each line of a file becomes, as ingest makes it, without a store.

The lines go through ingest's own reader, batcher, parser and row builder (`fraudwatch.ingest.writer.parsed_rows`)
on an in-memory DuckDB, so the events and rejects made here are the rows `ingest` would store. Only counts, the
first `keep` lines in detail and the first `keep` unusable lines are kept: memory does not grow with the file.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.spec import LineFormat
from fraudwatch.ingest.writer import IdAllocator, bad_line_rows, latest_time, parsed_rows
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import BadLine, Chunk

EVENT, IGNORED, UNMATCHED, REJECTED = "event", "ignored", "unmatched", "rejected"
NO_PATTERN = "no pattern matched"
TEXT_KEPT = 2000  # characters of a line's text kept for a detail


@dataclass(frozen=True)
class LineView:
    """One line in detail: what became of it (`outcome`), with the pattern and fields of its event, or why not."""

    line_no: int
    outcome: str  # event | ignored | unmatched | rejected
    text: str
    pattern: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the event's non-empty fields (not where it came from)
    reason: str | None = None


@dataclass
class LineCounts:
    """What a file's lines became: counts, and a bounded number of lines in detail."""

    lines: int = 0
    patterns: Counter[str] = field(default_factory=Counter)  # pattern -> lines it made events of
    events: Counter[str] = field(default_factory=Counter)  # event kind (or table) -> events
    ignored: int = 0  # chatter the format's ignore rules drop
    unmatched: int = 0  # no pattern matched
    rejected: Counter[str] = field(default_factory=Counter)  # a pattern matched but a value was bad; too long
    details: list[LineView] = field(default_factory=list)  # the first lines, whatever became of them
    problems: list[LineView] = field(default_factory=list)  # the first unmatched and rejected lines

    @property
    def matched(self) -> int:
        return sum(self.patterns.values())


class _Ids(IdAllocator):
    """Row ids counted from 1 per table, with no store behind them."""

    def __init__(self) -> None:
        self.next = {}

    def take(self, table: str, count: int) -> int:
        base = self.next.get(table, 1)
        self.next[table] = base + count
        return base


# the columns a row carries about where it came from, not what the line said
_PROVENANCE = frozenset({"idx", "off", "variant", "bad", "id", "source", "line_no", "byte_offset", "format",
                         "pattern", "repaired"})


class LineStage:
    """Parses chunks of a file with one line format; `rows` yields each chunk's rows as ingest would store them
    (the format's table, and rejects), and `counts` says what the lines became so far."""

    def __init__(self, fmt: LineFormat, source: str, tz: str = "UTC", ref_epoch: float = 0.0, keep: int = 20,
                 max_line_bytes: int = 64 << 10, max_raw_bytes: int = 4096) -> None:
        self.parser = LineParser(fmt, tz, ref_epoch)
        self.fmt, self.source, self.keep = fmt, source, keep
        self.max_line_bytes, self.max_raw_bytes = max_line_bytes, max_raw_bytes
        self.counts = LineCounts()
        self._ids = _Ids()
        self._names = [v.pattern.name for v in self.parser.compiled.variants]

    def rows(self, chunks: Iterable[Chunk]) -> Iterator[list[tuple[str, pa.Table]]]:
        con = duckdb.connect()
        try:
            con.execute("SET TimeZone = 'UTC'")
            prepare_connection(con)
            last = None  # the newest event time so far: a reject's time when no line before it in its chunk has one
            for chunk in chunks:
                batch = to_batch(chunk, self.max_line_bytes, self.max_raw_bytes)
                c = self.counts
                c.lines += batch.lines
                rows: list[tuple[str, pa.Table]] = []
                bad_views = self._bad(batch.bad)
                if batch.table.num_rows:
                    parsed = self.parser.parse(con, batch.table)
                    counts, rows = parsed_rows(con, self._ids, self.parser, parsed, self.source,
                                               batch.first_line_no, chunk.lines, self.max_raw_bytes,
                                               batch.repaired, last)
                    c.ignored += counts.ignored
                    c.events.update(counts.parsed)
                    for reason, n in counts.reasons.items():
                        if reason == NO_PATTERN:
                            c.unmatched += n
                        else:
                            c.rejected[reason] += n
                    for table, t in rows:
                        if table == self.fmt.table:
                            for item in t.column("pattern").value_counts().to_pylist():
                                c.patterns[str(item["values"])] += int(item["counts"])
                    self._detail(con, batch.first_line_no, bad_views)
                    bad_views = []
                    newest = latest_time(parsed.conv)
                    if newest is not None:
                        last = newest if last is None else max(last, newest)
                self._first_lines(bad_views)  # a chunk of over-long lines only
                bad = bad_line_rows(self._ids, self.source, self.fmt.name, batch.bad, last)
                if bad is not None:
                    rows.append(("rejects", bad))
                yield rows
        finally:
            con.close()

    def _bad(self, bad: list[BadLine]) -> list[LineView]:
        """Lines the reader refused (too long): counted, and returned as views to keep with the chunk's."""
        views = []
        for b in bad:
            self.counts.rejected[b.reason.split(" (")[0]] += 1
            view = LineView(b.line_no, REJECTED, b.raw.decode("utf-8", "backslashreplace")[:TEXT_KEPT],
                            reason=b.reason)
            views.append(view)
        return views

    def _first_lines(self, views: list[LineView]) -> None:
        """Add a chunk's over-long lines to the lines kept, when its other lines were not (a chunk of them
        only)."""
        self._add(self.counts.details, views)
        self._add(self.counts.problems, views)

    def _add(self, kept: list[LineView], views: list[LineView]) -> None:
        """Add a chunk's lines (in any order) to `kept`, in line order, while it holds fewer than `keep`."""
        kept += sorted(views, key=lambda v: v.line_no)[:max(self.keep - len(kept), 0)]

    def _detail(self, con: duckdb.DuckDBPyConnection, first_line_no: int, bad: list[LineView]) -> None:
        """The batch's first lines in detail while fewer than `keep` are held (`bad`: its over-long lines, which
        the batch does not hold), and its unusable ones as examples: only those lines are fetched from DuckDB."""
        c = self.counts
        want = max(self.keep - len(c.details), 0)
        if want:
            cur = con.execute("SELECT * FROM conv WHERE idx IN (SELECT idx FROM cls ORDER BY idx LIMIT ?)", [want])
            names = [d[0] for d in cur.description]
            conv = {r[0]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
            views = [self._view(first_line_no + idx, k, line, conv.get(idx)) for idx, k, line in
                     con.execute("SELECT idx, k, line FROM cls ORDER BY idx LIMIT ?", [want]).fetchall()]
            self._add(c.details, views + bad)
        want = max(self.keep - len(c.problems), 0)
        if want:
            views = [LineView(first_line_no + idx, UNMATCHED if reason == NO_PATTERN else REJECTED, _line_text(line),
                              reason=reason) for idx, reason, line in con.execute(
                "SELECT idx, reason, line FROM (SELECT idx, ? AS reason, line FROM cls WHERE k = -2 UNION ALL "
                "SELECT conv.idx, conv.bad, cls.line FROM conv JOIN cls USING (idx) WHERE conv.bad <> '') "
                "ORDER BY idx LIMIT ?", [NO_PATTERN, want]).fetchall()]
            self._add(c.problems, views + bad)

    def _view(self, line_no: int, k: int, line: str, row: dict[str, Any] | None) -> LineView:
        text = _line_text(line)
        if k == -1:
            return LineView(line_no, IGNORED, text)
        if k < 0 or row is None:
            return LineView(line_no, UNMATCHED, text, reason=NO_PATTERN)
        pattern = self._names[row["variant"]]
        fields = {n: v for n, v in row.items() if n not in _PROVENANCE and v is not None and v != ""}
        if row["bad"]:
            return LineView(line_no, REJECTED, text, pattern, fields, row["bad"])
        return LineView(line_no, EVENT, text, pattern, fields)


def _line_text(line: str) -> str:
    return line.rstrip("\r\n")[:TEXT_KEPT]
