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
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from fraudwatch.errors import FraudwatchError, StoreError, UsageError

if TYPE_CHECKING:
    from fraudwatch.store.sandbox import LiveQueries
    from fraudwatch.watch.base import WatcherBase

MAX_ROWS = 100_000
MAX_REQUEST = 1 << 20


def socket_path(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".sock")


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST)
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ValueError("a request is a JSON object with 'op'")
            result = self.server.dispatch(req["op"], req.get("args") or {})
        except (ValueError, UsageError) as exc:
            result = {"ok": False, "error": str(exc), "exit_code": 2}
        except duckdb.Error as exc:
            result = {"ok": False, "error": str(exc).splitlines()[0], "exit_code": 3}
        except Exception as exc:  # the socket thread never dies of one request
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "exit_code": 70}
        self.wfile.write(json.dumps(result).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    watcher: WatcherBase
    queries: LiveQueries | None = None  # made at the first query (a DuckDB instance of its own)
    queries_lock = threading.Lock()

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
            try:
                sql, params = str(args.get("sql", "")), list(args.get("params") or [])
                return self.live_queries().answer(w.store.con, sql, params, MAX_ROWS)
            except FraudwatchError as exc:  # refused, failed, or out of time: one line and its exit status
                return {"ok": False, "error": str(exc), "exit_code": int(exc.exit_code)}
        return w.submit(name, args)

    def live_queries(self) -> LiveQueries:
        with self.queries_lock:
            if self.queries is None:
                from fraudwatch.store.sandbox import LiveQueries  # the CLI imports this module: it stays light

                self.queries = LiveQueries(self.watcher.cfg.store_path, self.watcher.cfg.watch.query_seconds)
            return self.queries


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
        self.server.shutdown()
        self.server.server_close()
        with self.server.queries_lock:
            if self.server.queries is not None:
                self.server.queries.close()
        with contextlib.suppress(OSError):
            self.path.unlink()


def _answers(path: Path) -> bool:
    try:
        return call(path, "ping", timeout=1.0).get("ok") is True
    except OSError:
        return False


def call(path: Path, name: str, args: dict[str, Any] | None = None, timeout: float = 35.0) -> dict[str, Any]:
    """One request to the socket at `path`; raises OSError when nothing listens there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps({"op": name, "args": args or {}}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            got = s.recv(1 << 16)
            if not got:
                break
            buf += got
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
