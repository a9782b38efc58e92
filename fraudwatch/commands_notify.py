"""CLI commands of the notification stage: `alerts silence|unsilence|silences|outbox`, `notify test`, and the
sending behind `detect --notify`."""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import ipaddress
import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from fraudwatch.commands import _cell, _config, _out
from fraudwatch.config import Config
from fraudwatch.errors import ConfigError, Location, StoreError, UsageError
from fraudwatch.jsontext import dumps
from fraudwatch.netaddr import parse_ip

if TYPE_CHECKING:
    from fraudwatch.detect.decide import Alert

ALERT_ACTIONS = ("silence", "unsilence", "silences", "outbox")


def add_alert_actions(asub: Any, common: argparse.ArgumentParser) -> None:
    """`alerts silence|unsilence|silences|outbox` under the `alerts` subparser."""
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


def add_notify_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """`notify test [--channel NAME]`."""
    nt = sub.add_parser("notify", parents=[common], help="test the alert channels ([[alerts.channels]])")
    nsub = nt.add_subparsers(dest="notify_command", metavar="ACTION", parser_class=type(nt))
    test = nsub.add_parser("test", parents=[common], help="send a test message now, and say per channel if it went",
                           description="Sends synchronously (each channel within [alerts] send_timeout); exits 1 "
                                       "when any channel failed.")
    test.add_argument("--channel", action="append", metavar="NAME", help="only this channel (repeatable)")
    test.add_argument("--json", action="store_true")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cmd_alerts(args: argparse.Namespace) -> int:
    cfg = _config(args)
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
        code = int(result.get("exit_code") or 1)
        raise UsageError(error) if code == 2 else StoreError(f"watcher: {error}")
    if action == "silence":
        scope = f"rule {args.rule}" if args.rule else "every rule"
        print(f"silence {result['id']}: {key} ({scope}) until {until:%Y-%m-%d %H:%M:%S} UTC")
    elif action == "unsilence":
        print(f"ended silence {', '.join(str(i) for i in result['ended'])}")
    else:
        print(f"{result['count']} failed notification(s) back to pending (the watcher or `detect --notify` "
              "sends them)")
    return 0


def _login() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return None


def _print_silences(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(dumps(rows))
        return 0
    if not rows:
        print("no silences in effect")
        return 0
    table = Table()
    for col in ("id", "key", "rule", "until", "reason", "by", "ended"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r["id"]), escape(r["key"]), escape(r["rule"] or "(every rule)"), _cell(r["until"]),
                      escape(r["reason"] or ""), escape(r["created_by"] or ""), _cell(r["ended_at"]))
    _out().print(table)
    return 0


def _print_outbox(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        for r in rows:
            r["alert_ids"] = json.loads(r["alert_ids"] or "[]")
        print(dumps(rows))
        return 0
    if not rows:
        print("outbox empty: nothing pending or failed")
        return 0
    table = Table()
    for col in ("id", "queued", "channel", "kind", "title", "status", "attempts", "next try", "last error"):
        table.add_column(col, overflow="fold")
    for r in rows:
        status = {"pending": "[yellow]pending[/]", "failed": "[bold red]failed[/]"}.get(r["status"], r["status"])
        table.add_row(str(r["id"]), _cell(r["created_at"]), escape(r["channel"]), r["kind"],
                      escape((r["title"] or "")[:80]), status, str(r["attempts"]),
                      _cell(r["next_attempt_at"]) if r["status"] == "pending" else "",
                      escape((r["last_error"] or "")[:160]))
    _out().print(table)
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    if args.notify_command != "test":
        raise UsageError("notify: say test (see fraudwatch notify --help)")
    from fraudwatch.notify.channels import open_channel, send
    from fraudwatch.notify.messages import test_doc

    cfg = _config(args)
    alerts = cfg.alerts
    if not alerts.channels:
        raise ConfigError("no alert channels are configured ([[alerts.channels]])",
                          alerts.where or (Location(cfg.path) if cfg.path else None))
    names = args.channel or [c.name for c in alerts.channels]
    for n in names:
        if alerts.channel(n) is None:
            raise UsageError(f"notify test: unknown channel '{n}' (configured: "
                             f"{', '.join(c.name for c in alerts.channels)})")
    results = []
    for n in names:
        chan_cfg = alerts.channel(n)
        assert chan_cfg is not None
        channel = open_channel(chan_cfg, alerts.send_timeout)
        title, body, body_format = channel.message(test_doc(n, _now(), alerts.zone))
        error = send(channel, title, body, body_format, alerts.send_timeout)
        results.append({"channel": n, "ok": error is None, "error": error})
    if args.json:
        print(dumps(results))
    else:
        for r in results:
            print(f"{r['channel']}: " + ("sent" if r["ok"] else f"FAILED: {r['error']}"))
    return 0 if all(r["ok"] for r in results) else 1


def notify_alerts(cfg: Config, alerts: Sequence[Alert], done: Mapping[int, str], timeout: float = 30.0) -> str:
    """Queue `alerts` (routes, silences, realert, digests flushed at once) and send what is queued, once each,
    within about `timeout` seconds; what is not sent stays in the outbox. Returns a one-line summary."""
    from fraudwatch.notify.dispatch import Dispatcher
    from fraudwatch.notify.notifier import Notifier, load_rule_set
    from fraudwatch.store.db import Store

    if not cfg.alerts.channels:
        return "no alert channels are configured ([[alerts.channels]]); nothing was sent"
    with Store(cfg.store_path) as st:
        notifier = Notifier(st.con, cfg.alerts, rules=load_rule_set(cfg.rule_dirs))
        try:
            queued = notifier.on_alerts(alerts, done)
            queued += notifier.flush()
            held = notifier.stats["suppressed"] + notifier.stats["silenced"]
        finally:
            notifier.close()
        dispatcher = Dispatcher(st.con, cfg.alerts)
        try:
            result = dispatcher.drain(timeout)
        finally:
            dispatcher.close()
    pending = result["failed"] + result["deferred"]
    line = f"{queued} notification(s) queued, {result['sent']} sent"
    if held:
        line += f", {held} alert(s) held back (realert or silence)"
    if pending or result["gave_up"]:
        line += f", {pending} still pending (see `fraudwatch alerts outbox`)"
    return line


def replay_done(alerts: Sequence[Alert]) -> dict[int, str]:
    """What was done about replayed alerts: nothing (the watcher acts live), and what would have been."""
    from fraudwatch.notify.messages import ACTION_TEXT

    def why(a: Alert) -> str:
        if a.trusted:
            return "trusted key, alert only"
        if a.report_only:
            return "report-only rule"
        if a.action == "alert":
            return "alert only"
        return "live, the watcher would " + ACTION_TEXT.get(a.action, a.action)

    return {a.id: f"replay: nothing done ({why(a)})" for a in alerts}


def print_notify_summary(line: str) -> None:
    print(f"fraudwatch: --notify: {line}", file=sys.stderr)
