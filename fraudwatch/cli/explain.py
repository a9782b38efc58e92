"""`fraudwatch explain FILE` (or `--line TEXT`): what each line becomes and which rules it would fire, with no
store opened or created and no action taken (fraudwatch.detect.explain)."""

from __future__ import annotations

import argparse
import datetime as dt
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import cell, out, plain, print_json, text
from fraudwatch.config import SourceConfig
from fraudwatch.errors import ExitStatus, UsageError

EXAMPLES = 5  # unusable lines shown without -v
KEYS_SHOWN = 3  # keys named per rule in the summary


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.description = (
        "Parse FILE (a log or a CSV export, plain or .gz) as ingest would and run the rules over its events in "
        "memory: per pattern how many lines matched, what no pattern matched and what was rejected (with why), "
        "and which rules would "
        "raise alerts on which keys. Nothing is stored and no action is taken; no store is opened. "
        "-v shows the lines one by one and every alert.")
    parser.add_argument("file", type=Path, nargs="?", metavar="FILE", help="a log file or a CSV export (plain or .gz)")
    parser.add_argument("--line", metavar="TEXT", help="explain this one line instead of a file (needs --format)")
    parser.add_argument("--format", metavar="NAME",
                        help="format name (default: the configured source's, else detected from the file)")
    parser.add_argument("--rules", type=Path, action="append", metavar="DIR",
                        help="extra rules folder (overrides shipped rules by id; repeatable)")
    parser.add_argument("--lines", type=int, default=20, metavar="N",
                        help="lines kept in detail, and unusable lines kept as examples (default 20)")
    parser.add_argument("--timezone", metavar="ZONE",
                        help="zone of timestamps that carry none (default: the zone of the configured source "
                             "that names FILE, else UTC)")
    parser.add_argument("-v", "--verbose", action="store_true", help="every line kept in detail, every alert")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def run(args: argparse.Namespace) -> int:
    from fraudwatch.detect.explain.run import explain_file, explain_line

    if (args.file is None) == (args.line is None):
        raise UsageError("explain: give a FILE or --line TEXT (one of them)")
    if args.lines < 0:
        raise UsageError("--lines must be 0 or more")
    cfg = config_of(args)  # its rules, formats and trusted networks; the store it names is never opened
    source = _source_of(cfg.sources, args.file)
    tz = _zone(args.timezone) if args.timezone else source.timezone if source else "UTC"
    if args.line is not None:
        result = explain_line(cfg, args.line, args.format, args.rules or [], tz)
    else:
        fmt = args.format or (source.format if source else None)
        result = explain_file(cfg, args.file, fmt, args.rules or [], tz, args.lines)
    if args.json:
        print_json(_as_json(result))
    else:
        _print(result, args.verbose, args.lines)
    return ExitStatus.OK


def _zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone: unknown time zone '{name}'") from None
    return name


def _source_of(sources: Sequence[SourceConfig], path: Path | None) -> SourceConfig | None:
    """The configured source that names `path` (the file itself, its folder, or a glob matching it): its format
    and zone are what the watcher reads the file with, so explain reads it so too unless told otherwise."""
    if path is None:
        return None
    p = path.absolute()
    for s in sources:
        sp = Path(s.path)
        if p == sp or sp in p.parents or p.match(str(sp)):
            return s
    return None


def _as_json(r: Any) -> dict[str, Any]:
    c = r.lines
    return {
        "source": r.source, "format": r.format, "kind": r.kind, "table": r.table, "seconds": round(r.seconds, 3),
        "lines": c.lines, "matched": c.matched, "patterns": dict(c.patterns), "events": dict(c.events),
        "ignored": c.ignored, "unmatched": c.unmatched, "rejected": dict(c.rejected),
        "details": [_line_json(v) for v in c.details], "problems": [_line_json(v) for v in c.problems],
        "rules": [{"rule": t.rule, "source": t.source, "matches": t.matches, "alerts": len(t.alerts),
                   "keys": t.keys} for t in r.rules if t.matches or t.alerts],
        "alerts": [{k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in a.__dict__.items()}
                   for t in r.rules for a in t.alerts],
    }


def _line_json(v: Any) -> dict[str, Any]:
    return {"line": v.line_no, "outcome": v.outcome, "pattern": v.pattern, "reason": v.reason, "text": v.text,
            "fields": {k: (x.isoformat() if isinstance(x, dt.datetime) else x) for k, x in v.fields.items()}}


def _print(r: Any, verbose: bool, keep: int) -> None:
    console = out(soft_wrap=True)
    c = r.lines
    unit = "row" if r.kind == "csv" else "line"
    lines = f"1 {unit}" if c.lines == 1 else f"{plain(c.lines)} {unit}s"
    if r.kind == "csv":
        lines += " after the header"
    console.print(f"[bold]{text(r.source)}[/]: {lines}, format {text(r.format)} (events go to "
                  f"{text(r.table)}), read in {r.seconds:.1f} s. Nothing was stored and no action was taken.")
    table = Table(title="what the lines became", title_justify="left")
    table.add_column("lines")
    table.add_column("count", justify="right")
    for name, n in sorted(c.patterns.items(), key=lambda x: (-x[1], x[0])):
        table.add_row(f"matched pattern {text(name)}" if r.kind != "csv" else f"rows converted into {text(name)}",
                      plain(n))
    if not c.patterns:
        table.add_row("matched by a pattern" if r.kind != "csv" else "rows converted", "0")
    if r.kind == "csv":
        table.add_row("ignored (a key repeated in the export)", plain(c.ignored))
    else:
        table.add_row("ignored (the format's ignore rules)", plain(c.ignored))
    if r.kind != "csv":
        table.add_row("[yellow]no pattern matched[/]" if c.unmatched else "no pattern matched", plain(c.unmatched))
    for reason, n in c.rejected.most_common():
        table.add_row(f"[yellow]rejected: {text(reason)}[/]", plain(n))
    console.print(table)
    _print_rules(console, r)
    if verbose:
        _print_details(console, c.details, r.kind)
    shown = c.problems if verbose else c.problems[:EXAMPLES]
    if shown:
        console.print(f"first unusable lines ({len(shown)}):")
        for v in shown:
            console.print(f"  line {v.line_no}: [yellow]{text(v.reason)}[/]: {text(v.text[:300])}")
    if verbose:
        _print_alerts(console, r)


def _print_rules(console: Console, r: Any) -> None:
    fired = r.fired
    if not fired:
        console.print(f"rules: none of the {len(r.rules)} rules would raise an alert on these lines.")
        return
    table = Table(title=f"rules that would fire: {len(fired)} of {len(r.rules)} (alerts are not saved, nothing "
                        "is banned)", title_justify="left")
    for col, just in (("rule", "left"), ("matches", "right"), ("alerts", "right"), ("keys", "left")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for t in sorted(fired, key=lambda t: (-len(t.alerts), t.rule)):
        keys = t.keys
        named = ", ".join(keys[:KEYS_SHOWN]) + (f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN
                                                else "")
        table.add_row(cell(t.rule), plain(t.matches), plain(len(t.alerts)), cell(named))
    console.print(table)


def _print_details(console: Console, details: list[Any], kind: str) -> None:
    if not details:
        return
    console.print(f"the first {len(details)} lines, one by one (--lines N for more or fewer):")
    for v in details:
        what = {"event": f"pattern {text(v.pattern)}", "ignored": "ignored", "unmatched": "[yellow]no pattern "
                "matched[/]", "rejected": f"[yellow]rejected: {text(v.reason)}[/]"}[v.outcome]
        if kind == "csv" and v.outcome == "event":
            what = f"a row of {text(v.pattern)}"
        if v.outcome == "rejected" and v.pattern:
            what = f"pattern {text(v.pattern)}, {what}"
        console.print(f"  line {v.line_no}: {what}")
        console.print(f"    {text(v.text[:300])}")
        if v.fields:
            fields = ", ".join(f"{text(k)}={text(_value(x))}" for k, x in v.fields.items())
            console.print(f"    -> {fields}")


def _value(x: object) -> str:
    """A field's value as the line had it: numbers without thousands separators (a port is 5060, not 5,060)."""
    if isinstance(x, dt.datetime):
        return x.isoformat()
    return str(x)


def _print_alerts(console: Console, r: Any) -> None:
    alerts = [a for t in r.rules for a in t.alerts]
    if not alerts:
        return
    console.print(f"alerts these lines would raise ({len(alerts)}; none saved, no action taken):")
    for a in alerts:
        action = "alert only" if a.action == "alert" else f"would propose {a.action}"
        if a.trusted:
            action += " (trusted: never banned)"
        if a.report_only:
            action += " (rule on trial: report only)"
        lines = ", ".join(str(n) for n in a.line_nos)
        console.print(f"  {text(a.rule)} {text(a.severity)} {text(a.key_type)} {text(a.key)}: "
                      f"{plain(a.count)} event(s) {text(a.first_seen)} .. {text(a.last_seen)}; {text(action)}"
                      + (f"; lines {text(lines)}" if lines else ""))
