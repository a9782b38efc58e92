"""Replaying a range again (`fraudwatch detect`) keeps the ids of the alerts it finds again, so `alerts show N`
in a message already sent, and the bans that name an alert, stay right (issue 23); incidents keep theirs too."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import duckdb

from fraudwatch.cli import main
from tests.conftest import Run
from tests.test_ingest_sample import copy_sample


def _snapshot(store: Path, table: str, query: str) -> set[tuple[object, ...]]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                           [table]).fetchall()[0][0]:
            return set()
        return set(con.execute(query).fetchall())
    finally:
        con.close()


def test_a_second_replay_keeps_alert_and_incident_ids(tmp_path: Path, cli: Callable[..., Run]) -> None:
    folder = copy_sample(tmp_path)
    config = folder / "fraudwatch.toml"
    store = folder / "fraudwatch.duckdb"
    assert main(["--config", str(config), "ingest", "--quiet", "--json"]) == 0
    first = cli("--config", config, "detect", "--json")
    assert first.code == 0, first.err
    alerts = _snapshot(store, "alerts", "SELECT rule, key, detected_at, id FROM alerts")
    incidents = _snapshot(store, "incidents", "SELECT id, opened_at FROM incidents")
    assert len(alerts) >= 100
    again = cli("--config", config, "detect", "--json")
    assert again.code == 0, again.err
    assert _snapshot(store, "alerts", "SELECT rule, key, detected_at, id FROM alerts") == alerts
    assert {a["id"] for a in json.loads(again.out)["alerts"]} == {row[3] for row in alerts}
    assert _snapshot(store, "incidents", "SELECT id, opened_at FROM incidents") == incidents
