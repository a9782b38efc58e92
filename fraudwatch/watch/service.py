"""The watcher's lifecycle and main loop: wake on file events (or the poll timer), run a pass, serve the control
requests between passes, reload on SIGHUP, and stop in order.

One thread owns the store's writing connection and does all of the reading, parsing and writing, in passes
(`fraudwatch.watch.reading`), and hands the rows it committed to the acting thread (`fraudwatch.watch.acting`:
detection, bans, notifications). The log files themselves are the queue: nothing is read that cannot be
committed at once, so memory stays bounded at any input rate and a flood only makes the passes longer (the lag
shows in `fraudwatch status`).

Micro-batching: after the first file event the loop waits `batch_delay_ms` for more, so a trickle of lines
becomes a few transactions per second, and a flood is read in chunks of up to `[ingest] chunk_bytes`.

Other threads: watchdog's observer (only sets the wake event), the read-copy publisher (its own cursor, its own
snapshot), the control socket and the metrics endpoint (both only read memory or hand requests to this loop).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from fraudwatch import tuning
from fraudwatch.config import Config, load_config
from fraudwatch.detect.runners.replay import ORDER
from fraudwatch.errors import FraudwatchError
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.ingest import Ingestor
from fraudwatch.store.compaction import compact
from fraudwatch.store.db import Store
from fraudwatch.store.replica import Publisher
from fraudwatch.watch.files import watch_dirs
from fraudwatch.watch.preflight import check_formats
from fraudwatch.watch.reading import Reading

if TYPE_CHECKING:
    from fraudwatch.detect.types.base import RuleType

log = logging.getLogger("fraudwatch.watch")

# How long a thread holding the GIL runs before one waiting for it gets a turn (Python's default: 5 ms). The
# reader's thread comes back from DuckDB many times a pass and then waits for the acting thread's Python (the
# rules) to let go; a shorter interval keeps the watcher's lag smaller and its rows queryable sooner under a flood
# (figures: benchmarks/RESULTS.md, "Runtime tuning: watcher switch interval").
SWITCH_INTERVAL = 0.0005
# How much write-ahead log DuckDB gathers before it writes it into the store file (its default: 16 MB). Each
# checkpoint stalls the commit that triggers it; a flood commits a chunk a pass, so at the default it stalled
# every few passes. Higher, the watcher lags less under a flood, until one checkpoint stalls for long (figures:
# benchmarks/RESULTS.md, "Watcher checkpoint threshold (64 MB)"). A crash replays at most this much log at the
# next start; a clean stop checkpoints.
CHECKPOINT_THRESHOLD = "64MB"
FLUSH_SECONDS = 1.0  # hot rows older than this are written as segments (what readers in other processes see)
COMPACT_SECONDS = 30.0  # how often small segments are looked at for merging
MAX_FAILURES = 10  # passes failing in a row before the watcher exits (for systemd to restart it)


class Watcher(Reading):
    """The watcher's lifecycle: `run` opens the store and starts the threads, loops over passes until asked to
    stop, reloads on SIGHUP, and closes everything in order."""

    def run(self, max_seconds: float | None = None) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`, or `max_seconds`); returns the exit code."""
        with tuning.switch_interval(SWITCH_INTERVAL), tuning.arrow_memory_pool(tuning.WATCHER_ARROW_POOL):
            return self._run(max_seconds)

    def _run(self, max_seconds: float | None) -> int:
        self._open()
        assert self.store is not None
        deadline = time.monotonic() + max_seconds if max_seconds else None
        failures = 0
        try:
            # (the memory the warm-up in _open freed goes back to the system too, once DuckDB's allocator has threads)
            with tuning.duckdb_settings(self.store.con, tuning.WATCHER_DUCKDB):
                self.wake.set()  # a first pass at once: read what was written while we were down
                while not self.stopping:
                    try:
                        self._cycle()
                        failures = 0
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except Exception as exc:  # one bad pass must not end the service; a persistent fault must
                        failures += 1
                        if isinstance(exc, FraudwatchError):  # a full or corrupt store: its one line says it all
                            log.error("pass failed (%d in a row): %s", failures, exc)
                        else:
                            log.exception("pass failed (%d in a row)", failures)
                        if failures >= MAX_FAILURES:
                            log.error("giving up after %d failed passes in a row", failures)
                            return 1
                        time.sleep(min(5.0, 0.5 * failures))
                    if deadline is not None and time.monotonic() >= deadline:
                        break
        finally:
            self._close()
        return 0

    def _cycle(self) -> None:
        woke = self.wake.wait(self.cfg.watch.poll_seconds)
        # the delay gathers a burst into one batch; what arrived during a pass at least as long has gathered
        # already (under a flood, sleeping it on every pass cost the reader time; figures: benchmarks/RESULTS.md,
        # "No batch delay after a long pass")
        delay = self.cfg.watch.batch_delay_ms / 1000 - self.last_pass_seconds
        if woke and delay > 0 and not self.stopping:
            time.sleep(delay)
        self.wake.clear()
        if self.reload_asked:
            self._reload()
        self._serve_requests()
        t0 = time.monotonic()
        if self._pass():
            self.wake.set()  # more to read at once
        self.last_pass_seconds = time.monotonic() - t0
        log.debug("pass %.3fs", self.last_pass_seconds)
        self._periodic()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_asked = True
        else:
            self.stopping = True
        self.wake.set()

    def _open(self) -> None:
        """Start everything, in an order where what can be refused is refused first (a misspelt format, a busy
        metrics port), before a file is created; anything failing later stops what was started (`_close`): no
        thread, socket or open store is left behind to abort the process at exit."""
        from fraudwatch.watch.control import refuse_if_running

        self.formats = load_formats(self.cfg.format_dirs)
        check_formats(self.cfg, self.formats)
        refuse_if_running(self.cfg.store_path)
        if self.cfg.watch.metrics:  # bound now, served once started: a busy port is one line and nothing else
            from fraudwatch.watch.metrics import MetricsServer

            self.metrics = MetricsServer(self.cfg.watch.metrics, self.stats)
        try:
            self._start()
        except BaseException:
            self._close(started=False)
            raise

    def _start(self) -> None:
        if self.install_signals:
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(s, self._signal)
        self.store = Store(self.cfg.store_path)
        if self.cfg.watch.memory_limit:
            self.store.con.execute("SET memory_limit = ?", [self.cfg.watch.memory_limit])
        self.store.con.execute("SET checkpoint_threshold = ?", [CHECKPOINT_THRESHOLD])
        self.ingestor = Ingestor(self.store, self.formats, self.cfg.ingest)
        con = self.store.con
        for table in ORDER:  # live detection covers rows stored from now on
            self.store.segments.subscribe(table)
        self.act_con = con.cursor()
        from fraudwatch.watch.rulecounts import from_store

        from_store(self.act_con, self.stats.rules, dt.datetime.now(dt.UTC))  # the last day's counts survive a restart
        self._load_rules()
        self._build_actors()
        self.actor_thread = threading.Thread(target=self._act_loop, name="fraudwatch-act", daemon=True)
        self.actor_thread.start()
        self._start_observer()
        self.publisher = Publisher(con.cursor(), self.cfg.store_path)
        self._thread("publisher", self._publish_loop)
        self._thread("compactor", self._compact_loop)
        from fraudwatch.watch.control import ControlServer

        self.control = ControlServer(self)
        self.control.start()
        if self.metrics is not None:
            self.metrics.start()
        self.stats.started(os.getpid(), self.cfg)
        self._check_sources()
        missing = len(self.stats.missing)
        log.info("watching %d source(s) into %s%s", len(self.cfg.sources) - missing, self.cfg.store_path,
                 f"; {missing} source path(s) missing (see above and `fraudwatch status`)" if missing else "")

    def _close(self, started: bool = True) -> None:
        """Stop what runs, in order; after a failed start (`started` false), whatever part of it had started."""
        self.stopping = True
        if self.observer is not None:
            self.observer.stop()
        for server in (self.control, self.metrics):
            if server is not None:
                server.stop()
        if self.actor_thread is not None:
            self._put(None)  # after what is queued: every committed row is detected and acted on
            self.actor_thread.join(timeout=30)
        self._stop_actors()
        for t in self.threads:
            t.join(timeout=10)
        if self.publisher is not None:
            try:
                self.publisher.publish()  # readers see everything that was stored
            except Exception as exc:
                log.error("last publication of the read copy failed: %s", exc)
        if started:
            self.stats.stopped()
        if self.store is not None:
            self.store.close()
        if started:
            log.info("stopped")

    def _thread(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"fraudwatch-{name}", daemon=True)
        t.start()
        self.threads.append(t)

    # ----------------------------------------------------------------- configuration and rules

    def _load_rules(self) -> None:
        from fraudwatch.detect.base import Context
        from fraudwatch.detect.ruleset import load_rules
        from fraudwatch.detect.runners.live import LiveDetection
        from fraudwatch.detect.runners.replay import credit_context
        from fraudwatch.rulesdir import shipped_rules_dir

        assert self.store is not None
        self.ruleset = load_rules(self.cfg.rule_dirs)
        rules = list(self.ruleset.rules.values())
        credit, names = credit_context(self.store.con)
        ctx = Context(shipped_rules_dir() / "lists", credit, names)
        self.detection = LiveDetection(self.act_con, rules, ctx, self.cfg.trusted_networks,
                                       self.cfg.trusted_accounts, lock_in_trusted=self.cfg.lock_in_trusted)
        log.info("%d rule(s) loaded", len(rules))
        self._warm_up(rules)

    def _warm_up(self, rules: list[RuleType]) -> None:
        from fraudwatch.watch.warmup import learn_terms, replay_recent, seed_open_alerts

        assert self.store is not None
        w = self.cfg.watch
        started = time.monotonic()
        seeded = seed_open_alerts(self.store.con, self.detection.book)
        self.stats.resumed(list(self.detection.book.open.values()))
        learned = learn_terms(self.store.con, self.detection.engine)
        if learned:
            log.info("warm-up: the new-address and new-country rules learned from %d stored event(s)", learned)
        fed = 0
        if w.warmup_seconds and w.warmup_rows:
            fed = replay_recent(self.store.con, self.detection.engine, rules,
                                dt.timedelta(seconds=w.warmup_seconds), w.warmup_rows)
        if seeded or fed:
            log.info("warm-up: %d open alert(s) resumed, %d recent event(s) replayed into the rules in %.1fs",
                     seeded, fed, time.monotonic() - started)

    def _reload(self) -> None:
        """SIGHUP: re-read the config, formats and rules. Positions live in the store, so nothing is re-read or
        skipped; a broken config is reported and the running one kept."""
        self.reload_asked = False
        try:
            cfg = load_config(self.config_path) if self.config_path else self.cfg
            if cfg.store_path != self.cfg.store_path:
                log.error("reload: the store path changed; that needs a restart (keeping %s)", self.cfg.store_path)
                cfg = replace(cfg, store_path=self.cfg.store_path)
            formats = load_formats(cfg.format_dirs)
            check_formats(cfg, formats)
        except FraudwatchError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        self._drain()
        with self.act_lock:
            self._apply_reload(cfg, formats)

    def _apply_reload(self, cfg: Config, formats: dict[str, Format]) -> None:
        self.cfg = cfg
        self.formats = formats
        assert self.store is not None and self.ingestor is not None
        self.ingestor.formats, self.ingestor.options = formats, cfg.ingest
        self._flush_alerts(force=True)  # the held updates of the rules being replaced
        try:
            self._load_rules()
        except FraudwatchError as exc:
            log.error("reload: rules not reloaded: %s", exc)
        self.files.clear()
        self._stop_actors()
        self._build_actors()
        self._start_observer()
        self.stats.reloaded(cfg)
        log.info("configuration reloaded: %d source(s)", len(cfg.sources))

    def _start_observer(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer = None
        if not self.cfg.watch.inotify:
            return
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self.wake

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake.set()

        observer = Observer()
        planned: dict[Path, bool] = {}
        for src in self.cfg.sources:
            for folder, recursive in watch_dirs(src):
                planned[folder] = planned.get(folder, False) or recursive
        for folder, recursive in planned.items():
            if folder.is_dir():
                try:
                    observer.schedule(_Wake(), str(folder), recursive=recursive)
                except OSError as exc:  # e.g. the inotify watch limit: the poll timer still reads everything
                    log.warning("cannot watch %s (%s); polling it every %gs", folder, exc,
                                self.cfg.watch.poll_seconds)
        observer.daemon = True
        observer.start()
        self.observer = observer

    def _periodic(self) -> None:
        assert self.store is not None
        self.store.segments.flush_hot(max_age=FLUSH_SECONDS)  # readers elsewhere see rows this old at most
        pub = self.publisher
        self.stats.maybe_write(self.cfg.watch.status_seconds, pub.manifest.published_at if pub else None,
                               pub.last_seconds if pub else None)

    def _compact_loop(self) -> None:
        """Small segments (a flush a second under load) merged into day files, off the reading thread."""
        assert self.store is not None
        cursor = self.store.con.cursor()
        while not self.stopping:
            end = time.monotonic() + COMPACT_SECONDS
            while not self.stopping and time.monotonic() < end:
                time.sleep(0.2)
            if self.stopping:
                break
            try:
                compact(self.store.segments, cursor)
            except Exception as exc:  # more small files until the next try; nothing is lost
                log.error("compacting segments failed: %s", exc)

    def _publish_loop(self) -> None:
        assert self.publisher is not None
        interval = self.cfg.watch.publish_seconds
        while not self.stopping:
            try:
                self.publisher.publish()
            except Exception as exc:  # readers get older data; the watcher goes on
                log.error("publishing the read copy failed: %s", exc)
            end = time.monotonic() + interval
            while not self.stopping and time.monotonic() < end:
                time.sleep(min(0.2, interval))

    def _serve_requests(self) -> None:
        with self.lock:
            todo, self.requests = self.requests, []
        for req in todo:
            try:
                with self.act_lock:  # operations use the enforcer / notifier
                    req.result = self.handle(req.op, req.args)
            except FraudwatchError as exc:
                req.result = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
            except Exception as exc:
                req.result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 70}
            req.done.set()

    def handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Control operations, run on the writer's thread."""
        from fraudwatch.watch.ops import run_op

        assert self.store is not None
        return run_op(self, op, args)
