"""The watcher as a real process on real files: rotation while a writer appends, kill -9 and restart, CDR exports
written in chunks, a partial last line, a source deleted and recreated, SIGHUP, readers while it runs."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.test_ingest import count as offline_count
from tests.watch.harness import (
    CDR_HEADER,
    WatcherProcess,
    cdr_row,
    sip_line,
    wait_until,
    write_config,
)

WRITER = Path(__file__).with_name("writer.py")
COUNT_SQL = "SELECT count(*) FROM sip_events"
DISTINCT_SQL = "SELECT count(DISTINCT call_id) FROM sip_events"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "logs").mkdir()
    yield tmp_path


def _writer(path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WRITER), str(path), *args])


def _watch(site: Path, sources: list[tuple[str, str]], extra: str = "") -> WatcherProcess:
    return WatcherProcess(write_config(site, sources, extra), site / "store.duckdb")


def _settled(w: WatcherProcess, expected: int, timeout: float = 60.0) -> int:
    wait_until(lambda: w.count(COUNT_SQL) >= expected, timeout, every=0.1)
    return w.count(COUNT_SQL)


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_rotation_while_a_writer_appends_loses_and_repeats_nothing(site: Path, mode: str) -> None:
    n = 6000
    w = _watch(site, [("logs/sipproxy.log*", "vos3000-sipproxy")]).start()
    try:
        writer = _writer(site / "logs/sipproxy.log", "--count", str(n), "--rate", "4000", "--rotate", mode,
                         "--rotate-every", "1500")
        assert writer.wait(60) == 0
        assert _settled(w, n) == n
        assert w.count(DISTINCT_SQL) == n
        assert w.count("SELECT count(*) FROM rejects") == 0
        assert w.stop() == 0
    finally:
        w.close()
    rotated = sorted(p.name for p in (site / "logs").iterdir())
    assert rotated == ["sipproxy.log", "sipproxy.log.1", "sipproxy.log.2", "sipproxy.log.3"]
    assert offline_count(site / "store.duckdb", COUNT_SQL) == n


def test_kill_9_at_random_moments_then_restart_stores_every_line_exactly_once(site: Path) -> None:
    n = 20000
    rng = random.Random(7)
    w = _watch(site, [("logs/sipproxy.log*", "vos3000-sipproxy")])
    writer = _writer(site / "logs/sipproxy.log", "--count", str(n), "--rate", "2500", "--rotate", "rename",
                     "--rotate-every", "7000")
    kills = 0
    try:
        deadline = time.monotonic() + 60
        while writer.poll() is None and time.monotonic() < deadline:
            w.start()
            time.sleep(rng.uniform(0.3, 1.5))  # it is mid-batch, mid-commit or idle: any instant
            w.kill()
            kills += 1
        assert writer.wait(30) == 0
        w.start()
        assert _settled(w, n) == n
        assert w.count(DISTINCT_SQL) == n
        assert w.stop() == 0
    finally:
        w.close()
        if writer.poll() is None:
            writer.kill()
    assert kills >= 3
    assert offline_count(site / "store.duckdb", COUNT_SQL) == n


def test_cdr_exports_written_in_chunks_are_read_once_complete(site: Path) -> None:
    cdr = site / "cdr"
    cdr.mkdir()
    w = _watch(site, [("cdr", "vos3000-cdr")]).start()
    try:
        rows = 0
        for k in range(3):
            path = cdr / f"cdr_{k}.csv"
            body = CDR_HEADER + "".join(cdr_row(1000 * k + i) for i in range(200))
            with path.open("w", encoding="utf-8") as f:
                for start in range(0, len(body), 1500):  # chunks that cut rows in half
                    f.write(body[start:start + 1500])
                    f.flush()
                    time.sleep(0.1)
            rows += 200
        assert wait_until(lambda: w.count("SELECT count(*) FROM cdrs") >= rows, 30)
        time.sleep(1.5)
        assert w.count("SELECT count(*) FROM cdrs") == rows
        assert w.count("SELECT count(*) FROM rejects") == 0
        status = w.call("status")
        assert status is not None
        files = {Path(f["path"]).name: f for f in status["status"]["files"]}
        assert {name: f["reads"] for name, f in files.items()} == {"cdr_0.csv": 1, "cdr_1.csv": 1, "cdr_2.csv": 1}
        assert all(f["parsed"] == 200 and f["lag_bytes"] == 0 for f in files.values())
    finally:
        w.stop()
        w.close()


def test_partial_last_line_waits_for_its_newline(site: Path) -> None:
    log = site / "logs/sipproxy.log"
    log.write_text(sip_line(1) + sip_line(2), encoding="utf-8")
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")]).start()
    try:
        assert _settled(w, 2) == 2
        line = sip_line(3)
        with log.open("a", encoding="utf-8") as f:
            f.write(line[:40])
        time.sleep(1.0)
        assert w.count(COUNT_SQL) == 2
        status = w.call("status")
        assert status is not None
        assert status["status"]["files"][0]["lag_bytes"] == 40
        with log.open("a", encoding="utf-8") as f:
            f.write(line[40:])
        assert _settled(w, 3) == 3
        assert w.count("SELECT count(*) FROM sip_events WHERE call_id = 't-3@test'") == 1
    finally:
        w.stop()
        w.close()


def test_source_deleted_and_recreated_is_read_from_its_start(site: Path) -> None:
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(100)), encoding="utf-8")
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")]).start()
    try:
        assert _settled(w, 100) == 100
        log.unlink()
        time.sleep(0.5)
        log.write_text("".join(sip_line(i, "new") for i in range(100, 130)), encoding="utf-8")
        assert _settled(w, 130) == 130
        assert w.count("SELECT count(*) FROM sip_events WHERE call_id LIKE 'new-%'") == 30
    finally:
        w.stop()
        w.close()


def test_sighup_reloads_the_config_without_losing_a_position(site: Path) -> None:
    a, b = site / "logs/a.log", site / "logs/b.log"
    a.write_text("".join(sip_line(i, "a") for i in range(50)), encoding="utf-8")
    b.write_text("".join(sip_line(i, "b") for i in range(70)), encoding="utf-8")
    w = _watch(site, [("logs/a.log", "vos3000-sipproxy")]).start()
    try:
        assert _settled(w, 50) == 50
        time.sleep(0.5)
        assert w.count(COUNT_SQL) == 50  # b is not a source yet
        write_config(site, [("logs/a.log", "vos3000-sipproxy"), ("logs/b.log", "vos3000-sipproxy")])
        with a.open("a", encoding="utf-8") as f:
            f.write("".join(sip_line(i, "a") for i in range(50, 60)))
        w.signal(signal.SIGHUP)
        assert _settled(w, 130) == 130
        assert w.count(DISTINCT_SQL) == 130
        # a broken config on reload is reported and the running one kept
        (site / "fraudwatch.toml").write_text("[store\n", encoding="utf-8")
        w.signal(signal.SIGHUP)
        with b.open("a", encoding="utf-8") as f:
            f.write(sip_line(70, "b"))
        assert _settled(w, 131) == 131
        assert w.proc is not None and w.proc.poll() is None
    finally:
        assert w.stop() == 0
        w.close()
    assert "reload failed, keeping the running configuration" in w.log.read_text()


def test_readers_work_while_it_runs(site: Path, cli: object) -> None:
    from collections.abc import Callable

    run: Callable[..., Run] = cli  # type: ignore[assignment]
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(500)), encoding="utf-8")
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")]).start()
    config = site / "fraudwatch.toml"
    try:
        assert _settled(w, 500) == 500

        def published() -> bool:
            got = run("--config", config, "sql", "SELECT count(*) AS n FROM sip_events", "--json")
            return got.code == 0 and json.loads(got.out) == [{"n": 500}]

        assert wait_until(published, 10)  # the read copy, within [watch] publish_seconds
        got = run("--config", config, "alerts", "list", "--json")
        assert got.code == 0, got.err
        status = run("--config", config, "status", "--json")
        assert status.code == 0, status.err
        snap = json.loads(status.out)
        assert snap["running"] is True and snap["pid"] == w.proc.pid  # type: ignore[union-attr]
        (entry,) = snap["files"]
        assert (entry["parsed"], entry["rejected"], entry["lag_bytes"]) == (500, 0, 0)
        assert entry["last_event"].startswith("2026-11-01T00:08:1")
        ingest = run("--config", config, "ingest", str(log))
        assert ingest.code == 3 and "in use" in ingest.err
        limits = w.call("query", {"sql": "SELECT value FROM watcher_settings WHERE name IN ('memory_limit', "
                                         "'checkpoint_threshold') ORDER BY name"})  # the writer's own settings
        assert limits is not None and limits["rows"] == [["61.0 MiB"], ["488.2 MiB"]]  # 64MB, 512MB (the default)
    finally:
        assert w.stop() == 0
        w.close()
    status = run("--config", config, "status", "--json")
    snap = json.loads(status.out)
    assert snap["running"] is False and snap["files"][0]["parsed"] == 500 and snap["files"][0]["lag_bytes"] == 0


def test_sigterm_stops_it_within_seconds_under_load(site: Path) -> None:
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")]).start()
    writer = _writer(site / "logs/sipproxy.log", "--count", "40000", "--rate", "20000")
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        assert w.stop(timeout=10) == 0
        assert time.monotonic() - t0 < 5
    finally:
        writer.wait(30)
        w.close()
    stored = offline_count(site / "store.duckdb", COUNT_SQL)
    w.start()
    try:
        assert _settled(w, 40000) == 40000
    finally:
        w.stop()
        w.close()
    assert 0 < stored <= 40000


def test_bad_input_is_kept_aside_and_the_watcher_goes_on(site: Path) -> None:
    log = site / "logs/sipproxy.log"
    hostile = b"\x00\xff binary junk\n" + b"A" * 100_000 + b"\n" + b"not a sip line at all\n"
    log.write_bytes(sip_line(1).encode() + hostile + sip_line(2).encode())
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")]).start()
    try:
        assert _settled(w, 2) == 2
        assert wait_until(lambda: w.count("SELECT count(*) FROM rejects") == 3, 10)
        assert w.count("SELECT count(DISTINCT byte_offset) FROM rejects WHERE source = ?", [str(log)]) == 3
    finally:
        assert w.stop() == 0
        w.close()


def test_status_without_a_watcher_reads_the_store(site: Path, cli: object) -> None:
    from collections.abc import Callable

    run: Callable[..., Run] = cli  # type: ignore[assignment]
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(20)) + sip_line(20)[:10], encoding="utf-8")
    config = write_config(site, [("logs/sipproxy.log", "vos3000-sipproxy")])
    assert run("--config", config, "ingest", "--quiet").code == 0
    got = run("--config", config, "status", "--json")
    assert got.code == 0, got.err
    snap = json.loads(got.out)
    assert snap["running"] is False
    (entry,) = snap["files"]
    assert (entry["parsed"], entry["lag_bytes"], entry["format"]) == (20, 10, "vos3000-sipproxy")
    human = run("--config", config, "status")
    assert human.code == 0 and "not running" in human.out
    assert os.path.basename(str(log)) in human.out




def test_prometheus_endpoint_on_loopback(site: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(40)) + "junk line\n", encoding="utf-8")
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")], f'metrics = "127.0.0.1:{port}"\n').start()
    try:
        assert _settled(w, 40) == 40
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        label = f'{{path="{log}",format="vos3000-sipproxy"}}'
        assert f"fraudwatch_lines_read_total{label} 41.0" in body
        assert f"fraudwatch_lines_parsed_total{label} 40.0" in body
        assert f"fraudwatch_lines_rejected_total{label} 1.0" in body
        assert "# TYPE fraudwatch_lag_bytes gauge" in body
    finally:
        assert w.stop() == 0
        w.close()


def test_a_restart_mid_attack_resumes_its_windows_and_its_alert(site: Path) -> None:
    """10 failures, restart, 6 more within the 30 s window: the rules see 16 (critical, a ban), and the attack
    stays one alert, updated — not a warning for the first part and a second alert for the rest."""
    from tests.watch.harness import fail_line

    log = site / "logs/sipproxy.log"
    ip = "192.0.2.77"
    log.write_text("".join(fail_line(i, ip, i) for i in range(10)), encoding="utf-8")
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")])
    sql = "SELECT count(*) FROM alerts WHERE rule = 'auth-failures-ip' AND key = ?"
    w.start()
    try:
        assert wait_until(lambda: w.count(sql, [ip]) == 1, 20)
        assert w.stop() == 0
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(fail_line(10 + i, ip, 10 + i) for i in range(6)))
        w.start()
        crit = "SELECT count(*) FROM alerts WHERE rule = 'auth-failures-ip' AND key = ? AND severity = 'critical'"
        assert wait_until(lambda: w.count(crit, [ip]) == 1, 20), w.log.read_text()
        assert w.count(sql, [ip]) == 1
        assert re.search(r"warm-up: [1-9]\d* open alert\(s\) resumed, 10 recent event", w.log.read_text())
    finally:
        assert w.stop() == 0
        w.close()


def test_write_commands_reach_the_running_watcher(site: Path, cli: object) -> None:
    """`bans add` and `alerts silence` while the watcher holds the store: run by the watcher, over its socket."""
    from collections.abc import Callable

    run: Callable[..., Run] = cli  # type: ignore[assignment]
    (site / "logs/sipproxy.log").write_text(sip_line(1), encoding="utf-8")
    trusted = '\n[trusted]\nnetworks = ["203.0.113.0/24"]\n'
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")], trusted).start()
    config = site / "fraudwatch.toml"
    try:
        added = run("--config", config, "bans", "add", "192.0.2.5", "--ttl", "1h", "--reason", "manual test")
        assert added.code == 0, added.err
        listed = run("--config", config, "bans", "list", "--json")
        assert listed.code == 0, listed.err
        assert [b["network"] for b in json.loads(listed.out)] == ["192.0.2.5"]
        assert w.count("SELECT count(*) FROM bans WHERE removed_at IS NULL") == 1
        refused = run("--config", config, "bans", "add", "203.0.113.9")
        assert refused.code != 0 and "trusted" in refused.err and "\n" not in refused.err.strip()
        silenced = run("--config", config, "alerts", "silence", "192.0.2.5", "--for", "2h")
        assert silenced.code == 0, silenced.err
        assert w.count("SELECT count(*) FROM silences") == 1
    finally:
        assert w.stop() == 0
        w.close()


def test_a_hanging_notifier_does_not_delay_the_ban(site: Path) -> None:
    """A webhook that hangs for 30 s when the alert fires: the ban is in the store within seconds, the
    notification waits in the outbox, and SIGTERM still stops the watcher promptly."""
    import http.server
    import threading

    from tests.watch.harness import fail_line

    hits: list[float] = []
    release = threading.Event()

    class Hang(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hits.append(time.monotonic())
            release.wait(30)  # bounded: the test releases it at the end
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    extra = (f'\n[alerts]\nsend_timeout = 40\n[[alerts.channels]]\nname = "hook"\nurl = "json://127.0.0.1:{port}/x"\n'
             '\n[firewall]\nbackend = "dry-run"\n')
    log = site / "logs/sipproxy.log"
    log.touch()
    w = _watch(site, [("logs/sipproxy.log", "vos3000-sipproxy")], extra).start()
    try:
        ip = "192.0.2.99"
        t0 = time.monotonic()
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(fail_line(i, ip, i) for i in range(20)))
        assert wait_until(lambda: w.count("SELECT count(*) FROM bans WHERE network = ?", [ip]) == 1, 10)
        banned_after = time.monotonic() - t0
        assert wait_until(lambda: bool(hits), 10)  # the webhook was called (and hangs)
        assert banned_after < 5
        assert w.count("SELECT count(*) FROM notify_outbox WHERE status = 'pending'") >= 1
        t1 = time.monotonic()
        assert w.stop(timeout=20) == 0
        assert time.monotonic() - t1 < 15
    finally:
        release.set()
        w.close()
        server.shutdown()


def test_readers_see_events_within_seconds_from_the_segments_not_the_snapshot(site: Path, cli: object) -> None:
    """Events reach readers in other processes through the segments the watcher lists after each commit (hot rows
    within about a second), not through the snapshot of the small tables, here published once a minute."""
    from collections.abc import Callable

    run: Callable[..., Run] = cli  # type: ignore[assignment]
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i) for i in range(300)), encoding="utf-8")
    config = site / "fraudwatch.toml"
    config.write_text('[store]\npath = "store.duckdb"\n[[sources]]\npath = "logs/sipproxy.log"\n'
                      'format = "vos3000-sipproxy"\n[watch]\npoll_seconds = 0.2\nbatch_delay_ms = 20\n'
                      "publish_seconds = 60\n", encoding="utf-8")
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        assert _settled(w, 300) == 300

        def seen(n: int) -> Callable[[], bool]:
            def check() -> bool:
                got = run("--config", config, "sql", "SELECT count(*) AS n FROM sip_events", "--json")
                return got.code == 0 and json.loads(got.out) == [{"n": n}]
            return check

        assert wait_until(seen(300), 10)
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(sip_line(i, "more") for i in range(300, 420)))
        started = time.monotonic()
        assert wait_until(seen(420), 10, every=0.1)
        assert time.monotonic() - started < 5  # not the snapshot's minute
        segments = site / "store.duckdb.segments"
        assert list(segments.glob("sip_events/day=2026-11-01/*.parquet"))
        assert not (site / "store.duckdb.read" / "manifest.json").exists() or \
            "sip_events" not in (site / "store.duckdb.read" / "manifest.json").read_text()
    finally:
        assert w.stop() == 0
        w.close()
