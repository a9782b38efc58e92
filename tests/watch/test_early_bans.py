"""Early bans end to end: a real watcher in a network namespace this test creates, with the nftables backend; its
sentry process bans a burst of password guesses from the log's newest lines before the watcher's own rules have
even read them, and the rules' alert then finds the ban and is linked to it. The sentry is restarted when it dies,
is replaced on a reload, and ends with the watcher."""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.enforce.netns import require_root_and, sh
from tests.watch.harness import WatcherProcess, wait_until, write_config


@pytest.fixture
def namespace() -> Iterator[str]:
    require_root_and("nft")
    ns = f"fwtE{uuid.uuid4().hex[:6]}"
    if sh("ip", "netns", "add", ns, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        yield ns
    finally:
        sh("ip", "netns", "del", ns, check=False)


def _burst(ip: str) -> str:
    now = dt.datetime.now(dt.UTC)
    return "".join(f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} [WARN] SEND 403 Forbidden to {ip}:5060 "
                   f'method=REGISTER user="1001" callid="e-{ip}-{n}@test" reason="password error"\n'
                   for n in range(15))


def _in_set(ns: str, ip: str) -> bool:
    out = sh("ip", "netns", "exec", ns, "nft", "-j", "list", "set", "inet", "fraudwatch", "fraudwatch4",
             check=False).stdout
    return f'"{ip}"' in out


def _early(w: WatcherProcess) -> dict[str, Any]:
    got = w.call("status")
    return ((got or {}).get("status") or {}).get("early_bans") or {}


def _bans(w: WatcherProcess, ip: str) -> list[list[Any]]:
    got = w.call("query", {"sql": "SELECT source, rule, alert_id FROM bans WHERE network = ?", "params": [ip]})
    assert got is not None and got.get("ok"), got
    return [list(r) for r in got["rows"]]


def _slow_watcher(tmp_path: Path, namespace: str) -> tuple[Path, WatcherProcess]:
    """A watcher with the nftables backend in `namespace` on an empty sipproxy.log, reading it itself only every
    60 s or when a control request wakes it (`_wake`; no inotify): the sentry is the only one that can ban from
    the log before the test asks the watcher to read it."""
    log = tmp_path / "sipproxy.log"
    log.touch()
    config = write_config(tmp_path, [("sipproxy.log", "vos3000-sipproxy")],
                          'warmup_seconds = 0\ninotify = false\n[firewall]\nbackend = "nftables"\n')
    text = config.read_text(encoding="utf-8").replace("poll_seconds = 0.2", "poll_seconds = 60")
    config.write_text(text, encoding="utf-8")
    return log, WatcherProcess(config, tmp_path / "store.duckdb", ("ip", "netns", "exec", namespace)).start()


def test_a_burst_is_banned_from_the_log_tail_before_the_rules_read_it(tmp_path: Path, namespace: str) -> None:
    log, w = _slow_watcher(tmp_path, namespace)
    try:
        assert wait_until(lambda: bool(_early(w).get("rules")), 60), w.log.read_text()
        first = _early(w)
        assert "auth-failures-ip" in first["rules"] and first["alive"]

        with log.open("a", encoding="utf-8") as f:
            f.write(_burst("192.0.2.50"))
        written = time.monotonic()
        assert wait_until(lambda: _in_set(namespace, "192.0.2.50"), 10, 0.01), w.log.read_text()
        assert time.monotonic() - written < 5
        assert w.count("SELECT count(*) FROM sip_events WHERE src_ip = '192.0.2.50'") == 0  # not read by the watcher
        # then the watcher reads the burst; the rules' alert finds the early ban and is linked to it
        _wake(w)
        assert wait_until(lambda: (b := _bans(w, "192.0.2.50")) != [] and b[0][2] is not None, 30), \
            w.log.read_text()
        ((source, rule, alert_id),) = _bans(w, "192.0.2.50")
        assert (source, rule) == ("early", "auth-failures-ip")
        assert w.count("SELECT count(*) FROM alerts WHERE id = ? AND rule = 'auth-failures-ip'", [alert_id]) == 1

        # the sentry dies: the watcher starts another, and early bans go on
        pid = first["pid"]
        os.kill(pid, 9)  # the sentry is this test's (its watcher's child), named by the watcher's own status
        assert wait_until(lambda: _early(w).get("restarts") == 1 and _early(w).get("pid") not in (None, pid)
                          and bool(_early(w).get("alive")), 60), w.log.read_text()
        second = _early(w)["pid"]
        assert wait_until(lambda: bool(_early(w).get("rules")), 60)  # ready: it has found the files' ends
        with log.open("a", encoding="utf-8") as f:
            f.write(_burst("192.0.2.51"))
        assert wait_until(lambda: _in_set(namespace, "192.0.2.51"), 10, 0.01)
        assert wait_until(lambda: _bans(w, "192.0.2.51") != [], 10)  # the store follows the kernel
        assert _bans(w, "192.0.2.51")[0][0] == "early"

        # a reload (SIGHUP) replaces the sentry with one built from the new configuration
        w.signal(signal.SIGHUP)
        assert wait_until(lambda: _early(w).get("pid") not in (None, second) and bool(_early(w).get("rules")), 60), \
            w.log.read_text()
        assert not _alive(second)
        second = _early(w)["pid"]
        with log.open("a", encoding="utf-8") as f:
            f.write(_burst("192.0.2.52"))
        assert wait_until(lambda: _in_set(namespace, "192.0.2.52"), 10, 0.01)
        assert wait_until(lambda: _bans(w, "192.0.2.52") != [], 10)  # the store follows the kernel
        assert _bans(w, "192.0.2.52")[0][0] == "early"
    finally:
        code = w.stop(30)
    assert code == 0
    assert not _alive(second)  # it ended with the watcher
    assert re.search(r" fraudwatch: WARNING ban ip=192\.0\.2\.50 rule=auth-failures-ip level=1 seconds=\d+ "
                     r"source=early backend=nftables ban=\d+\n", w.log.read_text()), w.log.read_text()
    assert "early bans: 1 decided on the log's newest lines, before the rules' alerts" in w.log.read_text()


def _wake(w: WatcherProcess) -> None:
    """A request the watcher's loop serves (listing the bans): it reads its files on the way."""
    assert (w.call("bans.list") or {}).get("ok")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_early_bans_stay_off_with_dry_run_or_when_turned_off(tmp_path: Path) -> None:
    log = tmp_path / "sipproxy.log"
    log.touch()
    config = write_config(tmp_path, [("sipproxy.log", "vos3000-sipproxy")], "warmup_seconds = 0\n")
    w = WatcherProcess(config, tmp_path / "store.duckdb").start()
    try:
        got = w.call("status")
        assert got is not None and got["status"]["early_bans"] is None  # dry-run: nothing to be early about
    finally:
        assert w.stop() == 0
    from fraudwatch.config import load_config
    from fraudwatch.errors import ConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text('[store]\npath = "s.duckdb"\n[watch]\nearly_bans = "yes"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="early_bans"):
        load_config(bad)


def _stamp() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}"


def _registered(ip: str) -> str:
    cid = f"reg@{ip}"
    return (f'{_stamp()} [INFO] RECV REGISTER from {ip}:5060 user="1001" callid="{cid}" ua="Yealink SIP-T46S"\n'
            f'{_stamp()} [INFO] SEND 401 Unauthorized to {ip}:5060 method=REGISTER user="1001" callid="{cid}"\n'
            f'{_stamp()} [INFO] RECV REGISTER from {ip}:5060 user="1001" callid="{cid}" ua="Yealink SIP-T46S"\n'
            f'{_stamp()} [INFO] SEND 200 OK to {ip}:5060 method=REGISTER user="1001" callid="{cid}" expires=3600\n')


def _scanned(ip: str) -> str:
    return "".join(f'{_stamp()} [INFO] RECV OPTIONS from {ip}:5060 user="100" callid="s{n}-{ip}" '
                   f'ua="friendly-scanner"\n' for n in range(8))


def test_forged_scanner_lines_do_not_ban_a_customer_the_sentry_saw_register(tmp_path: Path, namespace: str) -> None:
    """The sentry bans from the tail before the store has the lines, so it checks what it can itself: a customer's
    registration it saw a moment before forged scanner lines with the customer's address. The real scanner beside
    it is banned early; the customer is not, neither by the sentry nor later by the rules' alert, which says why."""
    log, w = _slow_watcher(tmp_path, namespace)
    customer, scanner = "192.0.2.60", "192.0.2.61"
    try:
        assert wait_until(lambda: "scanner-user-agent" in (_early(w).get("rules") or []), 60), w.log.read_text()
        with log.open("a", encoding="utf-8") as f:
            f.write(_registered(customer))
            f.flush()
            time.sleep(0.3)  # a registration, then the forged lines a moment later
            f.write(_scanned(customer) + _scanned(scanner))
        assert wait_until(lambda: _in_set(namespace, scanner), 10, 0.01), w.log.read_text()
        time.sleep(1.0)
        assert not _in_set(namespace, customer), w.log.read_text()
        assert w.count("SELECT count(*) FROM sip_events") == 0  # all of it decided from the tail alone
        _wake(w)
        got: dict[str, Any] = {}

        def refused() -> bool:
            r = w.call("query", {"sql": "SELECT evidence FROM alerts WHERE rule = 'scanner-user-agent' AND key = ?",
                                 "params": [customer]})
            got["r"] = r
            return bool(r and r.get("ok") and r["rows"] and "enforcement" in (r["rows"][0][0] or ""))

        assert wait_until(refused, 30), (got, w.log.read_text())
        assert f"not banned: {customer} registered or called OK within 1d" in got["r"]["rows"][0][0]
        assert _bans(w, customer) == [] and not _in_set(namespace, customer)
        assert _bans(w, scanner)[0][0] == "early"
    finally:
        code = w.stop(30)
    assert code == 0
