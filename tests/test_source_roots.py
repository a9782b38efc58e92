"""Issue 22: sources stay inside their root. A link inside a CDR folder pointing at /etc/passwd (or any file
outside the folder) is refused with a log line, by `ingest` and by the watcher, and never read; a link that stays
inside the folder, and a file the configuration names itself, are read."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from fraudwatch.config import SourceConfig
from fraudwatch.watch.files import files_of
from tests.conftest import Run

CDR = ("flowno,starttime,stoptime,calleee164,callerip,fee,customeraccount\n"
       "1,1763607600000,1763607662000,0044,198.51.100.7,0.5,10001\n")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    cdr = tmp_path / "cdr"
    (cdr / "sub").mkdir(parents=True)
    (cdr / "e_cdr_1.csv").write_text(CDR, encoding="utf-8")
    (cdr / "passwd.csv").symlink_to("/etc/passwd")
    secret = tmp_path / "secret.csv"
    secret.write_text(CDR.replace("10001", "99999"), encoding="utf-8")
    (cdr / "sub" / "e_cdr_2.csv").symlink_to(secret)
    (cdr / "again.csv").symlink_to(cdr / "e_cdr_1.csv")  # inside: read (the same content, so stored once)
    return cdr


def test_ingest_refuses_files_a_folder_or_glob_finds_outside_it(folder: Path, tmp_path: Path,
                                                                cli: Callable[..., Run],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "store.duckdb"
    with caplog.at_level(logging.WARNING, "fraudwatch.sources"):
        run = cli("--db", db, "ingest", "--json", folder, str(folder / "*.csv"))
    assert run.code == 0, run.err
    read = sorted({Path(f["path"]).name for f in json.loads(run.out)["files"]})
    assert read == ["again.csv", "e_cdr_1.csv"]
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refusing")]
    assert any("passwd.csv" in m and "/etc/passwd" in m for m in refused)
    assert any("e_cdr_2.csv" in m and "secret.csv" in m for m in refused)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM rejects WHERE source LIKE '%passwd%'").fetchall() == [(0,)]
        assert con.execute("SELECT DISTINCT customer_account FROM cdrs").fetchall() == [("10001",)]
    finally:
        con.close()


def test_the_watcher_lists_only_files_inside_a_source_folder_or_glob(folder: Path) -> None:
    assert [p.name for p in files_of(SourceConfig(folder, "vos3000-cdr"))] == ["again.csv", "e_cdr_1.csv"]
    assert [p.name for p in files_of(SourceConfig(folder / "*.csv", "vos3000-cdr"))] == ["again.csv",
                                                                                          "e_cdr_1.csv"]
    named = folder / "passwd.csv"  # named by the operator: their choice
    assert files_of(SourceConfig(named, "vos3000-cdr")) == [named.absolute()]
