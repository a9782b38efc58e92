"""The CLI's write operations on notification state — `alerts silence|unsilence|outbox --retry` — run either on
the store directly, or, while the watcher holds the store, by the watcher over its control socket
(`fraudwatch.watch.control`; the watcher's table of operations, `fraudwatch.watch.ops`, calls `apply`)."""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from typing import Any

import duckdb

import fraudwatch.notify.store as store
from fraudwatch.errors import UsageError

SILENCE, UNSILENCE, RETRY = "alerts.silence", "alerts.unsilence", "alerts.outbox-retry"
NAMES = (SILENCE, UNSILENCE, RETRY)


def apply(con: duckdb.DuckDBPyConnection, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run operation `name` on the store (on a cursor of its own); the JSON-able result."""
    now = dt.datetime.now(dt.UTC)
    with closing(con.cursor()) as cur:
        if name == SILENCE:
            until = dt.datetime.fromisoformat(str(args["until"]))
            sid = store.add_silence(cur, str(args["key"]), args.get("rule"), until, args.get("reason"),
                                    args.get("by"), now)
            return {"ok": True, "id": sid}
        if name == UNSILENCE:
            ended = store.end_silences(cur, str(args["target"]), now)
            if not ended:
                raise UsageError(f"unsilence: no active silence with id or key '{args['target']}'")
            return {"ok": True, "ended": ended}
        if name == RETRY:
            return {"ok": True, "count": store.retry_failed(cur, now)}
    raise UsageError(f"unknown operation '{name}'")

