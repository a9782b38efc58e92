"""The control socket against a real watcher process: idle and excess connections cost bounded threads and get a
quick answer, every malformed request gets a clear error (never a traceback in the watcher's log), and the
watcher keeps answering."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fraudwatch.watch import control
from fraudwatch.watch.ops import OPS
from fraudwatch.watch.requests import SHAPES
from tests.watch.harness import WatcherProcess, wait_until, write_config


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[WatcherProcess]:
    (tmp_path / "sip.log").write_text("", encoding="utf-8")
    cfg = write_config(tmp_path, [("sip.log", "vos3000-sipproxy")])
    w = WatcherProcess(cfg, tmp_path / "store.duckdb").start()
    try:
        yield w
    finally:
        w.close()


def _connect(w: WatcherProcess) -> socket.socket:
    for _ in range(50):  # a full listen backlog refuses for a moment (EAGAIN): bounded retries
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect(str(control.socket_path(w.store)))
            return s
        except BlockingIOError:
            s.close()
            time.sleep(0.05)
    raise AssertionError("the control socket's backlog stayed full")


def _raw(w: WatcherProcess, payload: bytes) -> dict[str, object]:
    with _connect(w) as s:
        s.sendall(payload)
        buf = control.receive_line(s)
    answer: dict[str, object] = json.loads(buf)
    return answer


def _log(w: WatcherProcess) -> str:
    return w.log.read_text(encoding="utf-8", errors="replace")


def test_every_operation_has_a_checked_shape() -> None:
    assert set(SHAPES) == {"ping", "status", "query"} | set(OPS)


def test_idle_and_excess_connections_are_bounded_and_answered(watcher: WatcherProcess) -> None:
    assert watcher.proc is not None
    proc = psutil.Process(watcher.proc.pid)
    before = proc.num_threads()
    slack = 6  # the watcher's own threads come and go (DuckDB's pool, the acting thread's work)
    idle = [_connect(watcher) for _ in range(60)]  # say nothing, keep the connection open
    try:
        time.sleep(1.0)
        assert proc.num_threads() <= before + control.MAX_HANDLERS + slack
        busy = 0
        for s in idle:  # those past the cap are told at once, not left hanging
            s.settimeout(0.5)
            try:
                got = s.recv(4096)
            except TimeoutError:
                continue
            if not got:  # one of the served ones, already dropped for its silence
                continue
            assert json.loads(got)["error"].startswith("the watcher is busy")
            busy += 1
        assert busy >= 60 - control.MAX_HANDLERS
        # the silent ones are dropped after the read timeout, and the socket serves again
        assert wait_until(lambda: (watcher.call("ping") or {}).get("ok") is True, timeout=control.READ_TIMEOUT + 10)
        assert proc.num_threads() <= before + slack  # the handlers' threads ended
    finally:
        for s in idle:
            s.close()
    log = _log(watcher)
    assert "Traceback" not in log
    assert log.count("control socket:") <= 2, log  # rate-limited: at most one line a minute (and the first)


BAD = [
    (b"not json\n", "one line of JSON"),
    (b"[1, 2]\n", "a JSON object with 'op'"),
    (b'{"op": 5}\n', "'op'"),
    (b'{"op": "no.such"}\n', "does not know the operation 'no.such'"),
    (b'{"op": "ping", "args": []}\n', "'args' must be an object"),
    (b'{"op": "ping", "args": {"x": 1}}\n', "unknown argument(s) x"),
    (b'{"op": "query", "args": {"sql": 1}}\n', "argument 'sql' must be a string"),
    (b'{"op": "query", "args": {"sql": "SELECT 1", "params": {"a": 1}}}\n', "argument 'params' must be a list"),
    (b'{"op": "query", "args": {"sql": "SELECT ?", "params": [[1]]}}\n', "'params' must hold only"),
    (b'{"op": "bans.add", "args": {"target": ["192.0.2.1"]}}\n', "argument 'target' must be a string"),
    (b'{"op": "bans.add", "args": {"target": "192.0.2.1", "ttl": "1h"}}\n', "argument 'ttl' must be a number"),
    (b'{"op": "bans.add", "args": {"target": "192.0.2.1", "ttl": Infinity}}\n', "'ttl' must be a finite number"),
    (b'{"op": "bans.add", "args": {}}\n', "argument 'target' is required"),
    (b'{"op": "bans.list", "args": {"limit": "ten"}}\n', "argument 'limit' must be an integer"),
    (b'{"op": "bans.list", "args": {"limit": -1}}\n', "argument 'limit' must be between 0"),
    (b'{"op": "bans.list", "args": {"all": "yes"}}\n', "argument 'all' must be true or false"),
    (b'{"op": "alerts.silence", "args": {"key": "192.0.2.1"}}\n', "argument 'until' is required"),
    (b'{"op": "alerts.unsilence", "args": {"target": "' + b"x" * 5000 + b'"}}\n', "longer than 4096"),
    (b"[" * 100_000 + b"\n", "one line of JSON"),
]


def test_malformed_requests_get_a_clear_error_and_no_traceback(watcher: WatcherProcess) -> None:
    wrong = []
    for payload, expected in BAD:
        got = _raw(watcher, payload)
        if got["ok"] is not False or got["exit_code"] != 2 or expected not in str(got["error"]):
            wrong.append((payload[:60], got))
    assert wrong == []
    for _ in range(20):  # clients that hang up before their answer, or mid-request
        s = _connect(watcher)
        s.sendall(b'{"op": "status"}\n' if _ % 2 else b'{"op": "sta')
        s.close()
    assert (watcher.call("ping") or {}).get("ok") is True
    assert watcher.count("SELECT count(*) FROM sip_events") == 0  # a good query still runs
    log = _log(watcher)
    assert "Traceback" not in log
    assert log.count("control socket:") <= 2, log
