"""Notification once, outside the watcher: `detect --notify` queues a replay's alerts (or its incidents) and sends
what is queued before the command ends (what is not sent stays in the outbox, for the watcher or the next run)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from fraudwatch.config import Config

if TYPE_CHECKING:
    from fraudwatch.detect.decide import Alert
    from fraudwatch.detect.incident import IncidentChange
    from fraudwatch.notify.notifier import Notifier


def notify_alerts(cfg: Config, alerts: Sequence[Alert], done: Mapping[int, str], timeout: float = 30.0) -> str:
    """Queue `alerts` (routes, silences, realert, digests flushed at once) and send what is queued, once each,
    within about `timeout` seconds; what is not sent stays in the outbox. Returns a one-line summary."""
    return _once(cfg, lambda n: n.on_alerts(alerts, done), "alert(s) held back (realert or silence)", timeout)


def notify_incidents(cfg: Config, changes: Sequence[IncidentChange], done: Mapping[int, str],
                     timeout: float = 30.0) -> str:
    """The same for a replay's incidents: `changes` are what the incident book made of the replay's alerts, its
    ended incidents included (`apply`, then `close_quiet` at the replay's end), so each incident is its opening
    message and its summary, at most; `done`: see `replay_done`."""
    return _once(cfg, lambda n: n.on_incidents(changes, done), "incident message(s) held back (silence, or "
                 "folded into the next)", timeout)


def _once(cfg: Config, queue: Callable[[Notifier], int], held_back: str, timeout: float) -> str:
    from fraudwatch.notify.dispatch import Dispatcher
    from fraudwatch.notify.notifier import Notifier, load_rule_set
    from fraudwatch.store.db import Store

    if not cfg.alerts.channels:
        return "no alert channels are configured ([[alerts.channels]]); nothing was sent"
    with Store(cfg.store_path) as st:
        notifier = Notifier(st.con, cfg.alerts, rules=load_rule_set(cfg.rule_dirs))
        try:
            queued = queue(notifier)
            queued += notifier.flush()
            held = notifier.stats["suppressed"] + notifier.stats["silenced"] + notifier.stats["folded"]
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
        line += f", {held} {held_back}"
    if pending or result["gave_up"]:
        line += f", {pending} still pending (see `fraudwatch alerts outbox`)"
    return line


def replay_done(alerts: Sequence[Alert]) -> dict[int, str]:
    """What was done about replayed alerts: nothing (the watcher acts live), and what would have been."""
    from fraudwatch.notify.done import ACTION_TEXT

    def why(a: Alert) -> str:
        if a.trusted:
            return "trusted key, alert only"
        if a.report_only:
            return "report-only rule"
        if a.action == "alert":
            return "alert only"
        if a.action == "lock_account":  # never carried out, live or not (no VOS3000 integration yet)
            return "lock the account proposed; fraudwatch does not lock accounts yet"
        return "live, the watcher would " + ACTION_TEXT.get(a.action, a.action)

    return {a.id: f"replay: nothing done ({why(a)})" for a in alerts}
