"""The `fraudwatch bans` operations, run either on the store directly (no watcher) or by the running watcher on
its enforcer, over its control socket (the watcher's table of operations, `fraudwatch.watch.ops`, calls `apply`).

Each operation returns a JSON-able dict: {"ok": true, ...} or {"ok": false, "error": ..., "exit_code": ...}.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fraudwatch.enforce.enforcer import Enforcer, manual_ttl
from fraudwatch.errors import FraudwatchError

LIST, ADD, REMOVE, FLUSH, SYNC = "bans.list", "bans.add", "bans.remove", "bans.flush", "bans.sync"
NAMES = (LIST, ADD, REMOVE, FLUSH, SYNC)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def apply(enforcer: Enforcer, name: str, args: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """Run operation `name` with `enforcer` (its store connection and backend). Every answer names the backend
    and whether it is the dry run (`dry_run`), so what prints it can say "would ban", never "banned"."""
    result = _apply(enforcer, name, args, now or dt.datetime.now(dt.UTC))
    return {**result, "backend": enforcer.backend.name, "dry_run": enforcer.dry_run}


def _apply(enforcer: Enforcer, name: str, args: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    try:
        if name == LIST:
            rows = enforcer.listing(now, include_history=bool(args.get("all")), limit=args.get("limit"))
            return {"ok": True, "rows": [{k: _iso(v) for k, v in r.items()} for r in rows]}
        if name == ADD:
            message = enforcer.ban(str(args.get("target", "")), now, ttl=manual_ttl(args.get("ttl")),
                                   reason=args.get("reason"))
            return {"ok": True, "message": message}
        if name == REMOVE:
            return {"ok": True, "message": enforcer.unban(str(args["target"]), now)}
        if name == FLUSH:
            count = enforcer.flush(now)
            message = (f"ended {count} dry-run ban(s) (dry run: no firewall held them)" if enforcer.dry_run
                       else f"ended {count} ban(s); our {enforcer.backend.name} sets are empty")
            return {"ok": True, "count": count, "message": message}
        if name == SYNC:
            report = enforcer.reconcile(now)
            return {"ok": not report.errors, "report": {k: _iso(v) for k, v in report.__dict__.items()},
                    "message": (f"dry run: no firewall to reconcile; the recorded bans: {report}" if enforcer.dry_run
                                else f"reconciled ({enforcer.backend.name}): {report}"),
                    **({"error": "; ".join(report.errors), "exit_code": 1} if report.errors else {})}
    except FraudwatchError as exc:
        return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
    return {"ok": False, "error": f"unknown operation '{name}'", "exit_code": 2}

