"""What only the watcher's incremental windows have: bounded memory. (Their scores, matches and evidence are
held to the frame detectors' by test_windowed, test_batch_invariance and test_live_vs_replay.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from fraudwatch.detect.windows import incremental
from tests.detect.frames import detector, run, sip, split_every

RULE = """
    id: reg-flood
    type: threshold
    where: {event: request, method: REGISTER}
    key: src_ip
    window: {window}
    warning: 3
    critical: 50
"""


def reg(t: float, ip: str) -> dict[str, object]:
    return {"t": t, "event": "request", "method": "REGISTER", "src_ip": ip}


def held(det: incremental.IncrementalDetector) -> int:
    return sum(st.held() for st in det.state.values())


def test_keys_whose_events_left_the_window_are_forgotten(tmp_path: Path) -> None:
    det = detector(tmp_path, RULE.replace("{window}", "10s"), stream=True)
    assert run(det, sip(*(reg(i * 0.01, f"192.0.2.{i}") for i in range(200)))) == []  # a botnet, one each
    assert len(det.state) == 200
    for second in range(10, 30):  # then one address, once a second: the others leave the window
        run(det, sip(reg(second, "198.51.100.1"), first_id=1000 + second))
    assert set(det.state) == {"198.51.100.1"}
    assert held(det) <= 11  # its own events of the last 10 s


def test_a_flood_into_a_long_window_stays_within_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(incremental, "KEPT_EVENTS", 1000)
    det = detector(tmp_path, RULE.replace("{window}", "6h"), stream=True)
    det.check_at = 250
    flood = sip(*(reg(i * 0.02, f"203.0.113.{i % 4}") for i in range(5000)))  # 100 s, four addresses
    matches = run(det, *split_every(flood, 100))
    assert held(det) <= 1000 + 100  # the bound, and at most a batch added since the last sweep
    assert det.shortened >= 1
    assert "more than 1000 events in its windows" in caplog.text
    # the flood is still named: each address critical, every event behind a match once
    assert {m.key for m in matches if m.severity == "critical"} == {f"203.0.113.{i}" for i in range(4)}
    assert sum(m.count for m in matches) == 5000
