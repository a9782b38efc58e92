"""Alert notifications: apprise channels, routes, realert/silences/quiet hours/digests, and a durable outbox.

The watcher uses two objects (imported lazily here so that loading the config does not load duckdb or apprise):

    notifier = Notifier(con, cfg.alerts)            # on_incidents(changes, done) or on_alerts(alerts, done)
                                                    # -> rows queued; tick(now)
    dispatcher = Dispatcher(con, cfg.alerts)        # start(); stop(timeout)

or both as one: `notifier = start_notifier(con, cfg.alerts, rules=...)`, whose `stop(now)` stops the dispatcher.

See docs/alerts.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fraudwatch.notify.dispatch import Dispatcher, start_notifier
    from fraudwatch.notify.notifier import Notifier

__all__ = ["Dispatcher", "Notifier", "start_notifier"]


def __getattr__(name: str) -> Any:
    if name == "Notifier":
        from fraudwatch.notify.notifier import Notifier

        return Notifier
    if name == "Dispatcher":
        from fraudwatch.notify.dispatch import Dispatcher

        return Dispatcher
    if name == "start_notifier":
        from fraudwatch.notify.dispatch import start_notifier

        return start_notifier
    raise AttributeError(name)
