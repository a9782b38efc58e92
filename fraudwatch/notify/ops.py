"""The CLI's write operations on notification state — `alerts silence|unsilence|outbox --retry` — run either on
the store directly, or, while the watcher holds the store, by the watcher over its control socket
(`fraudwatch.watch.control`). Registered with the socket when this module is imported (the notifier imports it,
so a watcher that notifies knows them)."""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from typing import TYPE_CHECKING, Any

import duckdb

from fraudwatch.errors import UsageError
from fraudwatch.notify import store
from fraudwatch.watch.control import op

if TYPE_CHECKING:
    from fraudwatch.watch.service import Watcher

SILENCE, UNSILENCE, RETRY = "alerts.silence", "alerts.unsilence", "alerts.outbox-retry"


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


def _register(name: str) -> None:
    def run(watcher: Watcher, args: dict[str, Any]) -> dict[str, Any]:
        assert watcher.store is not None
        return apply(watcher.store.con, name, args)

    op(name)(run)


for _name in (SILENCE, UNSILENCE, RETRY):
    _register(_name)
