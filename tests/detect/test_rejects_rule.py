"""Issue 22: a source whose reject rate jumps is itself an alert (rules/input.yaml, rejects-spike-source). An
attacker who turns a flood's lines into rejects is seen: by `ingest --detect` as the lines are stored, by a replay
(`fraudwatch detect`) the same, and a log with its usual chatter is quiet."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from tests.conftest import Run

T0 = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)


def _line(t: dt.datetime, i: int) -> str:
    return (f"{t:%Y-%m-%d %H:%M:%S}.000 [INFO] RECV REGISTER from 198.51.100.{i % 200 + 1}:5060 user=\"{1000 + i}\" "
            f'callid="c{i}" ua="Fanvil X4U"\n')


def _log(path: Path, flood: bool) -> None:
    """An hour of phones registering (one line every 10 s) with a line of chatter no pattern takes every 5 min;
    with `flood`, 150 lines no pattern takes within 30 s at the end (what an attacker's text can make of a
    flood's lines)."""
    out = []
    for i in range(360):
        t = T0 + dt.timedelta(seconds=10 * i)
        out.append(_line(t, i))
        if i % 30 == 0:
            out.append(f"{t:%Y-%m-%d %H:%M:%S}.000 [INFO] something the patterns do not know\n")
    if flood:
        for i in range(150):
            t = T0 + dt.timedelta(hours=1, seconds=i * 0.2)
            out.append(f"{t:%Y-%m-%d %H:%M:%S}.000 [INFO] RECV REGISTER from 192.0.2.7:5060 user=\"{i}\" "
                       f'callid="x{i}" ua="\' OR 1=1"junk\n')
    path.write_text("".join(out), encoding="utf-8")


def _alerts(db: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT rule, key_type, key, severity, count FROM alerts "
                           "WHERE rule = 'rejects-spike-source'").fetchall()
    finally:
        con.close()


def test_a_jump_of_a_sources_rejects_alerts_live_and_in_replay(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "sipproxy.log"
    _log(log, flood=True)
    db = tmp_path / "store.duckdb"
    run = cli("--db", db, "ingest", "--format", "vos3000-sipproxy", "--detect", "--json", log)
    assert run.code == 0, run.err
    out = json.loads(run.out)
    assert out["files"][0]["rejected"] == 12 + 150
    assert out["detection"] == "alongside the ingest"  # scored as the rows were stored
    live = _alerts(db)
    assert [a[:4] for a in live] == [("rejects-spike-source", "key", str(log), "critical")]
    con = duckdb.connect(str(db), read_only=True)
    try:  # the flood's rejects carry the time of the last line before them that had one
        assert con.execute("SELECT DISTINCT ts FROM rejects WHERE raw LIKE '%192.0.2.7%'").fetchall() == \
            [(T0 + dt.timedelta(seconds=3590),)]
    finally:
        con.close()
    replayed = cli("--db", db, "detect", "--json")
    assert replayed.code == 0, replayed.err
    assert [a[:4] for a in _alerts(db)] == [a[:4] for a in live]


def test_a_log_with_its_usual_rejects_is_quiet(tmp_path: Path, cli: Callable[..., Run]) -> None:
    log = tmp_path / "sipproxy.log"
    _log(log, flood=False)
    db = tmp_path / "store.duckdb"
    run = cli("--db", db, "ingest", "--format", "vos3000-sipproxy", "--detect", log)
    assert run.code == 0, run.err
    assert _alerts(db) == []
