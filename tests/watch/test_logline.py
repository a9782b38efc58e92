"""The watcher's log lines: stamped (ISO 8601 with the zone) on a terminal or in a file, unstamped with the syslog
level prefix when stderr is the journal's, key=value fields that a hostile value cannot split or break, and a
bounded number of lines per batch under a flood."""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
import re
from pathlib import Path

import pytest

from fraudwatch.cli.watch import LogFormatter
from fraudwatch.detect.decide import Alert
from fraudwatch.watch.eventlog import PER_BATCH, log_alerts
from fraudwatch.watch.logline import LineFormatter, key_field, kv, under_journald

T0 = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _record(msg: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("fraudwatch.watch", level, __file__, 1, msg, None, None)


def test_journald_is_recognised_by_the_device_and_inode_of_stderr(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    ours, other = tmp_path / "journal", tmp_path / "elsewhere"
    with ours.open("w") as stream, other.open("w") as redirected:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert under_journald(stream)
        assert not under_journald(redirected)  # a child whose stderr went elsewhere inherits the variable
        monkeypatch.setenv("JOURNAL_STREAM", "garbage")
        assert not under_journald(stream)
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not under_journald(stream)


def test_a_line_is_stamped_or_given_the_journals_level_prefix() -> None:
    stamped = LineFormatter(journald=False).format(_record("watching 1 source(s)"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d fraudwatch: INFO watching 1 source\(s\)",
                        stamped), stamped
    journal = LineFormatter(journald=True)
    assert journal.format(_record("x", logging.ERROR)) == "<3>fraudwatch: ERROR x"
    assert journal.format(_record("x", logging.WARNING)) == "<4>fraudwatch: WARNING x"
    assert journal.format(_record("x", logging.INFO)) == "<6>fraudwatch: INFO x"


def test_hostile_values_stay_one_line_and_one_field() -> None:
    line = kv(account="10023", name='ACME "x" y=1\nfraudwatch: ERROR forged', empty="", none=None)
    assert line == 'account=10023 name="ACME \\"x\\" y=1\\nfraudwatch: ERROR forged" empty=""'
    shown = LogFormatter(journald=True).format(_record("alert %s", logging.WARNING))
    assert shown == "<4>fraudwatch: WARNING alert %s"
    rec = logging.LogRecord("fraudwatch.watch", logging.WARNING, __file__, 1, "alert %s", ("\x1b[2Jx\u202e",), None)
    assert LogFormatter(journald=True).format(rec) == "<4>fraudwatch: WARNING alert \\x1b[2Jx\\u202e"
    assert key_field("ip", "192.0.2.1|alice") == {"ip": "192.0.2.1", "key": "192.0.2.1|alice"}
    assert key_field("account", "10023") == {"account": "10023"}


def _alert(i: int, action: str = "ban_ip") -> Alert:
    return Alert(id=i, rule="auth-failures-ip", severity="critical", key_type="ip", key=f"192.0.2.{i % 250}",
                 first_seen=T0, last_seen=T0, detected_at=T0, count=10, value=10.0, action=action, trusted=False,
                 report_only=False, description="d")


def test_a_flood_of_alerts_is_a_bounded_number_of_lines(caplog: pytest.LogCaptureFixture) -> None:
    alerts = [_alert(i) for i in range(1, 5001)]
    noted = {a.id: "new" for a in alerts}
    with caplog.at_level(logging.WARNING, logger="fraudwatch.watch"):
        log_alerts(alerts, {1: "would ban 192.0.2.1 until 2026-11-26 13:00 UTC (level 1) (dry run)"}, noted)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == PER_BATCH + 1
    assert lines[0] == ('alert opened id=1 rule=auth-failures-ip severity=critical ip=192.0.2.1 events=10 '
                        'action=ban_ip done="would ban 192.0.2.1 until 2026-11-26 13:00 UTC (level 1) (dry run)"')
    assert lines[-1] == f"alert: and {5000 - PER_BATCH} more in this batch (`fraudwatch alerts list` shows them all)"


def test_a_proposed_lock_says_it_is_not_carried_out(caplog: pytest.LogCaptureFixture) -> None:
    lock = Alert(id=9, rule="high-risk-spend-account", severity="critical", key_type="account", key="10023",
                 first_seen=T0, last_seen=T0, detected_at=T0, count=9, value=45.0, action="lock_account",
                 trusted=False, report_only=False, description="d")
    with caplog.at_level(logging.WARNING, logger="fraudwatch.watch"):
        log_alerts([lock], {}, {9: "severity warning -> critical"})
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == ('alert changed id=9 rule=high-risk-spend-account severity=critical account=10023 events=9 '
                    'action=lock_account done="proposed: lock the account (not carried out: fraudwatch cannot lock '
                    'accounts yet)" changed="severity warning -> critical"')
    assert "locked" not in io.StringIO(line).read()
