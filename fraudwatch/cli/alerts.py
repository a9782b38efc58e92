"""`fraudwatch alerts`: list and show the stored alerts (with their raw log lines, found by their content:
fraudwatch.report.evidence), and the notification side of them: silence, unsilence, silences, outbox."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import ipaddress
import json
from typing import Any

from fraudwatch.cli.context import config_of, parse_time
from fraudwatch.cli.output import alert_json, cell, nothing_matches, out, plain, print_alerts, print_json, text, when
from fraudwatch.cli.output import table as new_table
from fraudwatch.config import Config
from fraudwatch.errors import ExitStatus, StoreError, UsageError
from fraudwatch.netaddr import parse_ip

ALERT_ACTIONS = ("silence", "unsilence", "silences", "outbox")  # the notification side's, in fraudwatch.notify


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    asub = parser.add_subparsers(dest="alerts_command", metavar="ACTION", parser_class=type(parser))
    al_list = asub.add_parser("list", parents=[common], help="alerts, newest first",
                              description="Alerts, the newest detected first. --ip and --account also find "
                                          "alerts whose key has the address or account as one of its parts "
                                          "(ip|user) and alerts whose evidence names it (the new address an "
                                          "account came from, the accounts an address tried).")
    al_list.add_argument("--since", metavar="T", help="only alerts active since T (ISO time or 24h, 7d)")
    al_list.add_argument("--rule", help="only this rule id")
    al_list.add_argument("--severity", choices=["warning", "critical"])
    al_list.add_argument("--ip", metavar="IP", help="only alerts about this address (key or evidence)")
    al_list.add_argument("--account", metavar="ACCOUNT", help="only alerts about this account (key or evidence)")
    al_list.add_argument("--key", metavar="KEY", help="only alerts with this key (or one part of a composite key)")
    al_list.add_argument("--limit", type=int, default=1000, help="at most this many, the newest (default 1000)")
    al_list.add_argument("--json", action="store_true", help="print as a JSON array")
    al_show = asub.add_parser("show", parents=[common], help="one alert with its evidence and raw lines")
    al_show.add_argument("id", type=int, metavar="ID")
    al_show.add_argument("--json", action="store_true")
    si = asub.add_parser("silence", parents=[common], help="stop notifications about a key for a while",
                         description="Alerts on KEY are still detected, stored and acted on, but not notified "
                                     "until the silence ends. KEY is an alert key (an IP, an account, ...), the "
                                     "first part of a composite key, or a CIDR network.")
    si.add_argument("key", metavar="KEY")
    si.add_argument("--rule", metavar="R", help="only alerts of this rule id (default: every rule)")
    si.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="how long: 30m, 2h, 7d")
    si.add_argument("--reason", help="why (shown in `alerts silences`)")
    un = asub.add_parser("unsilence", parents=[common], help="end a silence early (by id, or every one on KEY)")
    un.add_argument("target", metavar="KEY|ID")
    ss = asub.add_parser("silences", parents=[common], help="silences in effect")
    ss.add_argument("--all", action="store_true", help="also ended and expired ones")
    ss.add_argument("--json", action="store_true")
    ob = asub.add_parser("outbox", parents=[common], help="notifications pending or failed",
                         description="Every notification is recorded here before it is sent. Without --all: "
                                     "what is still pending (and why) or failed.")
    ob.add_argument("--all", action="store_true", help="also the sent ones")
    ob.add_argument("--json", action="store_true")
    ob.add_argument("--limit", type=int, default=200)
    ob.add_argument("--retry", action="store_true", help="put failed notifications back to pending")


def run(args: argparse.Namespace) -> int:
    if args.alerts_command is None:
        raise UsageError("alerts: say list or show (see fraudwatch alerts --help)")
    if args.alerts_command in ALERT_ACTIONS:
        return _notify_side(args)
    from fraudwatch.store.db import open_read_only

    cfg = config_of(args)
    filters = _list_filters(args) if args.alerts_command == "list" else {}
    con = open_read_only(cfg.store_path)
    try:
        if args.alerts_command == "show":
            return _show(con, args, cfg)
        return _list(con, args, filters)
    finally:
        con.close()


def _list_filters(args: argparse.Namespace) -> dict[str, Any]:
    """`alerts list`'s filters, checked: an --ip that is not an address is a usage error, not an empty list."""
    if args.limit < 1:
        raise UsageError("--limit must be at least 1")
    ip = None
    if args.ip is not None:
        addr = parse_ip(args.ip.strip())
        if addr is None:
            raise UsageError(f"--ip '{args.ip}' is not an IP address")
        ip = str(addr)  # the canonical form alert keys use
    return {"since": parse_time(args.since), "rule": args.rule or None, "severity": args.severity or None,
            "ip": ip, "account": args.account or None, "key": args.key or None}


def _list(con: Any, args: argparse.Namespace, filters: dict[str, Any]) -> int:
    from fraudwatch.store.alerts import alert_totals, list_alerts

    rows = list_alerts(con, limit=args.limit, **filters)
    if args.json:
        print_json([alert_json(r) for r in rows])
        return ExitStatus.OK
    if rows:
        print_alerts(rows)
        return ExitStatus.OK
    total, newest = alert_totals(con)
    given = " ".join(f"--{name} {args.since if name == 'since' else value}"
                     for name, value in filters.items() if value is not None)
    print(nothing_matches("alerts", given, total, newest))  # the filter hid everything: how much there is to find
    return ExitStatus.OK


def _show(con: Any, args: argparse.Namespace, cfg: Config) -> int:
    from fraudwatch.report.evidence import describe, evidence_lines
    from fraudwatch.store.alerts import alert_by_id

    row = alert_by_id(con, args.id)
    if row is None:
        raise StoreError(f"no alert {args.id}")
    evidence = json.loads(row["evidence"] or "{}")
    lines = evidence_lines(con, evidence, cfg)
    if args.json:
        obj = alert_json(row)
        obj["description"] = row["description"]
        obj["raw_lines"] = lines
        print_json(obj)
        return ExitStatus.OK
    console = out()
    console.print(f"[bold]alert {row['id']}[/]: {text(row['severity'])} {text(row['rule'])} — "
                  f"{text(row['description'])}")
    for label in ("key_type", "key", "first_seen", "last_seen", "detected_at", "count", "value", "action", "trusted",
                  "report_only", "origin", "updates"):
        console.print(f"  {label:12s} {text(row[label])}")
    for k, v in evidence.items():
        if k != "lines":
            console.print(f"  {text(k):12s} {text(json.dumps(v, ensure_ascii=False, default=str)[:400])}")
    if lines:
        console.print("  evidence lines:")
        for item in lines:
            console.print(f"    {text(describe(item))}")
    return ExitStatus.OK


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _notify_side(args: argparse.Namespace) -> int:
    cfg = config_of(args)
    action = args.alerts_command
    if action in ("silence", "unsilence") or (action == "outbox" and args.retry):
        return _write_action(cfg, args)
    from fraudwatch.notify import store
    from fraudwatch.store.db import open_read_only

    con = open_read_only(cfg.store_path)
    try:
        if action == "silences":
            rows = store.all_silences(con)
            now = _now()
            if not args.all:
                rows = [r for r in rows if r["ended_at"] is None and r["until"] > now]
            return _print_silences(rows, args.json)
        rows = store.outbox_rows(con, args.all, args.limit)
    finally:
        con.close()
    return _print_outbox(rows, args.json)


def _write_action(cfg: Config, args: argparse.Namespace) -> int:
    from fraudwatch.notify import ops
    from fraudwatch.store.db import Store
    from fraudwatch.tomldoc import parse_duration
    from fraudwatch.watch.control import watcher_call

    now = _now()
    key, until = "", now
    if args.alerts_command == "silence":
        try:
            seconds = parse_duration(args.duration)
        except ValueError as exc:
            raise UsageError(f"--for: {exc}") from None
        key = args.key.strip()
        if not key:
            raise UsageError("silence: KEY is empty")
        if "/" in key:
            try:
                key = str(ipaddress.ip_network(key, strict=False))
            except ValueError:
                raise UsageError(f"silence: '{key}' is not a CIDR network") from None
        elif (addr := parse_ip(key)) is not None:
            key = str(addr)  # the canonical form alert keys use (2001:DB8::0001 -> 2001:db8::1)
        until = now + dt.timedelta(seconds=seconds)
    action = args.alerts_command
    if action == "silence":
        name = ops.SILENCE
        req: dict[str, Any] = {"key": key, "rule": args.rule, "until": until.isoformat(), "reason": args.reason,
                               "by": _login()}
    elif action == "unsilence":
        name, req = ops.UNSILENCE, {"target": args.target}
    else:
        name, req = ops.RETRY, {}
    result = watcher_call(cfg.store_path, name, req)  # the watcher holds the store: it does it
    if result is None:
        with Store(cfg.store_path) as st:
            result = ops.apply(st.con, name, req)
    elif not result.get("ok"):
        error = str(result.get("error") or "the watcher refused")
        code = int(result.get("exit_code") or ExitStatus.FAILED)
        raise UsageError(error) if code == ExitStatus.USAGE else StoreError(f"watcher: {error}")
    if action == "silence":
        scope = f"rule {args.rule}" if args.rule else "every rule"
        print(f"silence {result['id']}: {plain(key)} ({plain(scope)}) until {when(until)}")
    elif action == "unsilence":
        print(f"ended silence {', '.join(plain(str(i)) for i in result['ended'])}")
    else:
        print(f"{plain(str(result['count']))} failed notification(s) back to pending (the watcher or `detect --notify` "
              "sends them)")
    return ExitStatus.OK


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _print_silences(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print_json(rows)
        return ExitStatus.OK
    if not rows:
        print("no silences in effect")
        return ExitStatus.OK
    table = new_table("id", "key", "rule", "until", "reason", "by", "ended", whole=("id", "key", "rule"), right=("id",))
    for r in rows:
        table.add_row(str(r["id"]), cell(r["key"]), cell(r["rule"] or "(every rule)"), cell(r["until"]),
                      cell(r["reason"]), cell(r["created_by"]), cell(r["ended_at"]))
    out().print(table)
    return ExitStatus.OK


def _print_outbox(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        for r in rows:
            r["alert_ids"] = json.loads(r["alert_ids"] or "[]")
        print_json(rows)
        return ExitStatus.OK
    if not rows:
        print("outbox empty: nothing pending or failed")
        return ExitStatus.OK
    table = new_table("id", "queued", "channel", "kind", "title", "status", "attempts", "next try", "last error",
                      whole=("id", "attempts"), right=("id", "attempts"))
    for r in rows:
        status = {"pending": "[yellow]pending[/]", "failed": "[bold red]failed[/]"}.get(r["status"], text(r["status"]))
        table.add_row(str(r["id"]), cell(r["created_at"]), cell(r["channel"]), cell(r["kind"]),
                      cell((r["title"] or "")[:80]), status, str(r["attempts"]),
                      cell(r["next_attempt_at"]) if r["status"] == "pending" else "",
                      cell((r["last_error"] or "")[:160]))
    out().print(table)
    return ExitStatus.OK
