"""The watcher's warm-up: the recent past fed to the rules, the newest rows in order, in batches."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest

from fraudwatch.detect.runners.engine import Engine
from fraudwatch.detect.types.base import RuleType
from fraudwatch.formats.registry import Format
from fraudwatch.ingest import Ingestor
from fraudwatch.store.db import Store
from fraudwatch.watch import warmup


class _Recorder:
    """What `replay_recent` needs of an engine, keeping the frames it is fed."""

    def __init__(self) -> None:
        self.detectors: dict[str, list[Any]] = {"sip_events": [object()], "netfilter_events": [], "cdrs": []}
        self.frames: list[pl.DataFrame] = []

    def columns(self, source: str) -> list[str]:
        return ["id", "ts", "src_ip"]

    def process(self, source: str, events: pl.DataFrame, threads: int = 1) -> list[Any]:
        self.frames.append(events)
        return []


def _line(i: int) -> str:
    """A REGISTER at one of 5 instants (many rows share each), from its own address."""
    return (f"2026-11-01 00:00:0{i % 5}.000 [INFO] RECV REGISTER from 198.51.100.{i + 1}:5060 user=\"u{i}\" "
            f"callid=\"w-{i}@test\" ua=\"Fanvil X4U\"\n")


@pytest.mark.parametrize("max_rows", [12, 30, 100])
def test_the_newest_rows_are_fed_in_order_in_batches(tmp_path: Path, formats: dict[str, Format],
                                                     monkeypatch: pytest.MonkeyPatch, max_rows: int) -> None:
    log = tmp_path / "sipproxy.log"
    log.write_text("".join(_line(i) for i in range(50)), encoding="utf-8")
    monkeypatch.setattr(warmup, "WARMUP_BATCH", 7)
    rules = [cast(RuleType, SimpleNamespace(common=SimpleNamespace(window=3600.0)))]
    with Store(tmp_path / "s.duckdb") as store:
        Ingestor(store, formats).ingest(log, "vos3000-sipproxy")
        every = store.con.sql("SELECT id, ts, src_ip FROM sip_events ORDER BY ts, id").pl()
        engine = _Recorder()
        fed = warmup.replay_recent(store.con, cast(Engine, engine), rules, dt.timedelta(hours=1), max_rows)
    assert fed == min(max_rows, every.height)
    assert max(f.height for f in engine.frames) <= 7
    # the newest `max_rows` (ties at the oldest instant broken by id), as the rules would have seen them live
    assert pl.concat(engine.frames).equals(every.tail(max_rows))


def _cdr_rows(start_ms: int, account: str, ip: str, first: int, n: int, every_ms: int) -> list[str]:
    return [f"{first + i},{start_ms + i * every_ms},{start_ms + i * every_ms + 60_000},60,0.25,{account},"
            f"441212345{i % 10:03d},{ip}\n" for i in range(n)]


def test_a_restarted_watcher_knows_the_accounts_addresses_from_the_store(tmp_path: Path,
                                                                           formats: dict[str, Format]) -> None:
    """Issue 23: the new-address rules learn from whatever history the store holds, not blind again for a day
    after a restart: a stored day and a half of an account's calls from its office teach them, so the first call
    from elsewhere after the restart alerts, and a call from the office does not."""
    from fraudwatch.detect.base import Context
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.rulesdir import shipped_rules_dir
    from tests.detect.frames import events

    start = 1_762_000_000_000  # 2025-11-01 12:26 UTC
    cdr = tmp_path / "e_cdr_history.csv"
    cdr.write_text("flowno,starttime,stoptime,holdtime,fee,customeraccount,calleee164,callerip\n"
                   + "".join(_cdr_rows(start, "10001", "198.51.100.7", 1, 20, 2 * 3_600_000)), encoding="utf-8")
    rules = [r for r in load_rules().rules.values() if r.common.id == "account-cdr-new-address"]
    after = dt.datetime.fromtimestamp((start + 40 * 3_600_000) / 1000, dt.UTC)
    fresh = events("cdrs", [{"t": 0, "customer_account": "10001", "caller_ip": "192.0.2.7", "hold_seconds": 60},
                            {"t": 1, "customer_account": "10001", "caller_ip": "198.51.100.7", "hold_seconds": 60}])
    fresh = fresh.with_columns(pl.col("stop_time") - pl.col("stop_time").min() + after,
                               pl.col("start_time") - pl.col("stop_time").min() + after)
    found = {}
    with Store(tmp_path / "s.duckdb") as store:
        Ingestor(store, formats).ingest(cdr, "vos3000-cdr")
        for learn in (False, True):
            engine = Engine(rules, Context(shipped_rules_dir() / "lists"), stream=True)
            learned = warmup.learn_terms(store.con, engine) if learn else 0
            found[learn] = (learned, [(m.rule, m.evidence["new_terms"]) for m in engine.process("cdrs", fresh)])
    assert found[False] == (0, [])  # without the history, the account is new: its first day is learned silently
    assert found[True] == (20, [("account-cdr-new-address", [["192.0.2.7"]])])
