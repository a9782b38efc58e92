"""`fraudwatch sql` and `fraudwatch summary`: the store, read-only."""

from __future__ import annotations

import argparse

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import cell, out, print_json, whole_columns
from fraudwatch.cli.output import table as new_table
from fraudwatch.errors import ExitStatus
from fraudwatch.store.sandbox import DEFAULT_SECONDS

SQL_ROWS = 1000  # rows a table shows; --json prints them all


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    if name == "sql":
        parser.description = ("One read-only query (SELECT, or EXPLAIN of one) over the store, in a sandbox: no file "
                              "outside the store, no network, no settings. Tables: sip_events, netfilter_events, "
                              "cdrs, customers, rejects, positions, alerts, bans, ...")
        parser.add_argument("query", metavar="SQL")
        parser.add_argument("--json", action="store_true", help="print rows as a JSON array of objects")
        parser.add_argument("--timeout", type=_seconds, default=DEFAULT_SECONDS, metavar="SECONDS",
                            help=f"stop the query after this long (default {DEFAULT_SECONDS:g})")
    else:
        parser.description = ("Volumes, the noisiest failing sources, user-agents, firewall drops, spend by account "
                              "and rejected input, read-only.")
        parser.add_argument("--json", action="store_true", help="print the sections as JSON")


def run(args: argparse.Namespace) -> int:
    return _sql(args) if args.command == "sql" else _summary(args)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r}: give seconds, more than 0 and at most 86400")
    return value


def _sql(args: argparse.Namespace) -> int:
    from fraudwatch.store.db import open_read_only
    from fraudwatch.store.sandbox import run as run_query

    cfg = config_of(args)
    con = open_read_only(cfg.store_path, sandboxed=True)
    try:
        got = run_query(con, args.query, [], args.timeout)
    finally:
        con.close()
    names, rows = got.columns, got.rows
    if args.json:
        print_json([dict(zip(names, r, strict=True)) for r in rows])
        return ExitStatus.OK
    whole, right = whole_columns(names, rows)
    table = new_table(*names, whole=whole, right=right)
    for r in rows[:SQL_ROWS]:
        table.add_row(*[cell(v) for v in r])
    console = out()
    console.print(table)
    if len(rows) > SQL_ROWS:
        console.print(f"({len(rows):,} rows, first {SQL_ROWS:,} shown; use --json or LIMIT)")
    return ExitStatus.OK


def _summary(args: argparse.Namespace) -> int:
    from fraudwatch.report.summary import summarize
    from fraudwatch.store.db import open_read_only

    cfg = config_of(args)
    con = open_read_only(cfg.store_path)
    try:
        sections = summarize(con)
    finally:
        con.close()
    if args.json:
        print_json([{"title": s.title, "rows": [dict(zip(s.columns, r, strict=True)) for r in s.rows]}
                    for s in sections])
        return ExitStatus.OK
    console = out()
    for s in sections:
        if not s.rows:  # an empty table's borders say less than one line
            console.print(cell(f"{s.title}: none"))
            continue
        whole, right = whole_columns(s.columns, s.rows)
        table = new_table(*s.columns, whole=whole, right=right, title=s.title)
        for r in s.rows:
            table.add_row(*[cell(v) for v in r])
        console.print(table)
    return ExitStatus.OK
