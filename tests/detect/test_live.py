"""Live detection reports an alert at once when it opens or its severity or action changes, and holds updates
that change only counts and times for `resave_seconds` (saved and acted on by `flush`)."""

from __future__ import annotations

from pathlib import Path

from fraudwatch.detect.base import Context
from fraudwatch.detect.runners.live import LiveDetection
from fraudwatch.store.db import Store
from tests.detect.frames import lists_dir, load_rules_text, sip

RULES = """
rules:
  - id: reg-flood
    type: threshold
    source: sip_events
    where: {event: request, method: REGISTER}
    key: src_ip
    window: 60s
    warning: 5
    critical: 40
    cooldown: 5m
    action: ban_ip
    act_on: critical
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def regs(start: float, n: int, first_id: int) -> object:
    return sip(*({"t": start + i * 0.1, "event": "request", "method": "REGISTER", "src_ip": "192.0.2.9"}
                 for i in range(n)), first_id=first_id)


def stored(store: Store) -> list[tuple[object, ...]]:
    return store.con.execute("SELECT severity, count, action FROM alerts").fetchall()


def test_updates_of_an_ongoing_alert_are_held_then_flushed(tmp_path: Path) -> None:
    clock = Clock()
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveDetection(store.con, load_rules_text(tmp_path, RULES), Context(lists_dir(tmp_path)),
                             resave_seconds=5.0, clock=clock)
        (opened,) = live("sip_events", regs(0, 10, 1))  # opens: reported and saved at once
        assert (opened.severity, opened.count) == ("warning", 10)
        assert stored(store) == [("warning", 10, "alert")]
        clock.now += 1
        assert live("sip_events", regs(1, 10, 11)) == []  # more of the same: held
        assert live.flush() == []  # not due yet
        assert stored(store) == [("warning", 10, "alert")]
        clock.now += 5
        (due,) = live.flush()  # due: the latest state
        assert due.count == 20
        assert stored(store) == [("warning", 20, "alert")]
        assert live.flush() == []


def test_a_severity_rise_is_reported_at_once_and_force_flushes_the_rest(tmp_path: Path) -> None:
    clock = Clock()
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveDetection(store.con, load_rules_text(tmp_path, RULES), Context(lists_dir(tmp_path)),
                             resave_seconds=5.0, clock=clock)
        live("sip_events", regs(0, 10, 1))
        clock.now += 1
        (risen,) = live("sip_events", regs(1, 40, 11))  # critical now, and the ban is proposed: at once
        assert (risen.severity, risen.action, risen.count) == ("critical", "ban_ip", 50)
        assert stored(store) == [("critical", 50, "ban_ip")]
        clock.now += 1
        assert live("sip_events", regs(5, 3, 51)) == []
        (held,) = live.flush(force=True)  # a stop or reload: everything held
        assert held.count == 53
        assert stored(store) == [("critical", 53, "ban_ip")]


def test_without_a_resave_interval_every_change_is_reported(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveDetection(store.con, load_rules_text(tmp_path, RULES), Context(lists_dir(tmp_path)),
                             resave_seconds=0.0)
        assert len(live("sip_events", regs(0, 10, 1))) == 1
        assert len(live("sip_events", regs(1, 10, 11))) == 1


def test_incidents_are_saved_with_their_alerts_and_end_when_event_time_moves_on(tmp_path: Path) -> None:
    clock = Clock()
    with Store(tmp_path / "s.duckdb") as store:
        live = LiveDetection(store.con, load_rules_text(tmp_path, RULES), Context(lists_dir(tmp_path)),
                             resave_seconds=5.0, clock=clock)
        (opened,) = live("sip_events", regs(0, 10, 1))
        (change,) = live.take_changes()
        assert change.change == "opened" and change.incident.alert_ids == [opened.id]
        assert store.con.execute("SELECT state, members, ips FROM incidents").fetchall() == \
            [("open", 1, '["192.0.2.9"]')]
        assert store.con.execute("SELECT alert_id FROM incident_alerts").fetchall() == [(opened.id,)]
        clock.now += 1
        live("sip_events", regs(1, 40, 11))  # critical: the incident escalates
        assert [c.change for c in live.take_changes()] == ["escalated"]
        assert store.con.execute("SELECT severity, action FROM incidents").fetchall() == [("critical", "ban_ip")]
        # other traffic two hours later in event time: the incident's spell is over
        live("sip_events", sip({"t": 7200, "event": "request", "method": "OPTIONS", "src_ip": "198.51.100.1"},
                               first_id=100))
        clock.now += 10
        live.flush()
        assert [c.change for c in live.take_changes()] == ["ended"]
        assert store.con.execute("SELECT state FROM incidents").fetchall() == [("ended",)]
