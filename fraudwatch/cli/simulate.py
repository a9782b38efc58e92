"""`fraudwatch simulate`: realistic VOS3000 traffic with labelled attacks, written into a folder."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from fraudwatch.cli.output import cell, out, text
from fraudwatch.cli.output import table as new_table
from fraudwatch.errors import ExitStatus, SourceError, UsageError


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.description = ("Write sipproxy.log, mbx.log, kern.log, cdr/, customers.csv, labels.csv and a ready "
                          "fraudwatch.toml into DIR. Deterministic for a seed.")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="a new or empty folder")
    parser.add_argument("--force", action="store_true",
                        help="DIR holds an earlier simulation: remove what it (and its store) wrote first; refused "
                             "when DIR holds anything else")
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", metavar="YYYY-MM-DD", help="first simulated day (default 2026-11-01)")


def run(args: argparse.Namespace) -> int:
    from fraudwatch.sim import simulate
    from fraudwatch.sim.folder import prepare

    start = None
    if args.start:
        try:
            start = dt.date.fromisoformat(args.start)
        except ValueError:
            raise UsageError(f"--start must be YYYY-MM-DD, not '{args.start}'") from None
    if args.days < 1 or args.accounts < 1:
        raise UsageError("--days and --accounts must be at least 1")
    try:
        removed = prepare(args.out, args.force)
        res = simulate(args.out, days=args.days, accounts=args.accounts, seed=args.seed, start=start)
    except OSError as exc:
        raise SourceError(f"{args.out}: cannot write: {exc.strerror or exc}") from None
    console = out()
    if removed:
        console.print(f"--force: removed the earlier simulation from {text(str(args.out))} ({len(removed)} entries: "
                      f"{text(', '.join(removed))})")
    console.print(f"simulated {args.days} day(s), {args.accounts} accounts, seed {args.seed} into "
                  f"{text(str(res.out_dir))}")
    table = new_table("file", "lines", whole=("file", "lines"), right=("lines",))
    for name, n in sorted(res.files.items()):
        table.add_row(cell(name), f"{n:,}")
    console.print(table)
    console.print(f"{res.incidents} labelled incidents in labels.csv; "
                  f"next: fraudwatch --config {text(str(res.out_dir / 'fraudwatch.toml'))} ingest")
    return ExitStatus.OK
