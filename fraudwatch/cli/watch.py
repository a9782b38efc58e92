"""`fraudwatch watch` (the service) and `fraudwatch status` (how it is doing: fraudwatch.watch.offline)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from rich.text import Text

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import SafeFormatter, as_time, cell, out, plain, print_json, text
from fraudwatch.cli.output import table as new_table
from fraudwatch.errors import ExitStatus, UsageError
from fraudwatch.watch.logline import LineFormatter


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    if name == "status":
        parser.description = ("What the watcher is doing (live, from its socket) or, when it does not run, what the "
                              "store says: per file its format, bytes not yet read, lines/s, parsed and rejected "
                              "lines and the last event time; the store's size, today's events and the last alert.")
        parser.add_argument("--json", action="store_true", help="print as JSON")
        return
    parser.description = ("Follow every [[sources]] entry (files, folders, globs; rotation by rename or "
                          "copytruncate; CDR exports once complete), store each line exactly once, run the rules on "
                          "what arrives and act on the alerts. SIGTERM stops it cleanly, SIGHUP reloads the config "
                          "and rules.")
    parser.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                        help="stop after SECONDS (trials and benchmarks)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def run(args: argparse.Namespace) -> int:
    return _status(args) if args.command == "status" else _watch(args)


def _watch(args: argparse.Namespace) -> int:
    from fraudwatch.watch.service import Watcher

    cfg = config_of(args)
    handler = logging.StreamHandler(sys.stderr)  # journald keeps it: a message quoting input stays one line
    handler.setFormatter(LogFormatter())  # stamped, unless journald stamps it (watch.logline)
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    if not cfg.sources:
        raise UsageError("nothing to watch: the config has no [[sources]]")
    watcher = Watcher(cfg, getattr(args, "config", None) or cfg.path)
    return watcher.run(args.duration)


class LogFormatter(LineFormatter, SafeFormatter):
    """The watcher's line (fraudwatch.watch.logline), its message escaped as everything the CLI prints. The
    sentry process is handed it too (pickled by reference), so its lines are escaped alike."""


def _status(args: argparse.Namespace) -> int:
    from fraudwatch.watch.offline import collect_status

    cfg = config_of(args)
    snap = collect_status(cfg)
    if args.json:
        print_json(snap)
        return ExitStatus.OK
    console = out()
    state = (f"[green]running[/] (pid {text(snap.get('pid'))}, since {text(snap.get('started_at'))})"
             if snap.get("running") else "[yellow]not running[/]")
    console.print(f"watcher: {state}")
    firewall = snap.get("firewall")
    if firewall and firewall.get("dry_run"):
        console.print("firewall: [yellow]dry run[/]: bans are recorded and listed (would ban), never put in a "
                      "firewall")
    elif firewall:
        console.print(f"firewall: {text(firewall.get('backend'))}")
    # file over its format, and the counts whole: fits 80 columns (a long path folds, nothing else is cut)
    table = new_table("file / format", "lag", "lines/s", "parsed", "rejected", "last event",
                      whole=("lag", "lines/s", "parsed", "rejected", "last event"),
                      right=("lag", "lines/s", "parsed", "rejected"))
    for m in snap.get("missing", []):
        table.add_row(cell(m["path"]), "", "", "", "", f"[red]missing[/]: {text(m.get('error'))}")
    for f in snap.get("files", []):
        table.add_row(Text(f"{plain(f['path'])}\n{plain(f.get('format') or '?')}"), _bytes(f.get("lag_bytes", 0)),
                      f"{f.get('lines_per_s', 0):,.0f}", f"{f.get('parsed', 0):,}", f"{f.get('rejected', 0):,}",
                      cell(as_time(f.get("last_event"))))
    console.print(table)
    for m in snap.get("missing", []):
        since = f" since {text(m['since'])}" if m.get("since") else ""
        console.print(f"[red]missing[/] (not read until it appears; then read from its start){since}: "
                      f"{text(m['path'])}: {text(m.get('error'))}")
    for f in snap.get("files", []):
        if f.get("parked"):
            console.print(f"[red]parked[/] (not read until replaced or the watcher restarts): {text(f['path'])}: "
                          f"{text(str(f['parked']))}")
    dry_run = bool(firewall and firewall.get("dry_run"))
    _print_rules(snap.get("rules"), dry_run)
    console.print(f"store: {text(snap['store'])} ({_bytes(snap.get('store_bytes', 0))}; event segments "
                  f"{_bytes(snap.get('segments_bytes', 0))}; snapshot for readers "
                  f"{_bytes(snap.get('read_copy_bytes', 0))}), events today: {snap.get('events_today', 0):,}")
    last = snap.get("last_alert")
    if last:
        console.print(f"last alert: #{text(str(last['id']))} {text(last['severity'])} {text(last['rule'])} "
                      f"{text(last['key'])} ({text(proposed(str(last['action']), dry_run))})")
    if snap.get("store_error"):
        console.print(f"[red]{text(snap['store_error'])}[/]")
    return ExitStatus.OK


# What an alert's action means today (lock_account is proposed only: account locking comes with the VOS3000
# integration), for the status's "last alert" line.
_ACTIONS = {"ban_ip": "proposed: ban the IP", "lock_account": "proposed: lock the account (not carried out)",
            "alert": "alert only"}


def proposed(action: str, dry_run: bool) -> str:
    if action == "ban_ip" and dry_run:
        return "would ban the IP (dry run)"
    return _ACTIONS.get(action, f"proposed: {action}")


def _print_rules(rules: dict[str, Any] | None, dry_run: bool) -> None:
    """Per rule, matches, alerts and bans in the last hour and day (like a fail2ban jail's status)."""
    if rules is None:
        return
    console = out()
    if not rules:
        console.print("rules: no matches in the last day")
        return
    bans = "would ban" if dry_run else "bans"
    table = new_table("rule", "matches", "alerts", bans, whole=("rule", "matches", "alerts", bans),
                      right=("matches", "alerts", bans), title="per rule: last hour / last day")
    order = sorted(rules.items(), key=lambda kv: (-kv[1]["day"]["alerts"], -kv[1]["day"]["matches"], kv[0]))
    for rule, c in order:
        table.add_row(cell(rule), *[f"{c['hour'][k]:,} / {c['day'][k]:,}" for k in ("matches", "alerts", "bans")])
    console.print(table)


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{n} B"

