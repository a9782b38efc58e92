"""`fraudwatch formats list|test`: the formats fraudwatch knows, and what one makes of a file without storing
anything (fail2ban-regex's job). A test's lines go through the same reader, batcher and SQL as ingest, on an
in-memory DuckDB."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import cell, out, print_json, text
from fraudwatch.cli.output import table as new_table
from fraudwatch.errors import ExitStatus, SourceError, UsageError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import decode_header, detect_format, header_columns
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import LineResult, trial_file


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    fsub = parser.add_subparsers(dest="formats_command", metavar="ACTION", parser_class=type(parser))
    fsub.add_parser("list", parents=[common], help="the formats fraudwatch knows")
    ft = fsub.add_parser("test", parents=[common], help="what each pattern matches in FILE (like fail2ban-regex)",
                         description="Parse FILE without storing anything: per-pattern match counts, unmatched "
                                     "lines with examples; --json prints one object per line.")
    ft.add_argument("file", type=Path, metavar="FILE")
    ft.add_argument("--format", help="format name (default: detected)")
    ft.add_argument("--timezone", default="UTC", help="zone of timestamps that carry none (default UTC)")
    ft.add_argument("--json", action="store_true", help="one JSON object per line: line, matched, pattern, fields")
    ft.add_argument("--examples", type=int, default=5, metavar="N", help="unmatched examples to show (default 5)")


def run(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    formats = load_formats(cfg.format_dirs)
    if args.formats_command in (None, "list"):
        table = new_table("name", "kind", "table", "patterns", "description", "file", whole=("name", "patterns"),
                          right=("patterns",))
        for name, fmt in sorted(formats.items()):
            n = len(fmt.patterns) if isinstance(fmt, LineFormat) else len(fmt.labels)
            table.add_row(cell(name), cell(fmt.kind), cell(fmt.table), str(n), cell(fmt.description),
                          cell(str(fmt.path)))
        out().print(table)
        return ExitStatus.OK
    return formats_test(args.file, args.format, formats, args.timezone, args.json, args.examples)


def formats_test(path: Path, name: str | None, formats: dict[str, Format], tz: str, as_json: bool,
                 examples: int) -> int:
    """`formats test`: per-pattern counts and the first rejected lines, or with `as_json` one object a line."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    if name is not None and name not in formats:
        raise UsageError(f"unknown format '{name}' (known: {', '.join(sorted(formats))})")
    fmt = formats[name] if name else detect_format(path, formats)
    console = out(soft_wrap=True)
    if isinstance(fmt, CsvFormat):
        with path.open("rb") as f:
            header = decode_header(f.readline())
        mapping = header_columns(fmt, header)
        missing = [c for c in fmt.required if c not in mapping.values()]
        labels = header.rstrip("\r\n").split(",")
        if as_json:
            print_json({"format": fmt.name, "columns": {labels[i]: c for i, c in mapping.items()},
                        "unmapped": [h for i, h in enumerate(labels) if i not in mapping], "missing": missing})
        else:
            console.print(f"format {text(fmt.name)}: {len(mapping)} of {len(labels)} header columns mapped")
            for i, col in sorted(mapping.items()):
                console.print(f"  {text(labels[i])} -> {text(col)}")
            if missing:
                console.print(f"[red]missing required: {text(', '.join(missing))}[/red]")
        return ExitStatus.FAILED if missing else ExitStatus.OK

    assert isinstance(fmt, LineFormat)
    if as_json:
        trial_file(path, fmt, tz, examples, each_line=_print_line)
        return ExitStatus.OK
    result = trial_file(path, fmt, tz, examples)
    table = new_table("pattern", "matched", whole=("matched",), right=("matched",),
                      title=f"{path} with format {fmt.name}: {result.lines:,} lines")
    for p in fmt.patterns:
        table.add_row(cell(p.name), f"{result.hits[p.name]:,}")
    table.add_row("(ignored)", f"{result.ignored:,}")
    for reason, n in result.rejected.most_common():
        table.add_row(f"[yellow]rejected: {text(reason)}[/]", f"{n:,}")
    console.print(table)
    if result.unmatched:
        console.print("first rejected lines:")
        for line_no, reason, line in result.unmatched:
            console.print(f"  {line_no}: [yellow]{text(reason)}[/] {text(line[:300])}")
    return ExitStatus.OK


def _print_line(r: LineResult) -> None:
    """One line's result as `formats test --json` prints it."""
    line: dict[str, object] = {"line": r.line_no, "matched": r.matched, "pattern": r.pattern, "fields": {
        c: (v.isoformat() if isinstance(v, dt.datetime) else v) for c, v in r.fields.items()}}
    if r.ignored:
        line["ignored"] = True
    if r.reason:
        line["reason"] = r.reason
    print_json(line)
