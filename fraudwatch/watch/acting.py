"""The watcher's acting thread: live detection on the frames the reader stored, then bans and notifications.

Rules, bans and notifications run on their own thread, so that reading and storing the next batch overlaps with
detecting the last one. The reader hands frames over a bounded queue (`FRAME_QUEUE`: backpressure, the files
hold the rest); the actors (enforcer, notifier, sentry) are built by `fraudwatch.watch.actors`.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import Any

import polars as pl

from fraudwatch.watch.base import WatcherBase
from fraudwatch.watch.eventlog import log_alerts

log = logging.getLogger("fraudwatch.watch")


class Acting(WatcherBase):
    """The acting thread and the actors (`_act_loop` runs on it; the reader calls `_put`, the lifecycle
    `_build_actors`, `_stop_actors` and `_drain`)."""

    def _act(self, alerts: list[Any]) -> None:
        """Ban first, then notify (with what the ban did): a notification never delays a ban."""
        done: dict[int, str] = {}
        if self.enforcer is not None:
            try:
                done = self.enforcer.on_alerts(alerts, dt.datetime.now(dt.UTC))
            except Exception as exc:  # a failing firewall must not stop detection or notification
                log.error("enforcement failed on %d alert(s): %s", len(alerts), exc)
        if self.notifier is not None:
            try:
                changes = self.detection.take_changes() if self.detection is not None else []
                self.notifier.on_incidents(changes, done)
            except Exception as exc:
                log.error("queueing notifications for %d alert(s) failed: %s", len(alerts), exc)
        log_alerts(alerts, done, self.stats.alerted(alerts))

    def _build_actors(self) -> None:
        from fraudwatch.watch.actors import build_actors

        build_actors(self)

    def _actors(self) -> list[Any]:
        return [a for a in (self.enforcer, self.notifier) if a is not None]

    def _stop_actors(self) -> None:
        if self.sentry is not None:
            self.sentry.stop()
            self.sentry = self.stats.early = None
        for actor in self._actors():
            try:
                actor.stop(dt.datetime.now(dt.UTC))
            except Exception as exc:  # stopping must finish whatever one part says
                log.error("stopping %s: %s", type(actor).__name__, exc)

    def _tick_actors(self) -> None:
        now = dt.datetime.now(dt.UTC)
        for actor in self._actors():
            try:
                actor.tick(now)
            except Exception as exc:
                log.error("%s tick failed: %s", type(actor).__name__, exc)

    def _put(self, item: Any) -> None:
        """Queue work for the acting thread; blocks while it is FRAME_QUEUE batches behind (backpressure: the
        files hold the rest), but never past a stop."""
        while True:
            try:
                self.frames.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._acting():  # the acting thread is gone: nothing would ever take it
                    return

    def _acting(self) -> bool:
        return self.actor_thread is not None and self.actor_thread.is_alive()

    def _drain(self, timeout: float = 60.0) -> None:
        """Wait until the acting thread has handled everything queued so far."""
        if not self._acting():
            return
        done = threading.Event()
        self._put(done)
        done.wait(timeout)

    def _act_loop(self) -> None:
        """Rules, bans and notifications on their own thread, so that reading and storing the next batch overlaps
        with detecting the last one (both release the GIL for most of their work: DuckDB and polars). Batches that
        queued up while the rules ran are merged: under a flood the rules see fewer, larger batches, which cost
        them far less per event, so detection catches up instead of falling further behind."""
        last_tick = 0.0
        while True:
            try:
                items = [self.frames.get(timeout=0.2)]
            except queue.Empty:
                items = []
            while True:
                try:
                    items.append(self.frames.get_nowait())
                except queue.Empty:
                    break
            for item in _merged(items):
                if item is None:
                    with self.act_lock:
                        self._flush_alerts(force=True)
                    return
                if isinstance(item, threading.Event):
                    item.set()
                    continue
                self._detect_batch(*item)
            if time.monotonic() - last_tick >= 0.2:
                last_tick = time.monotonic()
                with self.act_lock:
                    self._flush_alerts()
                    self._tick_actors()

    def _flush_alerts(self, force: bool = False) -> None:
        """Report the alert updates live detection held back (see fraudwatch.detect.runners.live), and act on them."""
        if self.detection is None:
            return
        try:
            held = self.detection.flush(force)
            if held:
                self._act(held)
            elif self.notifier is not None:  # incidents that ended (quiet for their spell in event time)
                self.notifier.on_incidents(self.detection.take_changes(), {})
        except Exception:
            log.exception("saving or acting on held alert updates failed")

    def _detect_batch(self, table: str, frame: pl.DataFrame) -> None:
        try:
            with self.act_lock:
                t0 = time.monotonic()
                changed = self.detection(table, frame)
                t1 = time.monotonic()
                if changed:
                    self._act(changed)
                log.debug("rules %.3fs on %d %s row(s), %d alert(s) reported; acting %.3fs", t1 - t0, frame.height,
                          table, len(changed), time.monotonic() - t1)
        except Exception:  # detection of one batch failing must not stop the next
            log.exception("detection or action failed on %d %s row(s)", frame.height, table)


def _merged(items: list[Any]) -> list[Any]:
    """Consecutive frames of one table become one frame (in arrival order); markers keep their place."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, tuple) and out and isinstance(out[-1], tuple) and out[-1][0] == item[0]:
            out[-1] = (item[0], pl.concat([out[-1][1], item[1]], how="vertical_relaxed"))
        else:
            out.append(item)
    return out
