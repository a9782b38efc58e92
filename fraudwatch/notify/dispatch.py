"""The dispatcher: a background thread that sends pending outbox rows, oldest first per channel.

Each send has a hard time limit (`[alerts] send_timeout`); a failing channel is retried with exponential backoff
(`retry_min` doubling up to `retry_max`) while the other channels go on; a row is marked sent right after its
channel accepted it, so a restart resends only what was not confirmed (at-least-once: a crash between the
service's acceptance and that mark, or a send abandoned at its timeout that still got through, can repeat one
message). A row still unsent after `give_up_after` is marked failed and stays in `fraudwatch alerts outbox`.
`stop` returns within its timeout even when a send hangs: the hung send is left on a daemon thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import duckdb

import fraudwatch.notify.store as store
from fraudwatch.config.alerts import AlertsConfig
from fraudwatch.notify.channels import Channel, open_channel, send
from fraudwatch.notify.notifier import Clock, Notifier, utcnow

log = logging.getLogger("fraudwatch.notify")
log.addHandler(logging.NullHandler())


def start_notifier(con: duckdb.DuckDBPyConnection, cfg: AlertsConfig, **kw: Any) -> Notifier:
    """A Notifier with its Dispatcher running: `on_alerts`, `tick(now)`, `stop(now)` on one object (the
    watcher's actor protocol). `kw` goes to the Notifier (rules, country, clock)."""
    dispatcher = Dispatcher(con, cfg, clock=kw.get("clock", utcnow))
    notifier = Notifier(con, cfg, wake=dispatcher.wake, **kw)
    notifier.dispatcher = dispatcher
    dispatcher.start()
    return notifier


class Dispatcher:
    def __init__(self, con: duckdb.DuckDBPyConnection, cfg: AlertsConfig, *, clock: Clock = utcnow,
                 poll: float = 1.0, channels: Mapping[str, Channel] | None = None,
                 on_error: Callable[[str, str], None] | None = None) -> None:
        """`con`: the store (the dispatcher's thread uses its own cursor); `poll`: seconds between looks at the
        outbox when not woken; `on_error(channel, reason)`: told about every failed attempt (for the log)."""
        self.con = con
        self.cfg = cfg
        self.clock = clock
        self.poll = poll
        self.channels = dict(channels) if channels is not None else \
            {c.name: open_channel(c, cfg.send_timeout) for c in cfg.channels}
        self.on_error = on_error
        self.stats: Counter[str] = Counter()
        self._retry_at: dict[str, dt.datetime] = {}
        self._failures: dict[str, int] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cur: duckdb.DuckDBPyConnection | None = None
        self._pruned: dt.datetime | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fraudwatch-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now (the notifier queued something)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the thread; returns within `timeout` (True when the thread ended, False when it was left behind
        in a hung send; it is a daemon and dies with the process)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        cur = self.con.cursor()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self.run_once(cur)
                except duckdb.Error as exc:  # the store is busy or closing: try again on the next round
                    log.warning("notification dispatcher: store error: %s", exc)
                self._wake.wait(self.poll)
        finally:
            with contextlib.suppress(duckdb.Error):
                cur.close()

    def _backoff(self, name: str, now: dt.datetime) -> dt.datetime:
        n = self._failures.get(name, 0) + 1
        self._failures[name] = n
        delay = min(self.cfg.retry_max, self.cfg.retry_min * (2 ** min(n - 1, 30)))
        self._retry_at[name] = now + dt.timedelta(seconds=delay)
        return self._retry_at[name]

    def run_once(self, cur: duckdb.DuckDBPyConnection | None = None) -> Counter[str]:
        """One pass over the due rows: each channel's rows in order until one fails. Returns what happened
        (sent, failed, gave_up, deferred)."""
        if cur is None:
            if self._cur is None:
                self._cur = self.con.cursor()
            cur = self._cur
        result: Counter[str] = Counter()
        now = self.clock()
        if self._pruned is None or (now - self._pruned).total_seconds() >= 3600:
            self._pruned = now
            result["pruned"] = store.prune_sent(cur, now - dt.timedelta(seconds=self.cfg.keep_sent))
        blocked: set[str] = set()
        for row in store.due(cur, now):
            if self._stop.is_set():
                break
            name = row["channel"]
            if name in blocked or self._retry_at.get(name, now) > now:
                result["deferred"] += 1
                continue
            channel = self.channels.get(name)
            if channel is None:
                error: str | None = f"channel '{name}' is not configured any more"
            else:
                error = send(channel, row["title"] or "", row["body"], row["body_format"] or "text",
                             self.cfg.send_timeout, self._stop)
            now = self.clock()
            if error is None:
                store.mark_sent(cur, row["id"], now)
                self._failures.pop(name, None)
                self._retry_at.pop(name, None)
                result["sent"] += 1
                continue
            blocked.add(name)
            next_at = self._backoff(name, now)
            created = row["created_at"]
            give_up = (now - created).total_seconds() >= self.cfg.give_up_after
            store.mark_failed(cur, row["id"], error, next_at, give_up)
            result["gave_up" if give_up else "failed"] += 1
            if self.on_error is not None:
                self.on_error(name, error)
            log.warning("notification %s to %s failed (attempt %d): %s", row["id"], name, row["attempts"] + 1,
                        error)
        self.stats.update(result)
        return result

    def close(self) -> None:
        """Close the cursor of synchronous `run_once`/`drain` calls (the thread closes its own)."""
        if self._cur is not None:
            self._cur.close()
            self._cur = None

    def drain(self, timeout: float) -> Counter[str]:
        """Send what is due, synchronously, trying each row at most once (a one-shot command's end)."""
        self._stop.clear()
        timer = threading.Timer(timeout, self._stop.set)
        timer.daemon = True
        timer.start()
        try:
            return self.run_once()
        finally:
            timer.cancel()
