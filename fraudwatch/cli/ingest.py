"""`fraudwatch ingest`: backfill files and folders into the store, with a progress bar, and with `--detect`
score what is stored (alongside the ingest, or a replay after it: fraudwatch.detect.runners.batch)."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from fraudwatch import tuning
from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import cell, out, plain, print_json, text
from fraudwatch.cli.output import table as new_table
from fraudwatch.config import Config
from fraudwatch.errors import ExitStatus, UsageError
from fraudwatch.formats.registry import load_formats

if TYPE_CHECKING:
    from fraudwatch.detect.runners.scorer import Scorer


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.description = ("Read files and folders (plain or .gz) into the store. Files already read add nothing; "
                          "grown files add only their new part.")
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="files, folders or globs (default: the config's [[sources]])")
    parser.add_argument("--format", help="format name for all PATHs (default: detected per file)")
    parser.add_argument("--timezone", help="zone of timestamps that carry none (default UTC, or the source's)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--detect", action="store_true",
                        help="then replay the store through the rules and save the alerts (like `detect`)")


def run(args: argparse.Namespace) -> int:
    with tuning.malloc_for_backfill():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    cfg = config_of(args)
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

    formats = load_formats(cfg.format_dirs)
    if args.format and args.format not in formats:
        raise UsageError(f"unknown format '{args.format}' (known: {', '.join(sorted(formats))})")
    if args.paths:
        wanted = [(p, args.format, args.timezone or "UTC") for p in args.paths]
    elif cfg.sources:
        wanted = [(s.path, args.format or s.format, args.timezone or s.timezone) for s in cfg.sources]
    else:
        raise UsageError("nothing to ingest: give PATHs, or [[sources]] in the config")
    files = [(p, fmt, tz) for pattern, fmt, tz in wanted for p in expand_paths([pattern])]
    show = not args.quiet and not args.json and sys.stderr.isatty()
    summaries = []
    alert_count: int | None = None  # alerts detection saved
    incident_count = 0  # the incidents they make
    with Store(cfg.store_path) as store:
        ing = Ingestor(store, formats, cfg.ingest)
        jobs = ing.plan(files)
        total = sum(j.path.stat().st_size for j in jobs)
        alongside = None
        if args.detect:
            from fraudwatch.detect.runners.batch import detect_alongside

            alongside = detect_alongside(cfg, store.con, [j.table for j in jobs], scorer)
            ing.on_commit = alongside.on_commit if alongside is not None else None
        progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=Console(stderr=True, emoji=False, highlight=False),
                            disable=not show, transient=True)
        try:
            with progress:
                task = progress.add_task("ingest", total=total or 1)
                done = 0
                for i, job in enumerate(jobs):
                    progress.update(task, description=f"ingest {text(job.path.name)}")
                    if alongside is not None:
                        alongside.begin(i)

                    def advance(_path: Path, n: int, base: int = done) -> None:
                        progress.update(task, completed=base + n)

                    summaries.append(ing.ingest(job.path, job.format, job.timezone, advance))
                    done += job.path.stat().st_size
                    progress.update(task, completed=done)
            if alongside is not None:
                from fraudwatch.detect.runners.batch import finish_alongside

                found = finish_alongside(alongside, store.con, cfg)
                if found is not None:
                    alert_count, incident_count = len(found.alerts), len(found.incidents)
        finally:
            if alongside is not None:
                alongside.close()
    how = "alongside the ingest" if alert_count is not None else "replay after the ingest"
    if args.detect and alert_count is None:
        from fraudwatch.detect.runners.batch import run_detect

        with tuning.gc_for_batch():
            replayed = run_detect(cfg, None, None, [], dry_run=False)
            alert_count, incident_count = len(replayed.alerts), len(replayed.incidents)
    if args.json:
        result: dict[str, Any] = {"store": str(cfg.store_path), "files": [s.as_json() for s in summaries]}
        if alert_count is not None:
            result["alerts"] = alert_count
            result["incidents"] = incident_count
            result["detection"] = how
        print_json(result)
    else:
        _print_ingest(summaries, cfg.store_path)
        if alert_count is not None:
            out().print(f"detection over the stored events ({how}): {alert_count} alert(s) in {incident_count} "
                        "incident(s) (fraudwatch incidents list)")
    for s in summaries:
        if s.error:
            print(f"fraudwatch: {plain(s.error)}", file=sys.stderr)
    return ExitStatus.FAILED if any(s.error for s in summaries) else ExitStatus.OK


def _print_ingest(summaries: list[Any], store: Path) -> None:
    console = out()
    counts = ("lines", "parsed", "ignored", "rejected")
    table = new_table("file", "format", *counts, "by event type", whole=("format", *counts), right=counts,
                      title=f"ingested into {store}")
    totals: Counter[str] = Counter()
    for s in summaries:
        kinds = text(", ".join(f"{k} {v:,}" for k, v in s.counts.parsed.most_common(6)))
        if s.error:
            kinds = f"[red]error: {text(s.error)}[/red]"
        elif s.counts.rejected:
            reasons = ", ".join(f"{r} {n:,}" for r, n in s.counts.reasons.most_common(3))
            kinds += f"  [yellow](rejects: {text(reasons)})[/]"
        table.add_row(cell(str(s.path)), cell(s.format or "?"), f"{s.lines:,}", f"{s.parsed:,}",
                      f"{s.counts.ignored:,}", f"{s.counts.rejected:,}", kinds)
        totals.update({"lines": s.lines, "parsed": s.parsed, "ignored": s.counts.ignored,
                       "rejected": s.counts.rejected})
    table.add_section()
    table.add_row("total", "", f"{totals['lines']:,}", f"{totals['parsed']:,}", f"{totals['ignored']:,}",
                  f"{totals['rejected']:,}", "")
    console.print(table)
