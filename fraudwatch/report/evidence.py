"""An alert's evidence lines as they really were: each found by its content, never by its place alone.

An evidence pointer is (file, line number, byte offset). The stored event behind it (found by the alert's event
ids, with the same file, line and offset) is the line's fingerprint: a line is shown only when parsing it again
with the event's format gives the same pattern and the same values (a rejected line: the same stored text; a CSV
row: the same flowno). `fraudwatch.sources.evidence` looks in the named file and in its rotated copies; what no
file holds is said plainly instead of printing another file's line.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fraudwatch.config import Config
from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import batch_results
from fraudwatch.sources.evidence import Check, find_line
from fraudwatch.sources.lines import repair

LIMIT = 10  # lines shown per alert (an alert keeps at most this many pointers: detect.base.LINES_KEPT)
TABLES = ("sip_events", "netfilter_events", "rejects", "cdrs")  # the tables whose rows point at lines
_NOT_VALUES = frozenset({"idx", "off", "variant", "bad", "ts"})  # a parse's columns that are not the line's values


def evidence_lines(con: duckdb.DuckDBPyConnection, evidence: dict[str, Any], cfg: Config,
                   limit: int = LIMIT) -> list[dict[str, Any]]:
    """An alert's (or any) evidence's lines, each {"source", "line_no", "text", "found_in", "note"}: `text` the
    line as it was (None when no file holds it now), `found_in` the file it was read from (a rotated copy after
    logrotate), `note` why it is not shown. `con`: the store, read-only is enough; `cfg` gives the formats and
    the sources' zones."""
    return lines_of(con, evidence, load_formats(cfg.format_dirs), [s.timezone for s in cfg.sources], limit)


def lines_of(con: duckdb.DuckDBPyConnection, evidence: dict[str, Any], formats: dict[str, Format],
             zones: Sequence[str] = (), limit: int = LIMIT) -> list[dict[str, Any]]:
    """`evidence_lines` with the formats and zones given (a stored time is checked against the line's time
    read in UTC and in each of `zones`)."""
    pointers = [(list(p) + [None] * 3)[:3] for p in (evidence.get("lines") or [])[:limit]]
    if not pointers:
        return []
    events = _events(con, pointers, {name: [int(i) for i in evidence.get(name) or [] if isinstance(i, int)]
                                     for name in ("ids", "flownos")})
    checker = _Checker(formats, ["UTC", *zones])
    out = []
    try:
        for source, line_no, offset in pointers:
            row = events.get((str(source), line_no, offset))
            found = find_line(str(source), line_no, offset, checker.check_for(row, str(source)))
            out.append({"source": source, "line_no": line_no, "text": found.text, "found_in": found.path,
                        "note": found.note})
    finally:
        checker.close()
    return out


def _events(con: duckdb.DuckDBPyConnection, pointers: list[list[Any]], ids: dict[str, list[int]]
            ) -> dict[tuple[str, Any, Any], dict[str, Any]]:
    """The stored row behind each pointer: among the alert's event ids (`ids`: its evidence's ids, and flownos
    for CDRs; cheap, and exact after a rotation, when the new file's rows have the same name, line numbers and
    offsets); a pointer not among them is looked up by its place, and taken only when one row alone has it."""
    out: dict[tuple[str, Any, Any], dict[str, Any]] = {}
    wanted = {(str(s), n, o) for s, n, o in pointers}
    for table in TABLES:
        column, values = ("flowno", ids["flownos"]) if table == "cdrs" else ("id", ids["ids"])
        if values:
            for row in _rows(con, table, f"{column} IN (SELECT unnest(?::BIGINT[]))", [values]):
                # a pointer without an offset (CSV rows; alerts older than offsets) is found by its line alone
                for key in ((row["source"], row["line_no"], row.get("byte_offset")),
                            (row["source"], row["line_no"], None)):
                    if key in wanted:
                        out[key] = row | {"_table": table}
                        break
    for key in wanted - out.keys():
        source, line_no, offset = key
        for table in TABLES:
            by_offset = offset is not None and table != "cdrs"
            where = "source = ? AND line_no = ?" + (" AND byte_offset = ?" if by_offset else "")
            rows = _rows(con, table, where, [source, line_no] + ([offset] if by_offset else []))
            if len(rows) == 1:
                out[key] = rows[0] | {"_table": table}
                break
            if rows:  # several files had that name, line and offset: which one is not known
                break
    return out


def _rows(con: duckdb.DuckDBPyConnection, table: str, where: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        cur = con.execute(f"SELECT * FROM {table} WHERE {where} LIMIT 5", params)  # nosec B608 # a table of TABLES and a condition of this module; values are parameters
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except duckdb.Error:  # a store without that table yet
        return []


class _Checker:
    """Makes each pointer's content check from its stored row, parsing with one in-memory DuckDB."""

    def __init__(self, formats: dict[str, Format], zones: list[str]) -> None:
        self.formats = formats
        self.zones = [zoneinfo.ZoneInfo(z) for z in dict.fromkeys(zones)]
        self.parsers: dict[tuple[str, int], LineParser] = {}
        self._con: duckdb.DuckDBPyConnection | None = None

    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    def check_for(self, row: dict[str, Any] | None, source: str) -> Check | None:
        if row is None:
            return None
        table = row["_table"]
        if table == "rejects":
            stored = str(row["raw"] or "")
            return lambda raw: bool(stored) and _raw_text(raw)[:len(stored)] == stored
        if table == "cdrs":
            flowno = str(row.get("flowno") or "")
            return lambda raw: bool(flowno) and flowno in (c.strip().strip('"') for c in _raw_text(raw).split(","))
        fmt = self.formats.get(str(row.get("format")))
        if not isinstance(fmt, LineFormat):
            return None
        return lambda raw: self._same_event(fmt, raw, row)

    def _same_event(self, fmt: LineFormat, raw: bytes, row: dict[str, Any]) -> bool:
        """Whether `raw`, parsed with `fmt`, is the stored event `row`: the same pattern, the same values, the
        same time (read in one of the zones, for a line whose time carries none)."""
        ts = row.get("ts")
        parser = self._parser(fmt, ts.year if isinstance(ts, dt.datetime) else 0)
        con = self._connection()
        line = repair(raw) + "\n"
        parser.parse(con, pa.table({"idx": pa.array([0], pa.int64()), "off": pa.array([0], pa.int64()),
                                    "line": pa.array([line], pa.large_string())}))
        (result,) = batch_results(con, parser, 1)
        if not result.matched or result.pattern != row.get("pattern"):
            return False
        for name, value in result.fields.items():
            if name not in _NOT_VALUES and name in row and row[name] != value:
                return False
        parsed = result.fields.get("ts")
        return ts == parsed if ts is None or parsed is None else self._same_time(parsed, ts)

    def _same_time(self, parsed: dt.datetime, stored: dt.datetime) -> bool:
        if parsed == stored:
            return True
        wall = parsed.replace(tzinfo=None)  # read as UTC: the line's own clock, when it names no zone
        return any(wall.replace(tzinfo=z) == stored for z in self.zones)

    def _parser(self, fmt: LineFormat, year: int) -> LineParser:
        """A parser reading times in UTC (`_same_time` tries the zones), year-less ones in the stored year."""
        key = (fmt.name, year)
        if key not in self.parsers:
            # the parser takes its year from the reference time, and moves a date after it back a year
            ref = dt.datetime(year, 12, 31, 12, tzinfo=dt.UTC).timestamp() if year else 0.0
            self.parsers[key] = LineParser(fmt, "UTC", ref)
        return self.parsers[key]

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect()
            self._con.execute("SET TimeZone = 'UTC'")
            prepare_connection(self._con)
        return self._con


def _raw_text(raw: bytes) -> str:
    """A line's bytes as rejects keeps them (`fraudwatch.ingest.writer.raw_text`): invalid bytes as \\xNN."""
    return raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def describe(item: dict[str, Any]) -> str:
    """One evidence line for people: where it was, where it is now when rotated, and the line or why not."""
    where = f"{item['source']}:{item['line_no']}"
    if item["text"] is None:
        return f"{where}: ({item['note'] or 'not found'})"
    found_in = item["found_in"]
    if found_in and Path(found_in) != Path(str(item["source"])):
        where += f" (now in {found_in})"
    return f"{where}: {item['text']}"
