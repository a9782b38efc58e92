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
