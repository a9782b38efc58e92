"""The watcher's control socket: how other fraudwatch commands reach the store while the watcher holds it.

A Unix socket beside the store (`<store>.sock`, mode 0600: only the watcher's user, who could open the store
file anyway). One JSON object per line each way. Operations:

- `ping`, `status`: the watcher's pid and its live status (what `fraudwatch status` shows);
- `query`: one read-only SELECT, in a sandboxed DuckDB instance of the watcher's own that reads the segments and
  is handed the hot rows and small tables it names from the writer (so it sees every committed row, with no
  publication delay): no file outside the segments, no network, no settings, a time limit
  (`fraudwatch.store.sandbox`, `[watch] query_seconds`);
- any name in the watcher's table of operations (`fraudwatch.watch.ops`: bans, silences, ...): run on the
  watcher's thread between two batches, since that thread is the store's only writer.

The client side (`call`, `watcher_call`) is what the CLI imports: this module stays light (no enforcer, no
notifier).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from fraudwatch.errors import FraudwatchError, StoreError, UsageError
from fraudwatch.watch.requests import validate

if TYPE_CHECKING:
    from fraudwatch.store.sandbox import LiveQueries
    from fraudwatch.watch.base import WatcherBase

log = logging.getLogger("fraudwatch.watch")

MAX_ROWS = 100_000
MAX_REQUEST = 1 << 20
READ_TIMEOUT = 10.0  # seconds a connection may take to send its request line (and to take its answer)
MAX_HANDLERS = 16  # connections served at once; `fraudwatch` itself opens one per command
WARN_EVERY = 60.0  # seconds between two warnings about misbehaving clients
BUSY = (json.dumps({"ok": False, "error": f"the watcher is busy: more than {MAX_HANDLERS} control connections at "
                    "once; try again", "exit_code": 3}) + "\n").encode()


def socket_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".sock")


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = READ_TIMEOUT  # socketserver sets it on the connection: a client that sends nothing is dropped

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST)
        except TimeoutError:
            self.server.misbehaved(f"a client sent no request within {READ_TIMEOUT:g} s")
            return
        if not line:
            self.server.misbehaved("a client closed its connection without a request")
            return
        try:
            name, args = _parse(line)
        except UsageError as exc:
            self.server.misbehaved(f"bad request: {exc}")
            self._reply({"ok": False, "error": str(exc), "exit_code": 2})
            return
        try:
            result = self.server.dispatch(name, args)
        except FraudwatchError as exc:
            result = {"ok": False, "error": str(exc), "exit_code": exc.exit_code}
        except duckdb.Error as exc:
            result = {"ok": False, "error": str(exc).splitlines()[0], "exit_code": 3}
        except Exception as exc:  # the socket thread never dies of one request
            log.warning("control socket: %s failed: %s: %.200s", name, type(exc).__name__, exc)
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 70}
        self._reply(result)

    def _reply(self, result: dict[str, Any]) -> None:
        try:
            self.wfile.write(json.dumps(result).encode() + b"\n")
        except OSError:  # the client went away or stopped reading: its loss
            self.server.misbehaved("a client did not take its answer")


def _parse(line: bytes) -> tuple[str, dict[str, Any]]:
    """The operation and its checked arguments from one request line; UsageError when it is not one."""
    if len(line) >= MAX_REQUEST and not line.endswith(b"\n"):
        raise UsageError(f"a request longer than {MAX_REQUEST} bytes")
    try:
        req = json.loads(line)
    except (ValueError, RecursionError):
        raise UsageError("a request is one line of JSON") from None
    if not isinstance(req, dict):
        raise UsageError("a request is a JSON object with 'op' (a string) and 'args' (an object)")
    return validate(req.get("op"), req.get("args"))


class _Server(socketserver.ThreadingUnixStreamServer):
    """A thread per connection, at most `MAX_HANDLERS` at once: one more is answered "busy" and closed at once,
    from the accepting thread, without a thread of its own. A client's misbehaviour (silence, bad JSON, bad
    arguments, a hang-up) costs at most one warning line a minute in the watcher's log, never a traceback."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 64  # the listen backlog: a burst of clients waits to be accepted (or refused) quickly
    watcher: WatcherBase
    queries: LiveQueries | None = None  # made at the first query (a DuckDB instance of its own)
    queries_lock = threading.Lock()

    def __init__(self, path: str, handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(path, handler)
        self.slots = threading.BoundedSemaphore(MAX_HANDLERS)
        self.warnings = RateLimitedWarning(WARN_EVERY)

    def misbehaved(self, what: str) -> None:
        self.warnings.warn(what)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.misbehaved(f"more than {MAX_HANDLERS} connections at once: refused one")
            with contextlib.suppress(OSError):
                request.settimeout(0.2)
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # no thread could be started: the slot is not used
            self.slots.release()
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """What escaped a handler (socketserver prints a traceback): one rate-limited line instead."""
        exc = sys.exception()
        self.misbehaved(f"a connection failed: {type(exc).__name__}: {exc}" if exc else "a connection failed")

    def dispatch(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        w = self.watcher
        if name == "ping":
            return {"ok": True, "pid": os.getpid()}
        if name == "status":
            pub = w.publisher
            return {"ok": True, "status": w.stats.snapshot(pub.manifest.published_at if pub else None,
                                                            pub.last_seconds if pub else None)}
        if name == "query":  # in a sandboxed instance of its own, never on the writer's (fraudwatch.store.sandbox)
            assert w.store is not None
            sql, params = str(args.get("sql", "")), list(args.get("params") or [])
            return self.live_queries().answer(w.store.con, sql, params, MAX_ROWS)  # errors: FraudwatchError
        return w.submit(name, args)

    def live_queries(self) -> LiveQueries:
        with self.queries_lock:
            if self.queries is None:
                from fraudwatch.store.sandbox import LiveQueries  # the CLI imports this module: it stays light

                self.queries = LiveQueries(self.watcher.cfg.store_path, self.watcher.cfg.watch.query_seconds)
            return self.queries


class RateLimitedWarning:
    """One warning line per `every` seconds at most, saying how many more were held back since the last."""

    def __init__(self, every: float) -> None:
        self.every = every
        self.lock = threading.Lock()
        self.last = -every
        self.held = 0

    def warn(self, what: str) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last < self.every:
                self.held += 1
                return
            held, self.held, self.last = self.held, 0, now
        more = f" (and {held} more since the last warning)" if held else ""
        log.warning("control socket: %s%s", what[:200], more)


class ControlServer:
    def __init__(self, watcher: WatcherBase) -> None:
        self.path = socket_path(watcher.cfg.store_path)
        if len(os.fsencode(self.path)) > 107:
            raise StoreError(f"{self.path}: path too long for a Unix socket (107 bytes); use a shorter store path")
        if self.path.exists():
            if _answers(self.path):
                raise StoreError(f"{self.path}: another watcher answers on this store's socket")
            self.path.unlink()
        old = os.umask(0o177)
        try:
            self.server = _Server(str(self.path), _Handler)
        finally:
            os.umask(old)
        self.server.watcher = watcher
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="fraudwatch-control", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():  # shutdown() waits for serve_forever, which a failed start never ran
            self.server.shutdown()
        self.server.server_close()
        with self.server.queries_lock:
            if self.server.queries is not None:
                self.server.queries.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def refuse_if_running(store_path: Path) -> None:
    """StoreError when a watcher already answers on this store's socket (before anything else is started: its
    metrics port, say, would otherwise be the first thing found busy)."""
    path = socket_path(store_path)
    if path.exists() and _answers(path):
        raise StoreError(f"{path}: another watcher answers on this store's socket")


def _answers(path: Path) -> bool:
    try:
        return call(path, "ping", timeout=1.0).get("ok") is True
    except OSError:
        return False


def receive_line(s: socket.socket) -> bytes:
    """One answer: the bytes up to its newline (or what came before the watcher closed)."""
    buf = b""
    while not buf.endswith(b"\n"):
        got = s.recv(1 << 16)
        if not got:
            break
        buf += got
    return buf


def call(path: Path, name: str, args: dict[str, Any] | None = None, timeout: float = 35.0) -> dict[str, Any]:
    """One request to the socket at `path`; raises OSError when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"op": name, "args": args or {}}).encode() + b"\n")
        buf = receive_line(s)
    result: dict[str, Any] = json.loads(buf) if buf else {"ok": False, "error": "no answer", "exit_code": 3}
    return result


def watcher_call(store_path: Path, name: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Ask the running watcher of this store; None when no watcher runs."""
    path = socket_path(store_path)
    if not path.exists():
        return None
    try:
        return call(path, name, args)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
