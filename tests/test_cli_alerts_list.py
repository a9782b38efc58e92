"""`fraudwatch alerts list`: newest first, --ip / --account / --key (composite keys and evidence that names the
value), and a hint when a filter hides everything. On a real store, through the real command."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudwatch.store.db import Store
from tests.conftest import Run

T0 = dt.datetime(2026, 11, 2, 16, 0, tzinfo=dt.UTC)


def _alert(alert_id: int, rule: str, key_type: str, key: str, minutes: int, evidence: dict[str, object]) -> dict[
        str, object]:
    at = T0 + dt.timedelta(minutes=minutes)
    return {"id": alert_id, "rule": rule, "severity": "warning", "key_type": key_type, "key": key,
            "first_seen": at, "last_seen": at, "detected_at": at, "count": 5, "value": 5.0, "action": "alert",
            "trusted": False, "report_only": False, "description": rule, "evidence": json.dumps(evidence),
            "updates": 0, "origin": "replay", "updated_at": at}


ALERTS = [
    # ids are not in time order: a replay numbers alerts by rule, not by when they were detected
    _alert(1, "scanner-user-agent", "ip", "192.0.2.10", 12, {"ids": [1]}),
    _alert(2, "account-new-address", "account", "10023", 30, {"new_terms": [["192.0.2.1"]], "known_terms": 1}),
    _alert(3, "credential-stuffing-ip", "ip", "2001:db8::1", 5, {"username": ["10023", "10024"]}),
    _alert(4, "register-user-ip", "ip", "192.0.2.1|1001", 20, {"ids": [9]}),
    _alert(5, "auth-failures-ip", "ip", "192.0.2.1", 1, {"ids": [2, 3]}),
    _alert(6, "premium-spike", "global", "*", 40, {"callee_country": "XX"}),
]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "s.duckdb"
    with Store(db) as st:
        for row in ALERTS:
            st.con.execute(f"INSERT INTO alerts ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           list(row.values()))
    return db


def _ids(cli: Callable[..., Run], db: Path, *argv: str) -> list[int]:
    run = cli("--db", db, "alerts", "list", "--json", *argv)
    assert run.code == 0, run.err
    return [a["id"] for a in json.loads(run.out)]


def test_newest_first(store: Path, cli: Callable[..., Run]) -> None:
    assert _ids(cli, store) == [6, 2, 4, 1, 3, 5]
    assert _ids(cli, store, "--limit", "2") == [6, 2]  # the newest, not the oldest
    table = cli("--db", store, "alerts", "list").out
    assert table.index("premium-spike") < table.index("auth-failures-ip")


def test_filters_by_ip_account_and_key(store: Path, cli: Callable[..., Run]) -> None:
    # the key itself, a composite key's part, the evidence of an account alert; not 192.0.2.10
    assert _ids(cli, store, "--ip", "192.0.2.1") == [2, 4, 5]
    assert _ids(cli, store, "--ip", "2001:DB8:0::0001") == [3]  # any spelling of the address
    # the account's own alert, and the address alert whose evidence lists it among the accounts it tried
    assert _ids(cli, store, "--account", "10023") == [2, 3]
    assert _ids(cli, store, "--key", "1001") == [4]
    assert _ids(cli, store, "--key", "192.0.2.1") == [4, 5]  # key only: not the evidence
    assert _ids(cli, store, "--ip", "192.0.2.1", "--rule", "auth-failures-ip") == [5]


def test_a_filter_that_hides_everything_says_what_there_is(store: Path, cli: Callable[..., Run]) -> None:
    run = cli("--db", store, "alerts", "list", "--ip", "198.51.100.9")
    assert run.code == 0
    assert run.out.strip() == ("no alerts match --ip 198.51.100.9; 6 alerts in the store, newest detected "
                               "2026-11-02 16:40:00 UTC")
    assert json.loads(cli("--db", store, "alerts", "list", "--json", "--account", "nobody").out) == []


def test_an_empty_store_and_a_bad_address(tmp_path: Path, store: Path, cli: Callable[..., Run]) -> None:
    empty = tmp_path / "empty.duckdb"
    Store(empty).close()
    assert cli("--db", empty, "alerts", "list").out.strip() == "no alerts in the store yet"
    bad = cli("--db", store, "alerts", "list", "--ip", "192.0.2.1' OR 1=1 --")
    assert bad.code == 2 and bad.err.strip() == "fraudwatch: --ip '192.0.2.1' OR 1=1 --' is not an IP address"
    quoted = cli("--db", store, "alerts", "list", "--json", "--account", "x' OR '1'='1")
    assert quoted.code == 0 and json.loads(quoted.out) == []  # a value, never SQL
