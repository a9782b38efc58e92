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
    """Run operation `name` with `enforcer` (its store connection and backend)."""
    now = now or dt.datetime.now(dt.UTC)
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
            return {"ok": True, "count": count,
                    "message": f"ended {count} ban(s); our {enforcer.backend.name} sets are empty"}
        if name == SYNC:
            report = enforcer.reconcile(now)
            return {"ok": not report.errors, "report": {k: _iso(v) for k, v in report.__dict__.items()},
                    "message": f"reconciled ({enforcer.backend.name}): {report}",
                    **({"error": "; ".join(report.errors), "exit_code": 1} if report.errors else {})}
    except FraudwatchError as exc:
        return {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
    return {"ok": False, "error": f"unknown operation '{name}'", "exit_code": 2}

