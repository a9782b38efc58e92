"""The `fraudwatch` command: parses arguments, calls the stage, maps errors to one line and an exit code.

`--config` and `--db` are global and accepted before or after the subcommand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from fraudwatch import __version__
from fraudwatch.errors import FraudwatchError, UsageError

EXIT_INTERNAL = 70


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _globals(p: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    p.add_argument("--config", type=Path, default=default, metavar="FILE",
                   help="config file (default: ./fraudwatch.toml, then /etc/fraudwatch/fraudwatch.toml)")
    p.add_argument("--db", type=Path, default=default, metavar="PATH", help="store file (overrides [store] path)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fraudwatch", description=(
        "Fraud and attack detection for VoIP softswitches (VOS3000 first): ingest SIP logs, kernel firewall "
        "logs and CDRs into DuckDB, and query them."),
        epilog="Run `fraudwatch COMMAND --help` for a command's options.")
    parser.add_argument("--version", action="version", version=f"fraudwatch {__version__}")
    _globals(parser, suppress=False)
    common = _Parser(add_help=False)
    _globals(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ing = sub.add_parser("ingest", parents=[common], help="backfill log files, CDR exports and folders",
                         description="Read files and folders (plain or .gz) into the store. Files already read "
                                     "add nothing; grown files add only their new part.")
    ing.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                     help="files, folders or globs (default: the config's [[sources]])")
    ing.add_argument("--format", help="format name for all PATHs (default: detected per file)")
    ing.add_argument("--timezone", help="zone of timestamps that carry none (default UTC, or the source's)")
    ing.add_argument("--json", action="store_true", help="print the summary as JSON")
    ing.add_argument("--quiet", action="store_true", help="no progress bar")
    ing.add_argument("--detect", action="store_true",
                     help="then replay the store through the rules and save the alerts (like `detect`)")

    fmts = sub.add_parser("formats", parents=[common], help="list formats, or test one against a file")
    fsub = fmts.add_subparsers(dest="formats_command", metavar="ACTION", parser_class=_Parser)
    fsub.add_parser("list", parents=[common], help="the formats fraudwatch knows")
    ft = fsub.add_parser("test", parents=[common], help="what each pattern matches in FILE (like fail2ban-regex)",
                         description="Parse FILE without storing anything: per-pattern match counts, unmatched "
                                     "lines with examples; --json prints one object per line.")
    ft.add_argument("file", type=Path, metavar="FILE")
    ft.add_argument("--format", help="format name (default: detected)")
    ft.add_argument("--timezone", default="UTC", help="zone of timestamps that carry none (default UTC)")
    ft.add_argument("--json", action="store_true", help="one JSON object per line: line, matched, pattern, fields")
    ft.add_argument("--examples", type=int, default=5, metavar="N", help="unmatched examples to show (default 5)")

    sq = sub.add_parser("sql", parents=[common], help="run a read-only SQL query over the store",
                        description="Tables: sip_events, netfilter_events, cdrs, customers, rejects, positions.")
    sq.add_argument("query", metavar="SQL")
    sq.add_argument("--json", action="store_true", help="print rows as a JSON array of objects")

    det = sub.add_parser("detect", parents=[common], help="replay stored events through the rules, on event time",
                         description="Run the rules over stored events in time order and save the alerts (origin "
                                     "'replay'; a second replay of the same range replaces them). No notification "
                                     "is sent unless --notify.")
    det.add_argument("--since", metavar="T", help="start (ISO time, UTC unless zoned; or an age: 24h, 7d)")
    det.add_argument("--until", metavar="T", help="end (exclusive)")
    det.add_argument("--rules", type=Path, action="append", metavar="DIR",
                     help="extra rules folder (overrides shipped rules by id; repeatable)")
    det.add_argument("--notify", action="store_true", help="send the alerts through the configured channels")
    det.add_argument("--dry-run", action="store_true", help="print alerts without saving them")
    det.add_argument("--json", action="store_true", help="print the result as JSON")

    al = sub.add_parser("alerts", parents=[common], help="list or show alerts")
    asub = al.add_subparsers(dest="alerts_command", metavar="ACTION", parser_class=_Parser)
    al_list = asub.add_parser("list", parents=[common], help="alerts, oldest first")
    al_list.add_argument("--since", metavar="T", help="only alerts active since T (ISO time or 24h, 7d)")
    al_list.add_argument("--rule", help="only this rule id")
    al_list.add_argument("--severity", choices=["warning", "critical"])
    al_list.add_argument("--limit", type=int, default=1000)
    al_list.add_argument("--json", action="store_true", help="print as a JSON array")
    al_show = asub.add_parser("show", parents=[common], help="one alert with its evidence and raw lines")
    al_show.add_argument("id", type=int, metavar="ID")
    al_show.add_argument("--json", action="store_true")
    from fraudwatch.commands_notify import add_alert_actions, add_notify_command

    add_alert_actions(asub, common)
    add_notify_command(sub, common)

    lint = sub.add_parser("lint", parents=[common], help="validate rule files (file, line and reason per error)")
    lint.add_argument("dirs", nargs="*", metavar="DIR", help="rule folders (default: shipped + config [rules] dirs)")

    sm = sub.add_parser("summary", parents=[common], help="what is in the store, at a glance",
                        description="Volumes, the noisiest failing sources, user-agents, firewall drops, spend by "
                                    "account and rejected input, read-only.")
    sm.add_argument("--json", action="store_true", help="print the sections as JSON")

    from fraudwatch.commands_watch import add_parsers as watch_parsers

    watch_parsers(sub, common)
    from fraudwatch.commands_bans import add_parser as bans_parser

    bans_parser(sub, common)

    sim = sub.add_parser("simulate", parents=[common], help="write realistic VOS3000 traffic with labelled attacks",
                         description="Write sipproxy.log, mbx.log, kern.log, cdr/, customers.csv, labels.csv and a "
                                     "ready fraudwatch.toml into DIR. Deterministic for a seed.")
    sim.add_argument("--out", type=Path, required=True, metavar="DIR")
    sim.add_argument("--days", type=int, default=2)
    sim.add_argument("--accounts", type=int, default=50)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--start", metavar="YYYY-MM-DD", help="first simulated day (default 2026-11-01)")
    return parser


def run(argv: Sequence[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from fraudwatch import commands, commands_detect, commands_watch

    if args.command == "alerts" and args.alerts_command is None:
        raise UsageError("alerts: say list or show (see fraudwatch alerts --help)")
    from fraudwatch import commands_notify

    if args.command == "alerts" and args.alerts_command in commands_notify.ALERT_ACTIONS:
        return commands_notify.cmd_alerts(args)
    from fraudwatch import commands_bans

    handler = {
        "detect": commands_detect.cmd_detect,
        "alerts": commands_detect.cmd_alerts,
        "lint": commands_detect.cmd_lint,
        "ingest": commands.cmd_ingest,
        "formats": commands.cmd_formats,
        "sql": commands.cmd_sql,
        "simulate": commands.cmd_simulate,
        "summary": commands.cmd_summary,
        "notify": commands_notify.cmd_notify,
        "watch": commands_watch.cmd_watch,
        "status": commands_watch.cmd_status,
        "bans": commands_bans.cmd_bans,
    }[args.command]
    return handler(args)


def _interrupted(exc: Exception) -> bool:
    """Ctrl-C that reached DuckDB: its own interruption, or the KeyboardInterrupt of a Python function it was
    calling (the ingest's address check), which it hands back wrapped in an error of its own."""
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.InterruptException):
        return True
    return "Python exception occurred while executing the UDF: KeyboardInterrupt" in str(exc)


def program() -> int:
    """The `fraudwatch` program (`python -m fraudwatch`, the installed command): `main`, then a quick exit.

    Freezing the heap first keeps the interpreter's collections at exit from walking every object the command
    made: 0.07-0.08 s to exit after an ingest instead of 0.28-0.35 s. Only for a process about to end, so not
    in `main`, which tests call in their own process."""
    code = main()
    gc.freeze()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except FraudwatchError as exc:
        print(f"fraudwatch: {exc}", file=sys.stderr)
        return exc.exit_code
    except SystemExit as exc:  # --help and --version end here
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("fraudwatch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as exc:  # the last line of defence: one line, never a traceback (unless asked)
        if _interrupted(exc):
            print("fraudwatch: interrupted", file=sys.stderr)
            return 130
        if os.environ.get("FRAUDWATCH_DEBUG"):
            raise
        detail = json.dumps(str(exc).splitlines()[0] if str(exc) else "")[1:-1]
        print(f"fraudwatch: internal error: {type(exc).__name__}: {detail} "
              "(set FRAUDWATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
