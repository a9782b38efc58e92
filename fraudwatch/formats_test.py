"""`fraudwatch formats test FILE`: what a format makes of a file, without storing anything (fail2ban-regex's job).

Lines go through the same reader, batcher and SQL as ingest, on an in-memory DuckDB.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import decode_header, detect_format, header_columns
from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import Format
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import read_chunks


def run_formats_test(path: Path, name: str | None, formats: dict[str, Format], tz: str, as_json: bool,
                     examples: int) -> int:
    from fraudwatch.errors import SourceError, UsageError
    from fraudwatch.jsontext import dumps

    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if name is not None and name not in formats:
        raise UsageError(f"unknown format '{name}' (known: {', '.join(sorted(formats))})")
    fmt = formats[name] if name else detect_format(path, formats)
    console = Console(highlight=False, soft_wrap=True)
    if isinstance(fmt, CsvFormat):
        with path.open("rb") as f:
            header = decode_header(f.readline())
        mapping = header_columns(fmt, header)
        missing = [c for c in fmt.required if c not in mapping.values()]
        labels = header.rstrip("\r\n").split(",")
        if as_json:
            print(dumps({"format": fmt.name, "columns": {labels[i]: c for i, c in mapping.items()},
                         "unmapped": [h for i, h in enumerate(labels) if i not in mapping], "missing": missing}))
        else:
            console.print(f"format {fmt.name}: {len(mapping)} of {len(labels)} header columns mapped")
            for i, col in sorted(mapping.items()):
                console.print(f"  {escape(labels[i])} -> {col}")
            if missing:
                console.print(f"[red]missing required: {', '.join(missing)}[/red]")
        return 1 if missing else 0

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    prepare_connection(con)
    parser = LineParser(fmt, tz, path.stat().st_mtime)
    names = [v.pattern.name for v in parser.compiled.variants]
    hits: Counter[str] = Counter()
    ignored = lines = 0
    rejected: Counter[str] = Counter()
    unmatched: list[tuple[int, str, str]] = []
    for chunk in read_chunks(path, final=True):
        batch = to_batch(chunk)
        lines += batch.lines
        for b in batch.bad:
            rejected[b.reason.split(" (")[0]] += 1
            if len(unmatched) < examples:
                unmatched.append((b.line_no, b.reason, b.raw.decode("utf-8", "backslashreplace")))
            if as_json:
                print(dumps({"line": b.line_no, "matched": False, "pattern": None, "reason": b.reason,
                             "fields": {}}))
        if not batch.table.num_rows:
            continue
        parser.parse(con, batch.table)
        if as_json:
            _json_lines(con, parser, batch.first_line_no)
            continue
        for k, n in con.execute("SELECT k, count(*) FROM cls GROUP BY k").fetchall():
            if k == -1:
                ignored += n
            elif k == -2:
                rejected["no pattern matched"] += n
        for variant, bad, n in con.execute("SELECT variant, bad, count(*) FROM conv GROUP BY ALL").fetchall():
            if bad:
                rejected[bad] += n
            else:
                hits[names[variant]] += n
        if len(unmatched) < examples:
            need = examples - len(unmatched)
            rows = con.execute(
                "SELECT idx, reason, line FROM (SELECT idx, 'no pattern matched' AS reason, line FROM cls WHERE k = -2"
                " UNION ALL SELECT conv.idx, conv.bad, cls.line FROM conv JOIN cls USING (idx) WHERE conv.bad <> '')"
                " ORDER BY idx LIMIT ?", [need]).fetchall()
            unmatched += [(batch.first_line_no + i, r, line.rstrip("\n")) for i, r, line in rows]
    con.close()
    if as_json:
        return 0
    table = Table(title=f"{path} with format {fmt.name}: {lines:,} lines", title_justify="left")
    table.add_column("pattern")
    table.add_column("matched", justify="right")
    for p in fmt.patterns:
        table.add_row(p.name, f"{hits[p.name]:,}")
    table.add_row("(ignored)", f"{ignored:,}")
    for reason, n in rejected.most_common():
        table.add_row(f"[yellow]rejected: {escape(reason)}[/]", f"{n:,}")
    console.print(table)
    if unmatched:
        console.print("first rejected lines:")
        for line_no, reason, text in unmatched:
            console.print(f"  {line_no}: [yellow]{escape(reason)}[/] {escape(text[:300])}")
    return 0


def _json_lines(con: duckdb.DuckDBPyConnection, parser: LineParser, first_line_no: int) -> None:
    from fraudwatch.formats.trial import batch_results
    from fraudwatch.jsontext import dumps

    for r in batch_results(con, parser, first_line_no):
        out: dict[str, object] = {"line": r.line_no, "matched": r.matched, "pattern": r.pattern, "fields": {
            c: (v.isoformat() if isinstance(v, dt.datetime) else v) for c, v in r.fields.items()}}
        if r.ignored:
            out["ignored"] = True
        if r.reason:
            out["reason"] = r.reason
        print(dumps(out))
