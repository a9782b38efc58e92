"""What each CLI subcommand does, between the argument parser and the stages: load config, open the store,
call the stage, present the result (rich tables for people, JSON for scripts)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from fraudwatch.config import Config, load_config
from fraudwatch.errors import SourceError, StoreError, UsageError
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.jsontext import dumps

if TYPE_CHECKING:
    from fraudwatch.detect.runners.scorer import Scorer


def _config(args: argparse.Namespace) -> Config:
    cfg = load_config(getattr(args, "config", None))
    db = getattr(args, "db", None)
    if db is not None:
        from dataclasses import replace

        cfg = replace(cfg, store_path=db)
    return cfg


def _formats(cfg: Config) -> dict[str, Format]:
    return load_formats(cfg.format_dirs)


def _out() -> Console:
    """Stdout for people; wide enough for the tables when it is a pipe or a file."""
    return Console(soft_wrap=False, highlight=False, width=None if sys.stdout.isatty() else 160)


def cmd_ingest(args: argparse.Namespace) -> int:
    from fraudwatch.batchmalloc import for_backfill

    for_backfill()
    cfg = _config(args)
    scorer = None
    if args.detect:  # first thing: its start overlaps the ingest's (see Scorer)
        from fraudwatch.detect.runners.scorer import Scorer

        scorer = Scorer()
    try:
        return _ingest(args, cfg, scorer)
    finally:
        if scorer is not None:
            scorer.close()


def _ingest(args: argparse.Namespace, cfg: Config, scorer: Scorer | None) -> int:
    from fraudwatch.ingest import Ingestor, expand_paths
    from fraudwatch.store.db import Store

    formats = _formats(cfg)
    if args.format and args.format not in formats:
        raise UsageError(f"unknown format '{args.format}' (known: {', '.join(sorted(formats))})")
    jobs: list[tuple[Path, str | None, str]] = []
    if args.paths:
        for p in expand_paths(args.paths):
            jobs.append((p, args.format, args.timezone or "UTC"))
    else:
        if not cfg.sources:
            raise UsageError("nothing to ingest: give PATHs, or [[sources]] in the config")
        for src in cfg.sources:
            for p in expand_paths([src.path]):
                jobs.append((p, args.format or src.format, args.timezone or src.timezone))
    total = sum(p.stat().st_size for p, _, _ in jobs)
    show = not args.quiet and not args.json and sys.stderr.isatty()
    summaries = []
    alert_count: int | None = None  # alerts detection saved
    with Store(cfg.store_path) as store:
        ing = Ingestor(store, formats, cfg.ingest)
        # each file's format, detected once here (the ingest is given its name) for its table
        found = [ing.known_format(p, fmt) for p, fmt, _ in jobs]
        jobs = [(p, f.name if f is not None else fmt, tz) for (p, fmt, tz), f in zip(jobs, found, strict=True)]
        tables = [f.table if f is not None else None for f in found]
        # Accounts first: the credit-limit rule reads balances when detection runs during ingest.
        order = sorted(range(len(jobs)), key=lambda i: tables[i] != "customers")
        jobs, tables = [jobs[i] for i in order], [tables[i] for i in order]
        alongside = None
        if args.detect:
            from fraudwatch.commands_detect import detect_alongside

            alongside = detect_alongside(cfg, store.con, tables, scorer)
            ing.on_commit = alongside.on_commit if alongside is not None else None
        progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=Console(stderr=True), disable=not show, transient=True)
        try:
            with progress:
                task = progress.add_task("ingest", total=total or 1)
                done = 0
                for i, (path, fmt, tz) in enumerate(jobs):
                    progress.update(task, description=f"ingest {path.name}")
                    if alongside is not None:
                        alongside.begin(i)

                    def advance(_path: Path, n: int, base: int = done) -> None:
                        progress.update(task, completed=base + n)

                    summaries.append(ing.ingest(path, fmt, tz, advance))
                    done += path.stat().st_size
                    progress.update(task, completed=done)
            if alongside is not None:
                from fraudwatch.commands_detect import finish_alongside

                alert_count = finish_alongside(alongside, store.con)
        finally:
            if alongside is not None:
                alongside.close()
    how = "alongside the ingest" if alert_count is not None else "replay after the ingest"
    if args.detect and alert_count is None:
        from fraudwatch.commands_detect import run_detect

        alert_count = len(run_detect(cfg, None, None, [], dry_run=False).alerts)
    if args.json:
        out: dict[str, Any] = {"store": str(cfg.store_path), "files": [s.as_json() for s in summaries]}
        if alert_count is not None:
            out["alerts"] = alert_count
            out["detection"] = how
        print(dumps(out))
    else:
        _print_ingest(summaries, cfg.store_path)
        if alert_count is not None:
            _out().print(f"detection over the stored events ({how}): {alert_count} alert(s) "
                         "(fraudwatch alerts list)")
    for s in summaries:
        if s.error:
            print(f"fraudwatch: {s.error}", file=sys.stderr)
    return 1 if any(s.error for s in summaries) else 0


def _print_ingest(summaries: list[Any], store: Path) -> None:
    console = _out()
    table = Table(title=f"ingested into {store}", title_justify="left")
    for col in ("file", "format", "lines", "parsed", "ignored", "rejected", "by event type"):
        table.add_column(col, justify="right" if col in ("lines", "parsed", "ignored", "rejected") else "left")
    totals: Counter[str] = Counter()
    for s in summaries:
        kinds = ", ".join(f"{k} {v:,}" for k, v in s.counts.parsed.most_common(6))
        if s.error:
            kinds = f"[red]error: {s.error}[/red]"
        elif s.counts.rejected:
            kinds += f"  [yellow](rejects: {', '.join(f'{r} {n:,}' for r, n in s.counts.reasons.most_common(3))})[/]"
        table.add_row(str(s.path), s.format or "?", f"{s.lines:,}", f"{s.parsed:,}", f"{s.counts.ignored:,}",
                      f"{s.counts.rejected:,}", kinds)
        totals.update({"lines": s.lines, "parsed": s.parsed, "ignored": s.counts.ignored,
                       "rejected": s.counts.rejected})
    table.add_section()
    table.add_row("total", "", f"{totals['lines']:,}", f"{totals['parsed']:,}", f"{totals['ignored']:,}",
                  f"{totals['rejected']:,}", "")
    console.print(table)


def cmd_formats(args: argparse.Namespace) -> int:
    cfg = _config(args)
    formats = _formats(cfg)
    if args.formats_command in (None, "list"):
        from fraudwatch.formats.spec import LineFormat

        table = Table()
        for col in ("name", "kind", "table", "patterns", "description", "file"):
            table.add_column(col)
        for name, fmt in sorted(formats.items()):
            n = len(fmt.patterns) if isinstance(fmt, LineFormat) else len(fmt.labels)
            table.add_row(name, fmt.kind, fmt.table, str(n), fmt.description, str(fmt.path))
        _out().print(table)
        return 0
    from fraudwatch.formats_test import run_formats_test

    return run_formats_test(args.file, args.format, formats, args.timezone, args.json, args.examples)


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    from fraudwatch.store.db import open_read_only

    cfg = _config(args)
    con = open_read_only(cfg.store_path)
    try:
        cur = con.execute(args.query)
        names = [d[0] for d in cur.description] if cur.description else []
        rows = cur.fetchall() if names else []
    except duckdb.Error as exc:
        raise StoreError(f"query failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    if args.json:
        print(dumps([dict(zip(names, r, strict=True)) for r in rows]))
        return 0
    table = Table(show_lines=False)
    for n in names:
        table.add_column(n, overflow="fold")
    limit = 1000
    for r in rows[:limit]:
        table.add_row(*[_cell(v) for v in r])
    console = _out()
    console.print(table)
    if len(rows) > limit:
        console.print(f"({len(rows):,} rows, first {limit:,} shown; use --json or LIMIT)")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from fraudwatch.report.summary import summarize
    from fraudwatch.store.db import open_read_only

    cfg = _config(args)
    con = open_read_only(cfg.store_path)
    try:
        sections = summarize(con)
    finally:
        con.close()
    if args.json:
        print(dumps([{"title": s.title, "rows": [dict(zip(s.columns, r, strict=True)) for r in s.rows]}
                     for s in sections]))
        return 0
    console = _out()
    for s in sections:
        table = Table(title=s.title, title_justify="left", title_style="bold")
        for c in s.columns:
            table.add_column(c, overflow="fold")
        for r in s.rows:
            table.add_row(*[_cell(v) for v in r])
        console.print(table)
    return 0


def _cell(value: object) -> str:
    """A value for a table cell: attacker-controlled text is shown literally (rich markup escaped)."""
    from rich.markup import escape

    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S%z")
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def cmd_simulate(args: argparse.Namespace) -> int:
    from fraudwatch.sim import simulate

    start = None
    if args.start:
        try:
            start = dt.date.fromisoformat(args.start)
        except ValueError:
            raise UsageError(f"--start must be YYYY-MM-DD, not '{args.start}'") from None
    if args.days < 1 or args.accounts < 1:
        raise UsageError("--days and --accounts must be at least 1")
    try:
        res = simulate(args.out, days=args.days, accounts=args.accounts, seed=args.seed, start=start)
    except OSError as exc:
        raise SourceError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    console = _out()
    console.print(f"simulated {args.days} day(s), {args.accounts} accounts, seed {args.seed} into {res.out_dir}")
    table = Table()
    table.add_column("file")
    table.add_column("lines", justify="right")
    for name, n in sorted(res.files.items()):
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(f"{res.incidents} labelled incidents in labels.csv; "
                  f"next: fraudwatch --config {res.out_dir / 'fraudwatch.toml'} ingest")
    return 0
