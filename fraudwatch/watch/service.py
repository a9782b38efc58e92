"""The watcher's main loop: wake on file events (or the poll timer), read what changed, store it, detect, act.

One thread owns the store's writing connection and does all of the reading, parsing, writing and detection, in
passes. A pass stats every file of every source, reads the files whose signature changed (at most `chunk_bytes`
per file per pass, so signals, control requests and the other sources are served between chunks), and feeds the
rows it committed to live detection. The log files themselves are the queue: nothing is read that cannot be
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
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import Any

import polars as pl

from fraudwatch.config import Config, SourceConfig, load_config
from fraudwatch.detect.runners.replay import ORDER, TIME_COLUMN
from fraudwatch.errors import FraudwatchError
from fraudwatch.formats.csvspec import CsvFormat
from fraudwatch.formats.detect import detect_format
from fraudwatch.formats.registry import Format, load_formats
from fraudwatch.ingest import Ingestor
from fraudwatch.sources.reader import identify
from fraudwatch.store import positions
from fraudwatch.store.db import Store
from fraudwatch.store.replica import Publisher
from fraudwatch.store.schema import TABLES
from fraudwatch.watch.files import Signature, Tracker, files_of, gzip_size, watch_dirs
from fraudwatch.watch.stats import Stats

log = logging.getLogger("fraudwatch.watch")

# How long a thread holding the GIL runs before one waiting for it gets a turn (Python's default: 5 ms). The
# reader's thread comes back from DuckDB many times a pass and then waits for the acting thread's Python (the
# rules) to let go; at 0.5 ms the soak (benchmarks/watch_soak.py, 30 s at 20,000 lines/s, runs alternated) kept
# its lag at 3.3-6.1 MB after 20 s instead of 8.8-9.3 MB, written->queryable p50 1.1-1.5 s instead of 2.1-2.3 s.
SWITCH_INTERVAL = 0.0005
# How much write-ahead log DuckDB gathers before it writes it into the store file (its default: 16 MB). Each
# checkpoint stalls the commit that triggers it; a flood commits a chunk a pass, so at the default it stalled
# every few passes. Soak, 60 s at 20,000 lines/s: lag after 50 s 2.1 MB at 64 MB (3.3-5.6 MB at the default;
# 256 MB stalled once for long: 12.5 MB); p99 written->queryable 1.7 s (3.1 s). A crash replays at most this
# much log at the next start; a clean stop checkpoints.
CHECKPOINT_THRESHOLD = "64MB"
FRAME_QUEUE = 16  # passes the acting thread may be behind the reader (it merges what queued up)
MAX_FAILURES = 10  # passes failing in a row before the watcher exits (for systemd to restart it)


@dataclass
class FileState:
    source: SourceConfig
    format: str | None = None  # detected once per file


@dataclass
class Request:
    """A control request handed to the loop; `done` is set when `result` holds its answer."""

    op: str
    args: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)


class Watcher:
    def __init__(self, cfg: Config, config_path: Path | None = None, *, install_signals: bool = True) -> None:
        self.cfg = cfg
        self.config_path = config_path
        self.install_signals = install_signals
        self.wake = threading.Event()
        self.stopping = False
        self.reload_asked = False
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self.tracker = Tracker()
        self.files: dict[Path, FileState] = {}
        self.stats = Stats(cfg.store_path)
        self.store: Store | None = None
        self.ingestor: Ingestor | None = None
        self.formats: dict[str, Format] = {}
        self.detection: Any = None  # LiveDetection, built in _load_rules
        self.ruleset: Any = None  # the RuleSet it was built from
        self.act_con: Any = None  # the acting thread's cursor: detection state writes, bans, outbox
        self.act_lock = threading.RLock()  # held while rules run or actors act (control ops take it too)
        self.frames: queue.Queue[Any] = queue.Queue(maxsize=FRAME_QUEUE)
        self.actor_thread: threading.Thread | None = None
        self.enforcer: Any = None  # fraudwatch.enforce.Enforcer when [firewall] says so
        self.notifier: Any = None  # fraudwatch.notify.Notifier when [alerts] has channels
        self.sentry: Any = None  # fraudwatch.watch.sentry.Sentry while early bans run
        self.seen_rowid: dict[str, int] = {}
        self.observer: Any = None
        self.control: Any = None
        self.metrics: Any = None
        self.publisher: Publisher | None = None
        self.threads: list[threading.Thread] = []
        self.last_pass_seconds = 0.0

    # ----------------------------------------------------------------- lifecycle

    def run(self, max_seconds: float | None = None) -> int:
        """Run until SIGTERM/SIGINT (or `stop()`, or `max_seconds`); returns the exit code."""
        previous = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._open()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        failures = 0
        try:
            self.wake.set()  # a first pass at once: read what was written while we were down
            while not self.stopping:
                try:
                    self._cycle()
                    failures = 0
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception:  # one bad pass must not end the service; a persistent fault must
                    failures += 1
                    log.exception("pass failed (%d in a row)", failures)
                    if failures >= MAX_FAILURES:
                        log.error("giving up after %d failed passes in a row", failures)
                        return 1
                    time.sleep(min(5.0, 0.5 * failures))
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            self._close()
            sys.setswitchinterval(previous)
        return 0

    def _cycle(self) -> None:
        woke = self.wake.wait(self.cfg.watch.poll_seconds)
        # the delay gathers a burst into one batch; what arrived during a pass at least as long has gathered
        # already (under a flood, sleeping it on every pass cost the reader 7% of its time)
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
        if self.install_signals:
            for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(s, self._signal)
        self.formats = load_formats(self.cfg.format_dirs)
        self.store = Store(self.cfg.store_path)
        if self.cfg.watch.memory_limit:
            self.store.con.execute("SET memory_limit = ?", [self.cfg.watch.memory_limit])
        self.store.con.execute("SET checkpoint_threshold = ?", [CHECKPOINT_THRESHOLD])
        self.ingestor = Ingestor(self.store, self.formats, self.cfg.ingest)
        con = self.store.con
        for table in ORDER:  # live detection covers rows stored from now on
            self.seen_rowid[table] = int(con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}")
                                         .fetchall()[0][0])
        self.act_con = con.cursor()
        self._load_rules()
        self._build_actors()
        self.actor_thread = threading.Thread(target=self._act_loop, name="fraudwatch-act", daemon=True)
        self.actor_thread.start()
        self._start_observer()
        self.publisher = Publisher(con.cursor(), self.cfg.store_path)
        self._thread("publisher", self._publish_loop)
        from fraudwatch.watch.control import ControlServer

        self.control = ControlServer(self)
        self.control.start()
        if self.cfg.watch.metrics:
            from fraudwatch.watch.metrics import MetricsServer

            self.metrics = MetricsServer(self.cfg.watch.metrics, self.stats)
            self.metrics.start()
        self.stats.started(os.getpid(), self.cfg)
        log.info("watching %d source(s) into %s", len(self.cfg.sources), self.cfg.store_path)

    def _close(self) -> None:
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
        self.stats.stopped()
        if self.store is not None:
            self.store.close()
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
                                       self.cfg.trusted_accounts)
        log.info("%d rule(s) loaded", len(rules))
        self._warm_up(rules)

    def _warm_up(self, rules: list[Any]) -> None:
        from fraudwatch.watch.warmup import replay_recent, seed_open_alerts

        assert self.store is not None
        w = self.cfg.watch
        started = time.monotonic()
        seeded = seed_open_alerts(self.store.con, self.detection.book)
        fed = 0
        if w.warmup_seconds and w.warmup_rows:
            fed = replay_recent(self.store.con, self.detection.engine, rules, self.seen_rowid,
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

    # ----------------------------------------------------------------- the pass

    def _pass(self) -> bool:
        """Read every file that changed; returns True when some file has more to read right away."""
        more = False
        present: set[Path] = set()
        for src in self.cfg.sources:
            for path in files_of(src):
                present.add(path)
                state = self.files.get(path)
                if state is None or state.source != src:
                    state = self.files[path] = FileState(src)
                more |= self._read_file(path, state)
                if self.stopping:
                    return False
        self.tracker.forget_missing(present)
        for gone in [p for p in self.files if p not in present]:
            del self.files[gone]
        self.stats.forget_missing(present)
        t0 = time.monotonic()
        self._detect()
        log.debug("detect %.3fs", time.monotonic() - t0)
        return more

    def _format_of(self, path: Path, state: FileState) -> Format | None:
        name = state.format or state.source.format
        if name is None:
            try:
                fmt = detect_format(path, self.formats)
            except FraudwatchError:
                return None  # too little to tell yet; try again when it grows
            state.format = fmt.name
            return fmt
        fmt_or_none = self.formats.get(name)
        if fmt_or_none is None:
            self.stats.error(path, f"unknown format '{name}'")
        return fmt_or_none

    def _read_file(self, path: Path, state: FileState) -> bool:
        sig = Signature.of(path)
        if sig is None:
            return False
        fmt = self._format_of(path, state)
        if fmt is None:
            return False
        is_csv = isinstance(fmt, CsvFormat)
        settle = self.cfg.watch.settle_seconds if is_csv and path.suffix != ".gz" else 0.0
        if not self.tracker.due(path, sig, settle):  # unchanged, or a CSV not settled yet (the timer returns)
            self.stats.seen(path, fmt.name, sig.size)
            return False
        assert self.ingestor is not None and self.store is not None
        if path.suffix == ".gz" and self._gzip_done(path):
            self.tracker.done(path, sig)
            self.stats.seen(path, fmt.name, sig.size)
            return False
        started = time.monotonic()
        summary = self.ingestor.ingest(path, fmt.name, state.source.timezone,
                                       budget_bytes=None if is_csv else self.cfg.ingest.chunk_bytes,
                                       until=None if is_csv or path.suffix == ".gz" else sig.size)
        self.stats.read(path, fmt.name, summary, sig.size, time.monotonic() - started)
        if summary.error:
            self.stats.error(path, summary.error)
            self.tracker.done(path, sig)  # not again until it changes
            return False
        if not summary.more:
            self.tracker.done(path, sig)
        if fmt.name == "vos3000-customers" and summary.lines:
            self._refresh_credit()
        return summary.more

    def _gzip_done(self, path: Path) -> bool:
        """A .gz file whose stored position is its uncompressed end: skip it without decompressing."""
        assert self.store is not None
        try:
            ident = identify(path)
        except (OSError, EOFError):
            return False
        if ident is None:
            return True
        pos = positions.find(self.store.con, path, ident)
        size = gzip_size(path)
        return pos is not None and size is not None and pos.byte_offset % (1 << 32) == size

    def _refresh_credit(self) -> None:
        """New balances and limits for the credit-limit rules."""
        from fraudwatch.detect.runners.replay import credit_context

        assert self.store is not None
        if self.detection is None:
            return
        credit, names = credit_context(self.store.con)
        with self.act_lock:
            self.detection.engine.update_credit(credit, names)

    def _detect(self) -> None:
        """Feed the rows committed since the last pass to live detection, then act on what it decided."""
        assert self.store is not None
        con = self.store.con
        for table, order in ORDER.items():
            (top,) = con.execute(f"SELECT coalesce(max(rowid), -1) FROM {table}").fetchall()[0]
            last = self.seen_rowid.get(table, -1)
            if top <= last:
                continue
            cols = ", ".join(f'"{c}"' for c in self._columns(table))
            frame = con.sql(f"SELECT {cols} FROM {table} WHERE rowid > ? AND rowid <= ? ORDER BY {order}",
                            params=[last, top]).pl()
            self.seen_rowid[table] = int(top)
            self.stats.events(table, frame)
            if self.detection is not None and frame.height:
                self._put((table, frame))

    def _columns(self, table: str) -> list[str]:
        """What the rules of `table` read (and the status needs): reading every column costs more than the rules."""
        engine = getattr(self.detection, "engine", None)
        needed = set(engine.columns(table)) if engine is not None and engine.detectors.get(table) else set()
        needed |= {"source", TIME_COLUMN[table], *ORDER[table].split(", ")}
        return [c for c in TABLES[table].names if c in needed]

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
                self.notifier.on_alerts(alerts, done)
            except Exception as exc:
                log.error("queueing notifications for %d alert(s) failed: %s", len(alerts), exc)
        self.stats.alerted(alerts)

    # ----------------------------------------------------------------- periodic work

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

    # ----------------------------------------------------------------- the acting thread

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

    def _periodic(self) -> None:
        pub = self.publisher
        self.stats.maybe_write(self.cfg.watch.status_seconds, pub.manifest.published_at if pub else None,
                               pub.last_seconds if pub else None)

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

    def submit(self, op: str, args: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """From another thread: run `op` in the loop (between passes) and wait for its result."""
        req = Request(op, args)
        with self.lock:
            self.requests.append(req)
        self.wake.set()
        if not req.done.wait(timeout):
            return {"ok": False, "error": "the watcher did not answer in time (busy?)", "exit_code": 3}
        return req.result

    def handle(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Control operations, run on the writer's thread."""
        from fraudwatch.watch.control import run_op

        assert self.store is not None
        return run_op(self, op, args)


def _merged(items: list[Any]) -> list[Any]:
    """Consecutive frames of one table become one frame (in arrival order); markers keep their place."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, tuple) and out and isinstance(out[-1], tuple) and out[-1][0] == item[0]:
            out[-1] = (item[0], pl.concat([out[-1][1], item[1]], how="vertical_relaxed"))
        else:
            out.append(item)
    return out
