"""The sentry: a process of the watcher's own that tails the logs and decides early bans.

Under a flood the watcher stores and scores lines in batches a second or more long, and a burst of password guesses
waits for its batch: seconds before the ban. The sentry reads the same files every `TICK` (its own offsets,
`fraudwatch.watch.tail`), runs only the gates of the rules that propose a ban on what was appended
(`fraudwatch.detect.runners.early`), and sends each decision to the watcher at once; the watcher's early-ban thread
hands it to the enforcer, which bans. It is a process, not a thread, so that it never waits for the watcher's Python
(the rules hold the interpreter's lock for most of a flood). With nftables it also puts the decided addresses in the
kernel itself before it sends them (`fraudwatch.enforce.early`): the watcher's early-ban thread can wait long for
that lock (figures: benchmarks/RESULTS.md, "Early bans put in the kernel by the sentry"). It owns nothing else: if
it dies the watcher logs it and starts another, and bans come from the rules' alerts meanwhile.

It runs at nice -5 (`NICE`, when allowed: root or CAP_SYS_NICE). Under a flood the watcher takes every core; at the
watcher's priority the sentry got its CPU late and its decisions came late; at nice -5 they came promptly, and the
watcher was no further behind. Held to less CPU, or niced down, it fell behind and skipped most of the flood. A much
bigger flood takes it up to a core, ahead of the watcher, which then falls behind and catches up from the files
(every line is still stored); what the sentry cannot keep up with it skips (`LogTail`'s `max_behind`) (figures:
benchmarks/RESULTS.md, "Sentry at nice -5").
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gc
import logging
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from fraudwatch import tuning
from fraudwatch.config import Config
from fraudwatch.watch.logline import LineFormatter

if TYPE_CHECKING:
    from fraudwatch.enforce.early import SentryFirewall

log = logging.getLogger("fraudwatch.watch")
TICK = 0.02  # seconds between looks at the files
NICE = -5  # the sentry's priority, relative to the watcher's
FULL_GC = 600.0  # seconds between the sentry's full garbage collections (see run_sentry)
STATS_SECONDS = 5.0  # how often the sentry reports its counters
RESTARTS = 5  # restarts after the sentry exits unasked, before the watcher goes on without it
CUSTOMERS_SECONDS = 10.0  # how often the watcher sends the sentry the recent customers its store knows
SEEN_SECONDS = 600.0  # how long the sentry keeps a customer it saw succeed itself (the watcher's list has it by then)


def run_sentry(cfg: Config, conn: Connection, level: int, known: list[str] | None = None,
               formatter: LineFormatter | None = None) -> None:
    """The sentry process: load what it needs, say `ready`, then tick until told to stop or orphaned. Its log
    lines are shaped (and escaped) by the watcher's own `formatter` (`fraudwatch.watch.logline`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the watcher decides when it stops
    handler = logging.StreamHandler()
    own = copy.copy(formatter) if formatter is not None else LineFormatter()
    own.name = "fraudwatch sentry"
    handler.setFormatter(own)
    logging.basicConfig(level=level, handlers=[handler])
    from fraudwatch.detect.base import Context
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.early import LINE_SOURCES, EarlyBans
    from fraudwatch.enforce.evidence import SUCCESS_COLUMNS, successes
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.rulesdir import shipped_rules_dir
    from fraudwatch.watch.tail import LogTail

    parent = os.getppid()
    with contextlib.suppress(OSError):  # not allowed: it runs at the watcher's priority
        os.nice(NICE)
    rules = list(load_rules(cfg.rule_dirs).rules.values())
    early = EarlyBans(rules, Context(shipped_rules_dir() / "lists"), cfg.trusted_networks)
    columns = {s: early.columns(s) for s in LINE_SOURCES if early.gates[s]}
    watching = cfg.firewall.ban_evidence and "sip_events" in columns
    if watching:  # the successes it sees itself: a customer's registration just before forged lines
        columns["sip_events"] = sorted({*columns["sip_events"], *SUCCESS_COLUMNS})
    tail = LogTail(cfg.sources, load_formats(cfg.format_dirs), cfg.ingest, columns)
    firewall = _firewall(cfg)
    customers = _Customers(firewall)
    customers.known(known or [])  # from the start: a sent list could come a tick after forged lines
    tail.poll()  # the files' ends: from here on
    conn.send(("ready", early.rules))
    busy, longest, last_stats = 0.0, 0.0, time.monotonic()
    # The gates keep a window per address; under a botnet flood that is hundreds of thousands of objects, and every
    # full collection of the cyclic garbage collector rescans them all: long pauses whenever one came due (figures:
    # benchmarks/RESULTS.md, "Runtime tuning: sentry full collections"). What the sentry keeps holds no cycles, so
    # full collections run only every FULL_GC seconds, between ticks; the loaded rules and formats are frozen out of
    # them altogether (fraudwatch.tuning: the sentry's process body is where its tuning is entered).
    with tuning.gc_rare_full_collections():
        last_full = time.monotonic()
        while os.getppid() == parent:
            while conn.poll():
                message = conn.recv()
                if not isinstance(message, tuple):
                    return  # "stop"
                if message[0] == "customers":
                    customers.known(message[1])
            t0 = time.monotonic()
            decisions = []
            for table, rows in tail.poll().items():
                if watching and table == "sip_events":
                    seen = customers.seen(successes(rows.columns, rows.height))
                    if seen:  # before the decisions: the watcher's enforcer learns them first
                        conn.send(("customers", seen))
                try:
                    decisions.extend(early.process(table, rows))
                except Exception:  # one batch it cannot score must not end early bans
                    log.exception("early bans: scoring %d %s row(s) failed", rows.height, table)
            if decisions:
                if firewall is not None:  # in the kernel first: the watcher's Python may be busy for a while
                    try:
                        decisions = firewall.apply(decisions)
                    except Exception:  # the watcher bans them, as it does without the sentry's own bans
                        log.exception("early bans: the sentry could not ban %d decision(s) itself", len(decisions))
                conn.send(("bans", decisions))
                if log.isEnabledFor(logging.DEBUG):  # how far behind the log's own clock the sentry decides
                    newest = max(d.at for d in decisions)
                    log.debug("%d decision(s) sent %.3fs after the newest line's time, tick %.3fs", len(decisions),
                              (dt.datetime.now(dt.UTC) - newest).total_seconds(), time.monotonic() - t0)
            t1 = time.monotonic()
            busy += t1 - t0
            longest = max(longest, t1 - t0)
            if t1 - last_stats >= STATS_SECONDS:
                s = tail.stats
                conn.send(("stats", {"lines": s.lines, "bytes": s.bytes, "skipped_bytes": s.skipped_bytes,
                                     "busy": round(busy / (t1 - last_stats), 3), "longest_tick": round(longest, 3),
                                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                                     "banned_itself": firewall.applied if firewall is not None else None,
                                     "customers_held": firewall.held if firewall is not None else None,
                                     "errors": s.errors[-3:]}))
                busy, longest, last_stats = 0.0, 0.0, t1
            if t1 - last_full >= FULL_GC:
                gc.collect()
                last_full = time.monotonic()
            time.sleep(max(0.0, TICK - (time.monotonic() - t0)))


class _Customers:
    """The recent customers the sentry knows (`[firewall] ban_evidence`): those the watcher's store knows (sent
    every `CUSTOMERS_SECONDS`) and those it saw succeed in the tail itself, kept `SEEN_SECONDS` (by then the
    watcher's list has them). Its own firewall never adds them (`fraudwatch.enforce.early`)."""

    def __init__(self, firewall: SentryFirewall | None) -> None:
        self.firewall = firewall
        self.watcher: set[str] = set()
        self.own: dict[str, float] = {}  # address -> monotonic time seen

    def known(self, addresses: list[str]) -> None:
        self.watcher = set(addresses)
        cut = time.monotonic() - SEEN_SECONDS
        self.own = {ip: t for ip, t in self.own.items() if t >= cut and ip not in self.watcher}
        self._update()

    def seen(self, addresses: set[str]) -> list[str]:
        """The addresses not known before, now kept."""
        new = sorted(ip for ip in addresses if ip not in self.watcher and ip not in self.own)
        now = time.monotonic()
        for ip in new:
            self.own[ip] = now
        if new:
            self._update()
        return new

    def _update(self) -> None:
        if self.firewall is not None:
            self.firewall.customers = self.watcher | set(self.own)


def _firewall(cfg: Config) -> SentryFirewall | None:
    """The sentry's own hand on the kernel (fraudwatch.enforce.early), with nftables; None: it only decides."""
    from fraudwatch.enforce.early import SentryFirewall

    if not SentryFirewall.wanted(cfg):
        return None
    try:
        return SentryFirewall(cfg)
    except Exception as exc:  # the watcher bans what it decides, as with the other backends
        log.warning("the sentry cannot ban by itself (the watcher bans its decisions): %s", exc)
        return None


class Sentry:
    """The watcher's handle on the sentry process: start it, hand its decisions to `on_bans` (on a thread of
    its own), restart it when it exits unasked (`RESTARTS` times), stop it."""

    def __init__(self, cfg: Config, on_bans: Callable[[list[Any]], None],
                 customers: Callable[[list[str] | None], list[str]] | None = None) -> None:
        """`customers(seen)`: the sentry saw `seen` succeed (None: nothing new); returns the recent customers
        the watcher knows, which are sent to the sentry every `CUSTOMERS_SECONDS`."""
        self.cfg, self.on_bans, self.customers = cfg, on_bans, customers
        self._send_lock = threading.Lock()  # the receiving thread and `stop` both send
        self._sent_at: float | None = None
        self.proc: Any = None
        self.conn: Connection | None = None
        self.thread: threading.Thread | None = None
        self.stopping = False
        self.restarts = 0
        self.rules: list[str] = []
        self.stats: dict[str, Any] = {}
        self.decisions = 0

    def start(self) -> None:
        self.rules, self.stats = [], {}  # until this process says it is ready
        self._sent_at = None  # a new process: send it the customers as soon as it is ready
        ctx = mp.get_context("spawn")  # not fork: the watcher has threads and an open store
        parent_end, child_end = ctx.Pipe()
        known = self.customers(None) if self.customers is not None else []
        formatters = [h.formatter for h in logging.getLogger().handlers if isinstance(h.formatter, LineFormatter)]
        self.proc = ctx.Process(target=run_sentry, args=(self.cfg, child_end, logging.getLogger().level, known,
                                                         formatters[0] if formatters else None),
                                name="fraudwatch-sentry", daemon=True)
        self.proc.start()
        child_end.close()
        self.conn = parent_end
        self.thread = threading.Thread(target=self._receive, name="fraudwatch-early", daemon=True)
        self.thread.start()

    def _receive(self) -> None:
        conn = self.conn
        assert conn is not None
        while not self.stopping:
            self._send_customers(conn)
            try:
                if not conn.poll(0.5):
                    continue
                messages = [conn.recv()]
                while conn.poll():  # all that waits, as one firewall batch: a flood decides on every tick
                    messages.append(conn.recv())
            except (EOFError, OSError):
                break
            seen = [ip for kind, payload in messages if kind == "customers" for ip in payload]
            if seen and self.customers is not None:  # first: the decisions of the same tick may name them
                try:
                    self.customers(seen)
                except Exception:
                    log.exception("early bans: noting %d customer address(es) the sentry saw failed", len(seen))
            bans = [d for kind, payload in messages if kind == "bans" for d in payload]
            if bans:
                self.decisions += len(bans)
                try:
                    self.on_bans(bans)
                except Exception:  # a failing firewall must not end the early bans
                    log.exception("early bans: acting on %d decision(s) failed", len(bans))
            for kind, payload in messages:
                self._note(kind, payload)
        if not self.stopping:
            self._lost()

    def _send_customers(self, conn: Connection) -> None:
        """The recent customers the watcher knows, to the sentry, every `CUSTOMERS_SECONDS` once it is ready."""
        if self.customers is None or not self.rules:
            return
        now = time.monotonic()
        if self._sent_at is not None and now - self._sent_at < CUSTOMERS_SECONDS:
            return
        self._sent_at = now
        try:
            known = self.customers(None)
            with self._send_lock:
                conn.send(("customers", known))
        except (OSError, ValueError):  # it is gone: the loop finds out
            return
        except Exception:
            log.exception("early bans: sending the recent customers to the sentry failed")

    def _note(self, kind: str, payload: Any) -> None:
        if kind == "ready":
            self.rules = list(payload)
            log.info("early bans: the sentry (pid %d) follows the logs for %d rule(s): %s", self.proc.pid,
                     len(payload), ", ".join(payload))
        elif kind == "stats":
            self.stats = dict(payload)
            log.debug("early bans: sentry %s", payload)

    def _lost(self) -> None:
        if self.proc is not None:
            self.proc.join(2)  # reap it, for its exit code
        code = self.proc.exitcode if self.proc is not None else None
        if self.restarts >= RESTARTS:
            log.error("early bans: the sentry exited (code %s) %d times; going on without it (bans come from the "
                      "rules' alerts)", code, self.restarts + 1)
            return
        self.restarts += 1
        log.error("early bans: the sentry exited (code %s); starting another", code)
        time.sleep(min(10.0, 0.5 * 2 ** self.restarts))
        if not self.stopping:
            self.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        if self.conn is not None:
            with contextlib.suppress(OSError), self._send_lock:  # it is gone already
                self.conn.send("stop")
        if self.proc is not None:
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.terminate()  # ours, by its handle
                self.proc.join(2)
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(2)
        if self.conn is not None:
            self.conn.close()

    def status(self) -> dict[str, Any]:
        return {"pid": self.proc.pid if self.proc is not None else None,
                "alive": bool(self.proc is not None and self.proc.is_alive()), "rules": self.rules,
                "decisions": self.decisions, "restarts": self.restarts, **self.stats,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
