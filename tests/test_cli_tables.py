"""Tables for people at 80 columns (no address or rule id cut over two lines), and times in the operator's zone
with the zone shown (`[display] timezone`, FRAUDWATCH_DISPLAY_TIMEZONE, `--display-timezone`)."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fraudwatch.store.db import Store
from tests.conftest import Run

LONG_RULE = "registration-offline-baseline"  # the longest shipped rule id
IPV6 = "2001:db8:bad:3662::257f"
WINTER = dt.datetime(2026, 11, 2, 16, 12, 44, tzinfo=dt.UTC)
SUMMER = dt.datetime(2026, 7, 1, 9, 30, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _utc_afterwards() -> Iterator[None]:
    """These tests change the display zone of this process: leave it as every other test expects it."""
    yield
    from fraudwatch.cli import output

    if hasattr(output, "use_zone"):  # (so that this file runs, and fails as it should, on code without zones)
        output.use_zone("UTC")


def _insert(db: Path, rows: list[tuple[int, str, str, str, dt.datetime, str]]) -> None:
    with Store(db) as st:
        for alert_id, rule, key_type, key, at, action in rows:
            st.con.execute("INSERT INTO alerts (id, rule, severity, key_type, key, first_seen, last_seen, detected_at, "
                           "count, action, trusted, report_only, evidence) VALUES (?, ?, 'critical', ?, ?, ?, ?, ?, "
                           "12345, ?, false, true, '{}')", [alert_id, rule, key_type, key, at, at, at, action])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db = tmp_path / "s.duckdb"
    _insert(db, [(1, LONG_RULE, "ip", IPV6, WINTER, "ban_ip"),
                 (2, "credential-stuffing-ip", "ip", "198.51.100.254|4412273539361", SUMMER, "lock_account"),
                 (3, "wangiri-short-calls-account", "account", "441227353936", WINTER, "lock_account")])
    return db


def _fits(output: str, width: int = 80) -> list[str]:
    lines = output.splitlines()
    assert lines and max(len(line) for line in lines) <= width, "\n".join(lines)
    return lines


def test_the_alert_list_fits_80_columns_without_cutting_an_address_or_a_rule(
        store: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = cli("--db", store, "alerts", "list")
    assert run.code == 0, run.err
    lines = _fits(run.out)
    for whole in (LONG_RULE, IPV6, "198.51.100.254|4412273539361", "wangiri-short-calls-account", "12,345"):
        assert any(whole in line for line in lines), (whole, run.out)
    assert "report-only" in run.out


def test_sql_and_summary_fit_80_columns(store: Path, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    query = (f"SELECT '{IPV6}' AS src_ip, '{LONG_RULE}' AS rule, 412 AS n, repeat('a reason in words ', 8) "
             "AS reason, TIMESTAMPTZ '2026-11-02 16:12:44+00' AS ts")
    run = cli("--db", store, "sql", query)
    assert run.code == 0, run.err
    lines = _fits(run.out)
    assert lines[0].split() == ["src_ip", "rule", "n", "reason", "ts"]  # every column, none squeezed out
    assert any(IPV6 in line and LONG_RULE in line and "412" in line for line in lines), run.out
    assert _fits(cli("--db", store, "summary").out)


def test_times_in_the_configured_zone_with_the_zone_shown(tmp_path: Path, store: Path,
                                                          cli: Callable[..., Run]) -> None:
    conf = tmp_path / "fraudwatch.toml"
    conf.write_text(f'[store]\npath = "{store.name}"\n\n[display]\ntimezone = "Europe/London"\n', encoding="utf-8")
    shown = cli("--config", conf, "alerts", "show", "1").out
    assert "2026-11-02 16:12:44 GMT" in shown  # winter: GMT
    summer = cli("--config", conf, "alerts", "show", "2").out
    assert "2026-07-01 10:30:00 BST" in summer  # summer time: an hour ahead of UTC
    listed = cli("--config", conf, "alerts", "list").out
    assert "16:12:44 GMT" in listed and "10:30:00 BST" in listed and " UTC" not in listed
    as_json = json.loads(cli("--config", conf, "alerts", "list", "--json").out)
    assert {a["detected_at"] for a in as_json} == {WINTER.isoformat(), SUMMER.isoformat()}  # scripts: UTC


def test_the_option_and_the_environment_override_the_config(tmp_path: Path, store: Path, cli: Callable[..., Run],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert "2026-11-02 16:12:44 UTC" in cli("--db", store, "alerts", "show", "1").out  # the default
    monkeypatch.setenv("FRAUDWATCH_DISPLAY_TIMEZONE", "Asia/Shanghai")
    assert "2026-11-03 00:12:44 CST" in cli("--db", store, "alerts", "show", "1").out
    run = cli("--db", store, "alerts", "show", "1", "--display-timezone", "America/New_York")
    assert "2026-11-02 11:12:44 EST" in run.out
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()  # the machine's zone, as a process started with TZ set sees it
    try:
        local = cli("--db", store, "alerts", "show", "1", "--display-timezone", "local").out
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "2026-11-02 17:12:44 CET" in local


def test_an_unknown_zone_is_a_config_error_with_file_and_line(tmp_path: Path, store: Path,
                                                             cli: Callable[..., Run],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "fraudwatch.toml"
    conf.write_text('[store]\npath = "s.duckdb"\n\n[display]\ntimezone = "Europe/Lundon"\n', encoding="utf-8")
    run = cli("--config", conf, "alerts", "list")
    assert run.code == 2
    assert run.err.startswith(f"fraudwatch: {conf}:5: unknown time zone 'Europe/Lundon'"), run.err
    bad = cli("--db", store, "alerts", "list", "--display-timezone", "Mars/Olympus")
    assert bad.code == 2 and bad.err.startswith("fraudwatch: --display-timezone: unknown time zone 'Mars/Olympus'")
    monkeypatch.setenv("FRAUDWATCH_DISPLAY_TIMEZONE", "nowhere")
    env = cli("--db", store, "alerts", "list")
    assert env.code == 2 and env.err.startswith("fraudwatch: FRAUDWATCH_DISPLAY_TIMEZONE: unknown time zone")


def test_bans_list_fits_80_columns_without_cutting_an_address(tmp_path: Path, cli: Callable[..., Run],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    db = tmp_path / "store.duckdb"
    empty = tmp_path / "kern.log"
    empty.write_text("")
    assert cli("--db", db, "ingest", "--format", "linux-netfilter", empty).code == 0  # a store to ban into
    added = cli("--db", db, "bans", "add", IPV6, "--ttl", "1h", "--reason", "a manual ban with a long reason")
    assert added.code == 0, added.err
    for argv in (("bans", "list"), ("bans", "list", "--all")):
        run = cli("--db", db, *argv)
        assert run.code == 0, run.err
        lines = _fits(run.out)
        assert any(IPV6 in line for line in lines), run.out
        assert " UTC" in run.out and "T0" not in run.out  # times shown in the display zone, not as ISO text
