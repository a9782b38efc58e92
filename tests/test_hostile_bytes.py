"""Issue 22: the bytes of a line never cost it its place. A REGISTER flood whose attacker-written fields (user,
Call-ID, User-Agent) carry invalid UTF-8 and NUL bytes is stored (each row flagged `repaired`), alerts and bans
exactly as the same flood with clean bytes: through `ingest --detect`, through the sentry's tail (early bans), and
through a real watcher."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from fraudwatch.config import IngestConfig, SourceConfig
from fraudwatch.detect.base import Context
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.early import EarlyBans
from fraudwatch.formats.registry import load_formats
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.watch.tail import LogTail
from tests.conftest import Run
from tests.watch.harness import WatcherProcess, wait_until, write_config

# What the attacker writes: an invalid UTF-8 sequence, a lone continuation byte, a NUL, a truncated sequence.
DIRTY = (b"\xff", b"\x80x", b"\x00", b"\xe2\x82")


def flood(start: dt.datetime, ip: str, dirty: bool, n: int = 150) -> bytes:
    """`n` REGISTERs from `ip`, one each 0.2 s, each a guessed user; with `dirty`, hostile bytes in the user, the
    Call-ID and the User-Agent."""
    out = []
    for i in range(n):
        t = start + dt.timedelta(seconds=0.2 * i)
        junk = DIRTY[i % len(DIRTY)] if dirty else b""
        out.append(f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d} [INFO] RECV REGISTER from {ip}:5060 ".encode()
                   + b'user="u' + str(i).encode() + junk + b'" callid="c' + str(i).encode() + junk
                   + b'@x" ua="friendly-scanner ' + junk + b'"\n')
    return b"".join(out)


T0 = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)


def _alerts(db: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT rule, key, severity, count, action FROM alerts ORDER BY ALL").fetchall()
    finally:
        con.close()


def test_a_flood_with_hostile_bytes_alerts_as_the_clean_flood(tmp_path: Path, cli: Callable[..., Run]) -> None:
    got = {}
    for dirty in (False, True):
        folder = tmp_path / ("dirty" if dirty else "clean")
        folder.mkdir()
        log = folder / "sipproxy.log"
        log.write_bytes(flood(T0, "192.0.2.7", dirty))
        db = folder / "store.duckdb"
        run = cli("--db", db, "ingest", "--format", "vos3000-sipproxy", "--detect", "--json", log)
        assert run.code == 0, run.err
        summary = json.loads(run.out)["files"][0]
        assert (summary["parsed"], summary["rejected"], summary["repaired"]) == (150, 0, 150 if dirty else 0)
        con = duckdb.connect(str(db), read_only=True)
        try:
            rows = con.execute("SELECT src_ip, username, call_id, user_agent, repaired FROM sip_events "
                               "ORDER BY line_no").fetchall()
        finally:
            con.close()
        assert len(rows) == 150 and {r[0] for r in rows} == {"192.0.2.7"}
        assert all(r[4] is dirty for r in rows)
        if dirty:
            assert rows[0][1:4] == ("u0\ufffd", "c0\ufffd@x", "friendly-scanner \ufffd")
            assert rows[2][1] == "u2\ufffd"  # the NUL
        got[dirty] = _alerts(db)
    assert got[False] and ("register-flood-ip", "192.0.2.7", "critical") in {a[:3] for a in got[False]}
    assert got[True] == got[False]


def test_the_sentry_decides_on_a_flood_with_hostile_bytes_as_on_the_clean_one(tmp_path: Path) -> None:
    rules = list(load_rules([]).rules.values())
    decided = {}
    for dirty in (False, True):
        log = tmp_path / f"sipproxy-{dirty}.log"
        log.touch()
        early = EarlyBans(rules, Context(shipped_rules_dir() / "lists"), [])
        tail = LogTail([SourceConfig(log, "vos3000-sipproxy")], load_formats(), IngestConfig(),
                       {"sip_events": early.columns("sip_events")})
        tail.poll()
        with log.open("ab") as f:
            f.write(flood(T0, "192.0.2.7", dirty))
        decisions = [d for table, rows in tail.poll().items() for d in early.process(table, rows)]
        decided[dirty] = sorted((d.rule, d.key, d.action) for d in decisions)
    assert ("register-flood-ip", "192.0.2.7", "ban_ip") in decided[False]
    assert decided[True] == decided[False]


def _watch_flood(folder: Path, dirty: bool) -> tuple[Any, Any]:
    """A real watcher (dry-run firewall, early bans on) reads the flood as it is appended: its alerts and bans."""
    folder.mkdir()
    log = folder / "sipproxy.log"
    log.touch()
    config = write_config(folder, [("sipproxy.log", "vos3000-sipproxy")], "warmup_seconds = 0\n")
    w = WatcherProcess(config, folder / "store.duckdb").start()
    try:
        start = dt.datetime.now(dt.UTC).replace(microsecond=0)
        with log.open("ab") as f:
            f.write(flood(start, "192.0.2.7", dirty))
        assert wait_until(lambda: w.count("SELECT count(*) FROM sip_events") == 150, 60), w.log.read_text()
        assert wait_until(lambda: w.count(
            "SELECT count(*) FROM alerts WHERE rule = 'register-flood-ip' AND severity = 'critical'") == 1, 30)
        assert wait_until(lambda: w.count("SELECT count(*) FROM bans WHERE network = '192.0.2.7'") >= 1, 30)
        assert w.count("SELECT count(*) FROM sip_events WHERE repaired") == (150 if dirty else 0)
        assert w.count("SELECT count(*) FROM rejects") == 0
        alerts = w.call("query", {"sql": "SELECT rule, key, severity, action FROM alerts ORDER BY ALL"})
        bans = w.call("query", {"sql": "SELECT DISTINCT network, rule FROM bans ORDER BY ALL"})
        assert alerts is not None and bans is not None
        return alerts["rows"], bans["rows"]
    finally:
        assert w.stop() == 0
        w.close()


def test_a_watcher_bans_a_flood_with_hostile_bytes_as_the_clean_one(tmp_path: Path) -> None:
    clean = _watch_flood(tmp_path / "clean", False)
    assert [ban[0] for ban in clean[1]] == ["192.0.2.7"]
    assert _watch_flood(tmp_path / "dirty", True) == clean
