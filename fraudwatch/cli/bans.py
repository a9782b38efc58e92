"""`fraudwatch bans list|add|remove|flush|sync`.

Each action goes to the running watcher over its control socket when there is one (it holds the store), else is
done here (fraudwatch.enforce.local): the very same operations (fraudwatch.enforce.ops) either way.
"""

from __future__ import annotations

import argparse
from typing import Any

from fraudwatch.cli.context import config_of
from fraudwatch.cli.output import as_time, out, plain, print_json
from fraudwatch.cli.output import table as new_table
from fraudwatch.errors import ExitStatus, FraudwatchError, UsageError

# The table's columns, each one or two fields stacked (so that it fits 80 columns and no address or rule id is cut
# over two lines); `--json` has every field.
BAN_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id / alert", ("id", "alert_id")), ("network / rule", ("network", "rule")), ("level", ("level",)),
    ("created / expires", ("created_at", "expires_at")), ("source / reason", ("source", "reason")))
HISTORY_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("id", ("id",)), ("network / rule", ("network", "rule")), ("level", ("level",)),
    ("created / expires", ("created_at", "expires_at")), ("removed", ("removed_at", "removed_reason")),
    ("source / reason", ("source", "reason")))


def add_arguments(name: str, parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    parser.description = ("Bans live in the store and in the firewall backend of [firewall] (default dry-run: "
                          "bans are recorded and listed as 'would ban', and no firewall is changed). Trusted "
                          "networks, [firewall] allow and this host's addresses are never banned.")
    bsub = parser.add_subparsers(dest="bans_command", metavar="ACTION", parser_class=type(parser))
    ls = bsub.add_parser("list", parents=[common], help="active bans, soonest to expire first")
    ls.add_argument("--all", action="store_true", help="also ended bans (history), newest first")
    ls.add_argument("--limit", type=int, default=None, metavar="N", help="at most N rows")
    ls.add_argument("--json", action="store_true", help="print as a JSON array")
    add = bsub.add_parser("add", parents=[common], help="ban an address or network by hand")
    add.add_argument("target", metavar="IP|CIDR")
    add.add_argument("--ttl", metavar="SECONDS|1h", help="how long (default [firewall] ttl_manual)")
    add.add_argument("--reason", metavar="TEXT", help="why (kept in the store)")
    rm = bsub.add_parser("remove", parents=[common], help="end a ban now")
    rm.add_argument("target", metavar="IP|CIDR")
    fl = bsub.add_parser("flush", parents=[common], help="end every active ban and empty our sets")
    fl.add_argument("--yes", action="store_true", help="really (required)")
    sy = bsub.add_parser("sync", parents=[common], help="reconcile the firewall with the store now")
    sy.add_argument("--json", action="store_true", help="print the report as JSON")


class WatcherRefused(FraudwatchError):
    """An operation the running watcher answered with an error; carries the watcher's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run(args: argparse.Namespace) -> int:
    from fraudwatch.config.firewall import ttl_seconds
    from fraudwatch.watch.control import watcher_call

    action = getattr(args, "bans_command", None)
    if action is None:
        raise UsageError("bans: say list, add, remove, flush or sync (see fraudwatch bans --help)")
    if action == "flush" and not args.yes:
        raise UsageError("bans flush ends every active ban: add --yes to confirm")
    req: dict[str, Any] = {}
    if action == "list":
        req = {"all": args.all, "limit": args.limit}
    elif action in ("add", "remove"):
        req = {"target": args.target}
    if action == "add":
        req["reason"] = args.reason
        if args.ttl is not None:
            req["ttl"] = ttl_seconds(args.ttl)
            if req["ttl"] is None:
                raise UsageError(f"--ttl {args.ttl!r}: give seconds or a duration like 90s, 15m, 1h, 2d, 1w")
    cfg = config_of(args)
    name = f"bans.{action}"
    result = watcher_call(cfg.store_path, name, req)  # a running watcher holds the store: it does it
    if result is None:
        from fraudwatch.enforce.local import apply_locally

        result = apply_locally(cfg, name, req)
    if not result.get("ok"):
        code = int(result.get("exit_code") or ExitStatus.FAILED)
        if "report" in result and not args.json:
            print(plain(result.get("message", "")))
        raise WatcherRefused(str(result.get("error") or "refused"), code)
    if action == "list":
        _print_bans(result["rows"], args.all, args.json, bool(result.get("dry_run")))
    elif action == "sync" and args.json:
        print_json(result["report"])
    else:
        print(plain(result["message"]))
    return ExitStatus.OK


def _print_bans(rows: list[dict[str, Any]], history: bool, as_json: bool, dry_run: bool) -> None:
    if as_json:
        print_json(rows)
        return
    from rich.text import Text

    columns = HISTORY_COLUMNS if history else BAN_COLUMNS
    table = new_table(*(name for name, _ in columns),
                      whole=("id / alert", "id", "network / rule", "level", "created / expires"))
    for r in rows:
        table.add_row(*[Text("\n".join(plain(as_time(r.get(f))) for f in fields)) for _, fields in columns])
    console = out()
    console.print(table)
    if dry_run:  # recorded as the firewall would hold them; none is in one
        console.print(f"{len(rows)} dry-run ban(s){'' if history else ' active'} (dry run: would ban; no firewall "
                      "holds them)")
    else:
        console.print(f"{len(rows)} ban(s){'' if history else ' active'}")

