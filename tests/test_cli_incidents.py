"""`fraudwatch incidents list|show` on a real store (the committed sample, ingested with detection), the
`incidents` table's migration, and read commands that never create a store."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from fraudwatch.cli import main
from fraudwatch.store.db import Store
from fraudwatch.store.schema import SCHEMA_VERSION
from tests.conftest import Run
from tests.test_ingest_sample import copy_sample


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = copy_sample(tmp_path_factory.mktemp("incidents-cli"))
    assert main(["--config", str(folder / "fraudwatch.toml"), "ingest", "--detect", "--quiet", "--json"]) == 0
    return folder / "fraudwatch.toml"


def _labelled(config: Path, kind: str, column: str) -> str:
    """The `column` (ips, accounts) of the sample's first labelled attack of `kind`."""
    with (config.parent / "labels.csv").open(newline="") as f:
        return next(row[column] for row in csv.DictReader(f) if row["kind"] == kind)


def test_list_is_newest_first_and_filters_by_ip_account_and_key(config: Path, cli: Callable[..., Run]) -> None:
    run = cli("--config", config, "incidents", "list", "--json")
    assert run.code == 0, run.err
    rows = json.loads(run.out)
    assert len(rows) >= 13
    opened = [r["opened_at"] for r in rows]
    assert opened == sorted(opened, reverse=True)
    flooder = _labelled(config, "register_flood_single", "ips")
    by_ip = json.loads(cli("--config", config, "incidents", "list", "--ip", flooder, "--json").out)
    assert by_ip and all(flooder in r["ips"] for r in by_ip)
    breached = _labelled(config, "credit_limit_breach", "accounts")
    by_account = json.loads(cli("--config", config, "incidents", "list", "--account", breached, "--json").out)
    assert [r["kind"] for r in by_account] == ["fraud"]
    by_key = json.loads(cli("--config", config, "incidents", "list", "--key", flooder, "--json").out)
    assert len(by_key) == 1 and f"ip:{flooder}" in by_key[0]["keys"]


def test_a_filter_that_hides_everything_says_so(config: Path, cli: Callable[..., Run]) -> None:
    run = cli("--config", config, "incidents", "list", "--ip", "192.0.2.254")
    assert run.code == 0
    assert "no incident matches --ip 192.0.2.254" in run.out and "the store holds" in run.out
    bad = cli("--config", config, "incidents", "list", "--ip", "not-an-ip")
    assert bad.code != 0 and "not an IP address" in bad.err and len(bad.err.strip().splitlines()) == 1


def test_show_has_members_timeline_evidence_bans_and_state(config: Path, cli: Callable[..., Run]) -> None:
    flooder = _labelled(config, "register_flood_single", "ips")
    (row,) = json.loads(cli("--config", config, "incidents", "list", "--key", flooder, "--json").out)
    run = cli("--config", config, "incidents", "show", row["id"][:12])  # a unique start is enough
    assert run.code == 0, run.err
    shown = json.loads(cli("--config", config, "incidents", "show", row["id"], "--json").out)
    for part in ("timeline:", "evidence:", "actions taken", flooder, shown["alerts"][0]["rule"], "ended at"):
        assert part in run.out, part
    assert len(shown["alerts"]) == row["members"] and shown["state"] == "ended"
    missing = cli("--config", config, "incidents", "show", "19990101-00000000")
    assert missing.code != 0 and "no incident" in missing.err


def test_list_beside_labels_says_how_many_attacks_are_in_one_incident(config: Path, cli: Callable[..., Run]) -> None:
    labels = config.parent / "labels.csv"
    run = cli("--config", config, "incidents", "list", "--labels", labels, "--json")
    report = json.loads(run.out)
    with labels.open(newline="") as f:
        assert report["in_exactly_one"] == len(report["labels"]) == len(list(csv.DictReader(f)))
    not_labels = cli("--config", config, "incidents", "list", "--labels", config)
    assert not_labels.code != 0 and "not a labels.csv" in not_labels.err


def test_reading_incidents_never_creates_a_store(tmp_path: Path, cli: Callable[..., Run]) -> None:
    db = tmp_path / "none.duckdb"
    run = cli("--db", db, "incidents", "list")
    assert run.code != 0 and "no store here" in run.err
    assert not db.exists()


def test_an_older_store_gets_the_incidents_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(path):
        pass
    con = duckdb.connect(str(path))  # as a schema-7 store was: no incidents tables, version 7
    con.execute("DROP TABLE incidents")
    con.execute("DROP TABLE incident_alerts")
    con.execute("DELETE FROM schema_version WHERE version = 8")
    con.close()
    with Store(path) as store:
        assert store.con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert store.con.execute("SELECT count(*) FROM incidents").fetchall() == [(0,)]
        assert store.con.execute("SELECT count(*) FROM incident_alerts").fetchall() == [(0,)]


def test_show_says_what_is_still_going_on(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    assert main(["--config", str(config), "ingest", "--quiet", "--json"]) == 0
    # replayed up to the middle of the labelled single-address flood: it is still going on
    start, end = (dt.datetime.fromisoformat(_labelled(config, "register_flood_single", c)) for c in ("start", "end"))
    flooder = _labelled(config, "register_flood_single", "ips")
    run = cli("--config", config, "detect", "--since", (start - dt.timedelta(minutes=20)).isoformat(),
              "--until", (start + (end - start) / 2).isoformat())
    assert run.code == 0, run.err
    (row,) = json.loads(cli("--config", config, "incidents", "list", "--ip", flooder, "--json").out)
    assert row["state"] == "open"
    shown = cli("--config", config, "incidents", "show", row["id"])
    assert "still going on" in shown.out and f"on ip {flooder}" in shown.out
    assert json.loads(cli("--config", config, "incidents", "list", "--state", "ended", "--json").out) == []


def test_list_fits_80_columns_and_never_cuts_an_id_or_address(config: Path, cli: Callable[..., Run],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    rows = json.loads(cli("--config", config, "incidents", "list", "--json").out)
    shown = cli("--config", config, "incidents", "list").out
    lines = shown.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80, shown
    for r in rows:
        assert r["id"] in shown
        for ip in r["ips"][:1] if len(r["ips"]) == 1 else ():
            assert any(ip in line for line in lines), ip
