"""Issue 22: a file whose reads fail again and again is parked, not retried forever: after PARK_AFTER failed
reads in a row the watcher stops reading it (until another file takes its name), logs it once, and
`fraudwatch status` shows it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudwatch.watch.reading import PARK_AFTER
from tests.conftest import Run
from tests.watch.harness import WatcherProcess, cdr_row, wait_until, write_config

LONG_HEADER = "flowno,starttime,stoptime," + ",".join(f"extra{i}" for i in range(400)) + "\n"


def _entry(w: WatcherProcess) -> dict[str, Any]:
    got = w.call("status") or {}
    files = ((got.get("status") or {}).get("files")) or []
    return files[0] if files else {}


def test_a_file_failing_again_and_again_is_parked_and_shown(tmp_path: Path, cli: Callable[..., Run]) -> None:
    (tmp_path / "cdr").mkdir()
    cdr = tmp_path / "cdr" / "e_cdr_20261101.csv"
    cdr.write_text(LONG_HEADER, encoding="utf-8")
    config = write_config(tmp_path, [("cdr", "vos3000-cdr")], "warmup_seconds = 0\n[ingest]\nmax_line_bytes = 1024\n")
    w = WatcherProcess(config, tmp_path / "store.duckdb").start()
    try:
        reads = []
        for n in range(PARK_AFTER):
            assert wait_until(lambda: "header line longer than 1024 bytes" in str(_entry(w).get("error"))
                              and _entry(w).get("last_read") not in reads, 30), w.log.read_text()
            reads.append(_entry(w)["last_read"])
            assert (_entry(w).get("parked") is None) == (n < PARK_AFTER - 1)
            with cdr.open("a", encoding="utf-8") as f:  # it changes: the watcher reads it again
                f.write(cdr_row(n + 1))
        assert wait_until(lambda: _entry(w).get("parked") is not None, 10)
        time.sleep(3)  # settle_seconds is 1: it would have been read again by now
        assert _entry(w)["last_read"] == reads[-1]
        assert w.log.read_text().count("parked ") == 1
        human = cli("--config", config, "status")
        assert human.code == 0 and "parked" in human.out and "header line longer" in human.out
        # another file under the name is read again
        cdr.unlink()
        cdr.write_text("flowno,starttime,stoptime,holdtime,feetime,fee,customeraccount,customername,callere164,"
                       "calleee164,callerip,calleeip\n" + cdr_row(7), encoding="utf-8")
        assert wait_until(lambda: w.count("SELECT count(*) FROM cdrs") == 1, 30), w.log.read_text()
        assert _entry(w).get("parked") is None
    finally:
        assert w.stop() == 0
        w.close()
