"""`fraudwatch notify test`: send a test message through each configured channel now, and say if it went."""

from __future__ import annotations

import argparse
import datetime as dt

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import plain, print_json
from fraudwatch.errors import ConfigError, ExitStatus, Location, UsageError


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    nsub = parser.add_subparsers(dest="notify_command", metavar="ACTION", parser_class=type(parser))
    test = nsub.add_parser("test", parents=[common], help="send a test message now, and say per channel if it went",
                           description="Sends synchronously (each channel within [alerts] send_timeout); exits 1 "
                                       "when any channel failed.")
    test.add_argument("--channel", action="append", metavar="NAME", help="only this channel (repeatable)")
    test.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.notify_command != "test":
        raise UsageError("notify: say test (see fraudwatch notify --help)")
    from fraudwatch.notify.channels import open_channel, send
    from fraudwatch.notify.messages import test_doc

    cfg = config_of(args)
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
        title, body, body_format = channel.message(test_doc(n, dt.datetime.now(dt.UTC), alerts.zone))
        error = send(channel, title, body, body_format, alerts.send_timeout)
        results.append({"channel": n, "ok": error is None, "error": error})
    if args.json:
        print_json(results)
    else:
        for r in results:
            print(f"{plain(r['channel'])}: " + ("sent" if r["ok"] else f"FAILED: {plain(r['error'])}"))
    return ExitStatus.OK if all(r["ok"] for r in results) else ExitStatus.FAILED
