"""`fraudwatch sql` and `fraudwatch summary`: the store, read-only."""

from __future__ import annotations

import argparse

from rich.table import Table

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import cell, out, print_json
from fraudwatch.errors import ExitStatus, StoreError

SQL_ROWS = 1000  # rows a table shows; --json prints them all


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    if name == "sql":
        parser.description = "Tables: sip_events, netfilter_events, cdrs, customers, rejects, positions."
        parser.add_argument("query", metavar="SQL")
        parser.add_argument("--json", action="store_true", help="print rows as a JSON array of objects")
    else:
        parser.description = ("Volumes, the noisiest failing sources, user-agents, firewall drops, spend by account "
                              "and rejected input, read-only.")
        parser.add_argument("--json", action="store_true", help="print the sections as JSON")


def run(args: argparse.Namespace) -> int:
    return _sql(args) if args.command == "sql" else _summary(args)


def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from fraudwatch.store.db import open_read_only

    cfg = config_of(args)
    con = open_read_only(cfg.store_path)
    try:
        kinds = {st.type for st in con.extract_statements(args.query)}
        other = kinds - {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
        if other:  # the event tables are views: DuckDB's own refusal would not say why
            raise StoreError(f"the store is read-only here: `sql` runs queries (SELECT), not "
                             f"{', '.join(sorted(k.name for k in other))}")
        cur = con.execute(args.query)
        names = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall() if names else []
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    if args.json:
        print_json([dict(zip(names, r, strict=True)) for r in rows])
        return ExitStatus.OK
    table = Table(show_lines=False)
    for n in names:
        table.add_column(n, overflow="fold")
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
        table = Table(title=s.title, title_justify="left", title_style="bold")
        for c in s.columns:
            table.add_column(c, overflow="fold")
        for r in s.rows:
            table.add_row(*[cell(v) for v in r])
        console.print(table)
    return ExitStatus.OK
