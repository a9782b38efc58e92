"""The table of write operations a running watcher serves over its control socket (`fraudwatch.watch.control`).

Each name maps to a handler that takes the watcher and the request's arguments and hands them to the
operation's own package: `bans.*` to `fraudwatch.enforce.ops` with the watcher's enforcer, `alerts.*` to
`fraudwatch.notify.ops` with the watcher's store. Those packages know nothing of the watcher; the table is
built here, once, from their names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fraudwatch.enforce import ops as bans
from fraudwatch.enforce.enforcer import Enforcer
from fraudwatch.errors import UsageError
from fraudwatch.notify import ops as alerts

if TYPE_CHECKING:
    from fraudwatch.watch.base import WatcherBase

OpFn = Callable[["WatcherBase", dict[str, Any]], dict[str, Any]]


def _on_enforcer(name: str) -> OpFn:
    def run(watcher: WatcherBase, args: dict[str, Any]) -> dict[str, Any]:
        enforcer = getattr(watcher, "enforcer", None)
        if not isinstance(enforcer, Enforcer):
            return {"ok": False, "error": "the watcher runs without its firewall enforcer (see its log)",
                    "exit_code": 5}
        return bans.apply(enforcer, name, args)

    return run


def _on_store(name: str) -> OpFn:
    def run(watcher: WatcherBase, args: dict[str, Any]) -> dict[str, Any]:
        assert watcher.store is not None
        return alerts.apply(watcher.store.con, name, args)

    return run


OPS: Mapping[str, OpFn] = {**{name: _on_enforcer(name) for name in bans.NAMES},
                           **{name: _on_store(name) for name in alerts.NAMES}}


def run_op(watcher: WatcherBase, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """An operation of the table, on the writer's thread."""
    fn = OPS.get(name)
    if fn is None:
        raise UsageError(f"the watcher does not know the operation '{name}'")
    return fn(watcher, args)
