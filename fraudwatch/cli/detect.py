"""`fraudwatch detect` (replay the store through the rules: fraudwatch.detect.runners.batch) and `fraudwatch lint`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fraudwatch import tuning
from fraudwatch.cli.context import config_of, parse_time
from fraudwatch.cli.output import alert_json, out, plain, print_alerts, print_json, text
from fraudwatch.errors import ExitStatus, UsageError


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    if name == "lint":
        parser.description = ("Check rule files: every mistake of every rule in one run, each with its file, line "
                              "and reason (fields the rule's source lacks, values a field never holds such as an "
                              "unknown event name or SIP method, wrong kinds of values, unknown keys).")
        parser.add_argument("dirs", nargs="*", metavar="PATH",
                            help="rule files or folders (default: shipped + config [rules] dirs)")
        return
    parser.description = ("Run the rules over stored events in time order and save the alerts (origin 'replay'; a "
                          "second replay of the same range replaces them). No notification is sent unless --notify.")
    parser.add_argument("--since", metavar="T", help="start (ISO time, UTC unless zoned; or an age: 24h, 7d)")
    parser.add_argument("--until", metavar="T", help="end (exclusive)")
    parser.add_argument("--rules", type=Path, action="append", metavar="DIR",
                        help="extra rules folder (overrides shipped rules by id; repeatable)")
    parser.add_argument("--notify", action="store_true", help="send the alerts through the configured channels")
    parser.add_argument("--dry-run", action="store_true", help="print alerts without saving them")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if args.command == "lint":
        return _lint(args)
    import fraudwatch.detect.runners.batch  # noqa: F401  (frozen with the rest by the batch's collector settings)

    with tuning.gc_for_batch():
        return _detect(args)


def _detect(args: argparse.Namespace) -> int:
    from fraudwatch.detect.runners.batch import run_detect

    cfg = config_of(args)
    since, until = parse_time(args.since), parse_time(args.until)
    if since and until and since >= until:
        raise UsageError("--since must be before --until")
    result = run_detect(cfg, since, until, args.rules or [], args.dry_run)
    rules = result.rules
    if args.notify:
        from fraudwatch.notify.oneshot import notify_incidents, replay_done

        _print_notify_summary("--dry-run: nothing was saved, so nothing was sent" if args.dry_run else
                              notify_incidents(cfg, result.changes, replay_done(result.alerts)))
    if args.json:
        print_json({"since": result.since, "until": result.until, "events": result.events, "rules": len(rules),
                    "alerts": [alert_json(a.as_row()) for a in result.alerts]})
        return ExitStatus.OK
    console = out()
    span = f"{text(result.since)} .. {text(result.until)}" if result.since else "no events"
    console.print(f"replayed {sum(result.events.values()):,} events ({span}) through {len(rules)} rules: "
                  f"{len(result.alerts)} alert(s) in {len(result.incidents)} incident(s)"
                  f"{' (dry run, not saved)' if args.dry_run else ' (fraudwatch incidents list)'}")
    print_alerts([a.as_row() for a in result.alerts])
    return ExitStatus.OK


def _print_notify_summary(line: str) -> None:
    print(f"fraudwatch: --notify: {plain(line)}", file=sys.stderr)


def _lint(args: argparse.Namespace) -> int:
    from fraudwatch.detect.ruleset import load_rules

    cfg = config_of(args)
    dirs = [Path(d) for d in args.dirs] if args.dirs else list(cfg.rule_dirs)
    ruleset = load_rules(dirs, collect=True, shipped=not args.dirs)
    in_order = sorted(ruleset.errors, key=lambda e: (str(e.where.path), e.where.line or 0) if e.where else ("", 0))
    for err in in_order:  # by file and line, whichever rule or check found them
        print(f"fraudwatch: {plain(str(err))}", file=sys.stderr)
    n = len(ruleset.rules)
    print(f"{n} rule(s) valid, {len(ruleset.errors)} error(s)")
    return ExitStatus.USAGE if ruleset.errors else ExitStatus.OK
