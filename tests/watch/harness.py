"""A real watcher process for tests: started on a config, queried through its control socket, stopped by
signal. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudwatch.watch.control import watcher_call

CDR_HEADER = ("flowno,starttime,stoptime,holdtime,feetime,fee,customeraccount,customername,callere164,calleee164,"
              "callerip,calleeip\n")


def sip_line(i: int, tag: str = "t") -> str:
    """One parseable sipproxy REGISTER line, unique by its Call-ID."""
    sec = i % 86400
    return (f"2026-11-01 {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}.{i % 1000:03d} [INFO] RECV REGISTER "
            f"from 198.51.100.{i % 250 + 1}:5060 user=\"u{i % 97}\" callid=\"{tag}-{i}@test\" ua=\"Fanvil X4U\"\n")


def cdr_row(flowno: int) -> str:
    start = 1793491200000 + flowno * 1000
    return (f"{flowno},{start},{start + 30000},30,30,0.1200,acct{flowno % 7},Name {flowno % 7},1000{flowno},"
            f"4420794600{flowno % 10},198.51.100.9,203.0.113.20\n")


def write_config(folder: Path, sources: list[tuple[str, str]], extra: str = "") -> Path:
    cfg = folder / "fraudwatch.toml"
    body = ['[store]\npath = "store.duckdb"\n']
    for path, fmt in sources:
        body.append(f'[[sources]]\npath = "{path}"\nformat = "{fmt}"\n')
    body.append("[watch]\npoll_seconds = 0.2\nbatch_delay_ms = 20\nsettle_seconds = 1.0\npublish_seconds = 1\n"
                "status_seconds = 0.2\n" + extra)
    cfg.write_text("\n".join(body), encoding="utf-8")
    return cfg


def wait_until(pred: Callable[[], bool], timeout: float = 30.0, every: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(every)
    return pred()


class WatcherProcess:
    def __init__(self, config: Path, store: Path, prefix: tuple[str, ...] = ()) -> None:
        self.config = config
        self.store = store
        self.prefix = prefix  # e.g. ("ip", "netns", "exec", NS): run it inside a network namespace
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.parent / "watch.log"

    def start(self, timeout: float = 30.0) -> WatcherProcess:
        # faulthandler: a watcher that will not stop is sent SIGABRT first (`stop`), and dumps its threads' stacks
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
        with self.log.open("ab") as log:
            argv = [*self.prefix, sys.executable, "-m", "fraudwatch", "--config", str(self.config), "watch"]
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.config.parent)
        if not wait_until(lambda: self.call("ping") is not None or self.proc is None or
                          self.proc.poll() is not None, timeout):
            raise AssertionError(f"watcher did not start:\n{self.log.read_text()}")
        if self.proc.poll() is not None:
            raise AssertionError(f"watcher exited {self.proc.returncode}:\n{self.log.read_text()}")
        return self

    def call(self, op: str, args: dict[str, Any] | None = None) -> dict[str, Any] | None:
        try:
            return watcher_call(self.store, op, args)
        except OSError:
            return None

    def count(self, sql: str, params: list[Any] | None = None) -> int:
        got = self.call("query", {"sql": sql, "params": params or []})
        assert got is not None and got.get("ok"), got
        return int(got["rows"][0][0])

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack into the log
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            raise AssertionError(f"watcher ignored SIGTERM for {timeout}s (its threads' stacks at SIGABRT "
                                 f"follow):\n{self.log.read_text()}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup at all
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def fail_line(second: int, ip: str, n: int) -> str:
    """A 403 answer to a REGISTER from `ip` at 2026-11-01 00:00:00 + `second` (auth-failures-ip counts these)."""
    return (f"2026-11-01 00:{second // 60:02d}:{second % 60:02d}.000 [WARN] SEND 403 Forbidden to {ip}:5060 "
            f'method=REGISTER user="10{n:02d}" callid="f-{ip}-{n}@test" reason="password error"\n')
