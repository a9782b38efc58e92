"""What the watcher's parts share: its state, and the hand-off of control requests to its loop.

The watcher is one object built in layers, each in a module of its own: this state; the acting thread
(`fraudwatch.watch.acting`: rules, bans, notifications); the reader (`fraudwatch.watch.reading`: the pass over
the files, into the store and to the acting thread); and the lifecycle (`fraudwatch.watch.service`: start,
signals, reload, the control socket and the other threads, stop). The control socket and the actors see the
watcher as this class.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudwatch.config import Config, SourceConfig
from fraudwatch.formats.registry import Format
from fraudwatch.ingest import Ingestor
from fraudwatch.store.db import Store
from fraudwatch.store.replica import Publisher
from fraudwatch.watch.files import Tracker
from fraudwatch.watch.preflight import MissingSources
from fraudwatch.watch.stats import Stats

FRAME_QUEUE = 16  # passes the acting thread may be behind the reader (it merges what queued up)


@dataclass
class FileState:
    source: SourceConfig
    format: str | None = None  # detected once per file
    failures: int = 0  # reads of it that failed in a row
    parked: str | None = None  # why it is no longer read (`fraudwatch.watch.reading.PARK_AFTER` failures)
    parked_file: tuple[str, int] | None = None  # (fingerprint, bytes it covers) of what was parked: other content
    # under the name (a new file, even on a reused inode) is read


@dataclass
class Request:
    """A control request handed to the loop; `done` is set when `result` holds its answer."""

    op: str
    args: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] = field(default_factory=dict)


class WatcherBase:
    """The watcher's state. Its store, detection and actors are set by the lifecycle (`Watcher._open`, and again
    on reload); `submit` is the one method other threads call."""

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
        self.observer: Any = None
        self.control: Any = None
        self.metrics: Any = None
        self.publisher: Publisher | None = None
        self.threads: list[threading.Thread] = []
        self.last_pass_seconds = 0.0
        self.missing_sources = MissingSources()  # sources whose path is missing: logged, shown by `status`

    def submit(self, op: str, args: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        """From another thread: run `op` in the loop (between passes) and wait for its result."""
        req = Request(op, args)
        with self.lock:
            self.requests.append(req)
        self.wake.set()
        if not req.done.wait(timeout):
            return {"ok": False, "error": "the watcher did not answer in time (busy?)", "exit_code": 3}
        return req.result
