"""What broke an operator's trust in the watcher on the first day (issue 23), each on a real watcher process: a
misspelt format or a missing path silently skipped, a busy metrics port aborting it (exit 134) with its socket
left behind, a log without times or the IP and rule it acted on, dry-run bans called "banned", and no counts per
rule in `status`."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.watch.harness import WatcherProcess, fail_line, sip_line, wait_until, write_config

FMT = "vos3000-sipproxy"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d fraudwatch: [A-Z]+ ")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "logs").mkdir()
    yield tmp_path


def _watch_once(config: Path, seconds: float = 20.0) -> subprocess.CompletedProcess[str]:
    """`fraudwatch watch` run to its end (it is expected to refuse to start), bounded in time."""
    return subprocess.run([sys.executable, "-m", "fraudwatch", "--config", str(config), "watch", "--for", "10"],
                          capture_output=True, text=True, timeout=seconds, cwd=config.parent, check=False)


def _leftovers(site: Path) -> list[str]:
    """What a watcher that never started must not have left: its socket, status file, store."""
    return sorted(p.name for p in site.iterdir() if p.name.startswith("store.duckdb"))


def test_a_misspelt_format_refuses_to_start_naming_file_line_and_the_known_formats(site: Path) -> None:
    (site / "logs/sipproxy.log").write_text(sip_line(1), encoding="utf-8")
    (site / "logs/mbx.log").write_text("", encoding="utf-8")
    config = write_config(site, [("logs/mbx.log", "vos3000-mbx"), ("logs/sipproxy.log", "vos3000-sipprox")])
    line = config.read_text().splitlines().index('format = "vos3000-sipprox"') + 1
    got = _watch_once(config)
    assert got.returncode == 2, got
    assert got.stderr.splitlines() == [
        f"fraudwatch: {config}:{line}: unknown format 'vos3000-sipprox' (did you mean 'vos3000-sipproxy'? known: "
        f"asterisk, freeswitch, linux-netfilter, vos3000-cdr, vos3000-customers, vos3000-mbx, vos3000-sipproxy; "
        f"`fraudwatch formats list` describes them)"], got.stderr
    assert _leftovers(site) == []


def test_a_missing_path_is_an_error_in_status_and_the_log_until_it_appears_then_read_from_its_start(
        site: Path, cli: Callable[..., Run]) -> None:
    present, absent = site / "logs/sipproxy.log", site / "logs/later/sipproxy.log"
    present.write_text("".join(sip_line(i, "a") for i in range(5)), encoding="utf-8")
    config = write_config(site, [("logs/sipproxy.log", FMT), ("logs/later/sipproxy.log", FMT)])
    offline = json.loads(cli("--config", config, "status", "--json").out)  # no watcher yet: from the config
    assert offline["missing"] == [{"path": str(absent), "error": "no such file or folder"}]
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 5, 20)
        got = cli("--config", config, "status", "--json")
        snap = json.loads(got.out)
        assert [(m["path"], m["error"]) for m in snap["missing"]] == [(str(absent), "no such file or folder")]
        human = cli("--config", config, "status")
        assert "missing" in human.out and "no such file or folder" in human.out, human.out
        assert wait_until(lambda: f"source path missing: {absent}" in w.log.read_text(), 5)
        assert "watching 1 source(s)" in w.log.read_text() and "1 source path(s) missing" in w.log.read_text()
        wait_until(lambda: False, 1.0)  # five polls: the line is not repeated on every one
        assert w.log.read_text().count(f"source path missing: {absent}") == 1
        absent.parent.mkdir()
        absent.write_text("".join(sip_line(i, "b") for i in range(7)), encoding="utf-8")
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 12, 20), w.log.read_text()
        assert json.loads(cli("--config", config, "status", "--json").out)["missing"] == []
        assert f"source path appeared: {absent}: reading it from the start" in w.log.read_text()
    finally:
        assert w.stop() == 0
        w.close()


def test_a_busy_metrics_port_is_one_line_and_a_clean_exit(site: Path) -> None:
    """A real socket holds the port. Before: exit 134, "terminate called after throwing", the socket left."""
    (site / "logs/sipproxy.log").write_text(sip_line(1), encoding="utf-8")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(site, [("logs/sipproxy.log", FMT)], f'metrics = "127.0.0.1:{port}"\n')
        got = _watch_once(config)
    assert got.returncode == 2, got
    assert got.stderr.splitlines() == [
        f"fraudwatch: metrics port 127.0.0.1:{port} is in use: Address already in use (stop what listens there, "
        f"or set another [watch] metrics address)"], got.stderr
    assert _leftovers(site) == []


def test_a_start_failing_halfway_stops_what_it_started(site: Path) -> None:
    """The control socket's path is refused after the store, the rules, the firewall and the threads started:
    they are all stopped and closed, and the process exits with the error's code, not an abort."""
    deep = site / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    (site / "logs/sipproxy.log").write_text(sip_line(1), encoding="utf-8")
    config = write_config(site, [(str(site / "logs/sipproxy.log"), FMT)])
    config.write_text(config.read_text().replace('path = "store.duckdb"', f'path = "{deep}/store.duckdb"', 1))
    got = _watch_once(config, 60)
    assert got.returncode == 3, got
    assert got.stderr.splitlines()[-1] == (f"fraudwatch: {deep}/store.duckdb.sock: path too long for a Unix socket "
                                           f"(107 bytes); use a shorter store path"), got.stderr
    assert "terminate called" not in got.stderr and "Traceback" not in got.stderr
    assert not (deep / "store.duckdb.sock").exists()
    assert not (deep / "store.duckdb.wal").exists()  # the store was closed (checkpointed), not abandoned


def test_the_log_is_stamped_and_names_the_ip_rule_and_dry_run_of_each_alert_and_ban(
        site: Path, cli: Callable[..., Run]) -> None:
    ip = "192.0.2.77"
    log = site / "logs/sipproxy.log"
    log.write_text("".join(fail_line(i, ip, i) for i in range(16)), encoding="utf-8")
    config = write_config(site, [("logs/sipproxy.log", FMT)], 'early_bans = false\n[firewall]\nbackend = "dry-run"\n'
                                                               'allow_host_addresses = false\n')
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM bans WHERE network = ?", [ip]) == 1, 30)
        assert wait_until(lambda: "would ban (dry run) ip=" in w.log.read_text(), 10), w.log.read_text()
        bans = cli("--config", config, "bans", "list")
        assert "1 dry-run ban(s) active (dry run: would ban" in bans.out, bans.out
        assert wait_until(lambda: "last alert:" in cli("--config", config, "status").out, 10)
        status = cli("--config", config, "status")
        assert "firewall: dry run" in status.out and "would ban" in status.out, status.out
        last = status.out.split("last alert:", 1)[1].splitlines()[0]
        assert last.endswith(("(would ban the IP (dry run))", "(alert only)")), last
    finally:
        assert w.stop() == 0
        w.close()
    lines = w.log.read_text().splitlines()
    ours = [ln for ln in lines if " fraudwatch: " in ln]
    assert ours and all(STAMP.match(ln) for ln in ours), [ln for ln in ours if not STAMP.match(ln)]
    alert = [ln for ln in ours if " alert opened " in ln]
    assert alert and "rule=auth-failures-ip" in alert[0] and f"ip={ip}" in alert[0], ours
    assert "done=\"would ban 192.0.2.77 until " in "\n".join(ln for ln in ours if " alert " in ln)
    ban = [ln for ln in ours if " would ban (dry run) " in ln]
    assert len(ban) == 1 and f"ip={ip} rule=auth-failures-ip alert=" in ban[0] and "backend=dry-run" in ban[0]
    claims = [ln for ln in lines if re.search(r"(?<!not )\bbanned\b", ln)]
    assert not claims, claims


def test_status_counts_matches_alerts_and_bans_per_rule(site: Path, cli: Callable[..., Run]) -> None:
    ips = ["192.0.2.71", "192.0.2.72"]
    log = site / "logs/sipproxy.log"
    log.write_text("".join(fail_line(i, ip, i) for ip in ips for i in range(16)), encoding="utf-8")
    config = write_config(site, [("logs/sipproxy.log", FMT)], 'early_bans = false\n[firewall]\nbackend = "dry-run"\n'
                                                               'allow_host_addresses = false\n')
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM bans") == 2, 30)
        # matches are counted as reported: an ongoing alert's count at most 5 s later (detect.runners.live)
        expected = w.count("SELECT sum(count) FROM alerts WHERE rule = 'auth-failures-ip'")

        def rule() -> dict[str, dict[str, int]]:
            snap = json.loads(cli("--config", config, "status", "--json").out)
            return dict(snap["rules"].get("auth-failures-ip") or {})

        assert wait_until(lambda: rule().get("hour", {}).get("matches") == expected, 15), rule()
        live = rule()
        assert live["hour"] == {"matches": expected, "alerts": 2, "bans": 2}
        assert live["day"] == live["hour"]
        human = cli("--config", config, "status").out
        assert re.search(rf"auth-failures-ip\s+{expected} / {expected}\s+2 / 2\s+2 / 2", human), human
    finally:
        assert w.stop() == 0
        w.close()
    offline = json.loads(cli("--config", config, "status", "--json").out)  # from the store, no watcher
    assert offline["rules"]["auth-failures-ip"]["day"] == {"matches": expected, "alerts": 2, "bans": 2}
    w.start()  # a restart keeps the last day's counts (seeded from the store)
    try:
        snap = json.loads(cli("--config", config, "status", "--json").out)
        assert snap["running"] and snap["rules"]["auth-failures-ip"]["day"] == {"matches": expected, "alerts": 2,
                                                                                "bans": 2}
    finally:
        assert w.stop() == 0
        w.close()


def test_a_reload_with_a_misspelt_format_keeps_the_running_configuration(site: Path) -> None:
    log = site / "logs/sipproxy.log"
    log.write_text("".join(sip_line(i, "a") for i in range(3)), encoding="utf-8")
    config = write_config(site, [("logs/sipproxy.log", FMT)])
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 3, 20)
        config.write_text(config.read_text().replace(f'format = "{FMT}"', 'format = "vos3000-sipproxi"'))
        line = config.read_text().splitlines().index('format = "vos3000-sipproxi"') + 1
        w.signal(signal.SIGHUP)
        expected = (f"reload failed, keeping the running configuration: {config}:{line}: unknown format "
                    f"'vos3000-sipproxi' (did you mean 'vos3000-sipproxy'?")
        assert wait_until(lambda: expected in w.log.read_text(), 10), w.log.read_text()
        with log.open("a", encoding="utf-8") as f:
            f.write("".join(sip_line(i, "b") for i in range(4)))
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 7, 20)  # still read, as before
    finally:
        assert w.stop() == 0
        w.close()


def test_a_second_watcher_on_the_store_says_so_and_leaves_the_first_alone(site: Path) -> None:
    """Its metrics port is the first watcher's: the message is about the watcher, not the port."""
    (site / "logs/sipproxy.log").write_text(sip_line(1), encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(site, [("logs/sipproxy.log", FMT)], f'metrics = "127.0.0.1:{port}"\n')
    w = WatcherProcess(config, site / "store.duckdb").start()
    try:
        got = _watch_once(config)
        assert got.returncode == 3, got
        assert got.stderr.splitlines() == [
            f"fraudwatch: {site}/store.duckdb.sock: another watcher answers on this store's socket"], got.stderr
        assert (w.call("ping") or {}).get("ok") is True
    finally:
        assert w.stop() == 0
        w.close()
