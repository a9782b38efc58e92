"""The committed simulator sample ingests completely: per file, parsed + ignored + rejected == lines, almost
nothing rejected, and a second ingest changes no count. Uses the sample's own fraudwatch.toml."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.conftest import ROOT, Run

SAMPLE = ROOT / "data-samples" / "vos3000-3d"
TABLES = ("sip_events", "netfilter_events", "cdrs", "customers", "rejects", "positions")


def copy_sample(tmp_path: Path) -> Path:
    folder = tmp_path / "sample"
    shutil.copytree(SAMPLE, folder)
    # kern.log stamps carry no year: it is taken from the file's mtime, which a git checkout resets.
    with (folder / "labels.csv").open(encoding="utf-8") as f:
        last = max(dt.datetime.fromisoformat(row["end"]) for row in csv.DictReader(f))
    os.utime(folder / "kern.log", (last.timestamp(), last.timestamp()))
    return folder


def counts(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in TABLES}
    finally:
        con.close()


def test_sample_ingests_completely_and_idempotently(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    run = cli("--config", config, "ingest", "--json")
    assert run.code == 0, run.err
    files = json.loads(run.out)["files"]
    names = {Path(f["path"]).relative_to(folder).as_posix() for f in files}
    assert {"sipproxy.log", "mbx.log", "kern.log", "customers.csv"} <= names
    assert sum(1 for n in names if n.startswith("cdr/")) == 3
    for f in files:
        assert f["error"] is None, f
        assert f["parsed"] + f["ignored"] + f["rejected"] == f["lines"], f
        assert f["rejected"] <= f["lines"] * 0.001, f
        assert f["parsed"] > 0, f
    before = counts(folder / "fraudwatch.duckdb")
    assert before["rejects"] == sum(f["rejected"] for f in files)

    again = cli("--config", config, "ingest", "--json")
    assert again.code == 0, again.err
    assert all(f["lines"] == 0 and f["parsed"] == 0 for f in json.loads(again.out)["files"])
    assert counts(folder / "fraudwatch.duckdb") == before


def test_sample_lines_match_the_stored_rows(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """Spot-check content: every labelled attacker IP is in the store, CDRs carry the simulated money."""
    folder = copy_sample(tmp_path)
    assert cli("--config", folder / "fraudwatch.toml", "ingest").code == 0
    con = duckdb.connect(str(folder / "fraudwatch.duckdb"), read_only=True)
    with (folder / "labels.csv").open(encoding="utf-8") as f:
        labels = list(csv.DictReader(f))
    for row in labels:
        for ip in filter(None, row["ips"].split(";")):
            n = con.execute("SELECT (SELECT count(*) FROM sip_events WHERE src_ip = ?) + "
                            "(SELECT count(*) FROM netfilter_events WHERE src_ip = ?) + "
                            "(SELECT count(*) FROM cdrs WHERE caller_ip = ?)", [ip, ip, ip]).fetchall()[0][0]
            assert n > 0, f"{row['incident_id']}: {ip} not in the store"
    cdr_rows = sum(1 for p in (folder / "cdr").glob("*.csv") for _ in p.open(encoding="utf-8")) - 3
    assert con.execute("SELECT count(*) FROM cdrs").fetchall()[0][0] == cdr_rows
    kern_min, kern_max = con.execute("SELECT min(ts), max(ts) FROM netfilter_events").fetchall()[0]
    assert kern_min.year == kern_max.year == 2026
    con.close()


def test_small_batches_store_what_big_ones_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ingest parses batches of up to SMALL_PARSE lines in Python (LineParser.parse_batch_small) and bigger ones in
    DuckDB: the first hours of the sample day, with hostile lines added, read in 16 KB chunks (the small path) store
    the same rows and rejects as read by DuckDB alone."""
    import fraudwatch.ingest.files as ingest_module
    from fraudwatch.config import IngestConfig
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.ingest import Ingestor
    from fraudwatch.store.db import Store

    folder = copy_sample(tmp_path)
    hostile = ("not a line of this format\n", "2026-11-20 03:14:07.123 [INFO] SEND 403 Forbidden to 999.1.2.3:5060 "
               'method=REGISTER callid="z"\n', "\x00\xff binary\n")
    logs = []
    for log in sorted(p for p in folder.iterdir() if p.suffix == ".log"):
        head = log.read_bytes().splitlines(keepends=True)[:3000]
        part = tmp_path / log.name
        part.write_bytes(b"".join(head[:1500]) + "".join(hostile).encode("utf-8", "surrogateescape") +
                         b"".join(head[1500:]))
        os.utime(part, (log.stat().st_mtime, log.stat().st_mtime))
        logs.append(part)
    assert len(logs) >= 3

    def tables(db: Path) -> dict[str, list[tuple[object, ...]]]:
        store = Store(db)
        ingestor = Ingestor(store, load_formats(), IngestConfig(chunk_bytes=16384))
        for log in logs:
            assert ingestor.ingest(log).error is None
        out = {t: store.con.execute(f"SELECT * EXCLUDE (id) FROM {t} ORDER BY source, byte_offset").fetchall()
               for t in ("sip_events", "netfilter_events")}
        out["rejects"] = store.con.execute("SELECT * EXCLUDE (id, ingested_at) FROM rejects "
                                           "ORDER BY source, byte_offset").fetchall()
        store.close()
        return out

    small = tables(tmp_path / "small.duckdb")
    monkeypatch.setattr(ingest_module, "SMALL_PARSE", 0)
    duck = tables(tmp_path / "duck.duckdb")
    assert len(duck["sip_events"]) > 3000 and duck["netfilter_events"]
    assert len(duck["rejects"]) >= 3 * len(logs) - 1
    for name in duck:
        assert small[name] == duck[name], name
