"""Sliding-window rule types on hand-built frames: exact (ts - window, ts] semantics, levels, keys, evidence.
Every test runs twice: with the frame detectors (replays) and with the incremental ones (the watcher)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from fraudwatch.detect.base import Context
from fraudwatch.detect.enrich import Enricher
from tests.detect import frames
from tests.detect.frames import at, events, lists_dir, run, sip

detector = frames.detector


@pytest.fixture(autouse=True, params=[False, True], ids=["frames", "incremental"])
def _both_kinds(request: pytest.FixtureRequest) -> Iterator[None]:
    global detector
    detector = functools.partial(frames.detector, stream=request.param)
    yield
    detector = frames.detector

THRESHOLD = """
    id: reg-flood
    type: threshold
    where: {event: request, method: REGISTER}
    key: src_ip
    window: 10s
    warning: 3
    critical: 5
"""


def reg(t: float, ip: str = "192.0.2.1", **extra: object) -> dict[str, object]:
    return {"t": t, "event": "request", "method": "REGISTER", "src_ip": ip, **extra}


# --- threshold ------------------------------------------------------------------------------------------------


def test_an_event_exactly_one_window_later_is_outside_the_window(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    # at t=10 the window is (0, 10]: the event at 0 has left it, so only 2 events count
    assert run(det, sip(reg(0), reg(5), reg(10))) == []


def test_an_event_just_inside_the_window_counts(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    (m,) = run(det, sip(reg(0), reg(5), reg(9.999999)))
    assert m.severity == "warning" and m.value == 3
    assert m.first_seen == at(0) and m.detected_at == at(9.999999)


def test_crossing_counts_and_levels(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    (m,) = run(det, sip(*(reg(t) for t in range(6))))
    assert m.rule == "reg-flood" and m.key_type == "ip" and m.key == "192.0.2.1"
    assert m.severity == "critical" and m.value == 6
    assert m.detected_at == at(2)  # the third event crosses warning=3
    assert m.first_seen == at(0) and m.last_seen == at(5)
    assert m.count == 6


def test_warning_only_below_critical(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    (m,) = run(det, sip(*(reg(t) for t in range(4))))
    assert m.severity == "warning" and m.value == 4 and m.count == 4


def test_other_events_do_not_count(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    frame = sip(reg(0), reg(1), {"t": 1.5, "event": "request", "method": "INVITE", "src_ip": "192.0.2.1"},
                {"t": 2, "event": "response", "method": "REGISTER", "status": 200, "src_ip": "192.0.2.1"})
    assert run(det, frame) == []


def test_keys_are_isolated(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    frame = sip(reg(0, "192.0.2.1"), reg(1, "192.0.2.2"), reg(2, "192.0.2.1"), reg(3, "192.0.2.2"),
                reg(4, "192.0.2.3"), reg(5, "192.0.2.3"), reg(6, "192.0.2.3"))
    (m,) = run(det, frame)
    assert m.key == "192.0.2.3" and m.count == 3 and m.first_seen == at(4)


def test_events_without_the_key_are_ignored(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    assert run(det, sip(reg(0, None), reg(1, None), reg(2, None), reg(3, None))) == []  # type: ignore[arg-type]


def test_keyless_rule_has_one_global_key(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD.replace("key: src_ip", ""))
    (m,) = run(det, sip(reg(0, "192.0.2.1"), reg(1, "192.0.2.2"), reg(2, "192.0.2.3")))
    assert m.key == "*" and m.key_type == "global" and m.count == 3


def test_evidence_names_ids_and_lines_of_the_window(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    frame = sip(reg(0, "192.0.2.9"), reg(1), reg(2), reg(3), first_id=41)
    (m,) = run(det, frame)
    assert m.evidence["ids"] == [42, 43, 44]
    assert [line[:2] for line in m.evidence["lines"]] == [["test.log", 42], ["test.log", 43], ["test.log", 44]]


def test_window_carries_across_batches(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    assert det.process(sip(reg(0), reg(4))) == []
    (m,) = det.process(sip(reg(8), first_id=3))
    assert m.severity == "warning" and m.detected_at == at(8) and m.first_seen == at(0)
    assert m.evidence["ids"] == [1, 2, 3]
    assert m.count == 3  # the two events of the first batch are behind this match too
    # ... and the window moves on: t=14 sees (4, 14] = {8, 14}
    assert det.process(sip(reg(14), first_id=4)) == []


def test_an_ongoing_attack_counts_each_event_once_across_batches(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    first = det.process(sip(*(reg(t) for t in range(4))))
    second = det.process(sip(*(reg(t) for t in range(4, 8)), first_id=5))
    assert sum(m.count for m in first + second) == 8
    assert second[0].severity == "critical" and second[0].detected_at == at(4)


def test_separate_episodes_in_one_batch_are_separate_matches(tmp_path: Path) -> None:
    det = detector(tmp_path, THRESHOLD)
    frame = sip(*(reg(t) for t in range(3)), *(reg(t) for t in range(100, 106)))
    m1, m2 = run(det, frame)
    assert (m1.severity, m1.first_seen, m1.last_seen, m1.count) == ("warning", at(0), at(2), 3)
    assert (m2.severity, m2.first_seen, m2.detected_at, m2.count) == ("critical", at(100), at(102), 6)


@pytest.mark.parametrize("keys", [40, 3000])  # the small path's frames, then the frame path's
def test_matches_crossing_at_one_instant_come_in_key_order(tmp_path: Path, keys: int) -> None:
    """The alert book numbers alerts in the order matches come: for keys crossing at the same instant, the
    order of their keys' text, not whatever order grouping happened to leave them in (replay equals live)."""
    det = detector(tmp_path, THRESHOLD)
    ips = [f"2001:db8::{i * 7919 % 65521:x}" for i in range(keys)]
    matches = run(det, sip(*(reg(t, ip) for t in range(3) for ip in ips)))
    assert [m.key for m in matches] == sorted(ips)
    assert {m.detected_at for m in matches} == {at(2)}


def test_evidence_of_events_at_one_instant_is_the_first_by_id(tmp_path: Path) -> None:
    """A burst logged within one millisecond: the evidence names its first events by id, however the events of
    one instant are ordered (the frame path's joins leave them in any order). Frame detectors only: the
    watcher's incremental ones take events as the file gives them, in id order."""
    det = frames.detector(tmp_path, THRESHOLD, stream=False)
    ips = [f"198.51.100.{i % 200 + 1}" for i in range(10_000)]  # beyond SMALL: the frame path
    burst = sip(*(reg(0, ip) for ip in ips)).sample(fraction=1.0, shuffle=True, seed=7)  # ids in any order
    (m, *rest) = [m for m in run(det, burst) if m.key == "198.51.100.1"]
    assert not rest and m.count == 50
    assert m.evidence["ids"] == [1 + 200 * i for i in range(20)]


# --- distinct -------------------------------------------------------------------------------------------------

DISTINCT = """
    id: user-scan
    type: distinct
    where: {event: request, method: REGISTER}
    key: src_ip
    field: username
    window: 60s
    warning: 3
    critical: 5
"""


def test_distinct_counts_values_not_events(tmp_path: Path) -> None:
    det = detector(tmp_path, DISTINCT)
    frame = sip(reg(0, username="100"), reg(1, username="100"), reg(2, username="101"), reg(3, username=None),
                reg(4, username="101"))
    assert run(det, frame) == []
    (m,) = det.process(sip(reg(5, username="102"), reg(6, username="103"), first_id=6))
    assert m.severity == "warning" and m.value == 4 and m.detected_at == at(5)
    assert m.evidence["username"] == ["100", "101", "102", "103"]


def test_distinct_window_and_critical(tmp_path: Path) -> None:
    det = detector(tmp_path, DISTINCT)
    # the first two usernames leave the window (t - 60, t] before the last one arrives
    frame = sip(reg(0, username="a"), reg(0.5, username="b"), reg(60, username="c"), reg(61, username="d"))
    assert run(det, frame) == []
    (m,) = det.process(sip(*(reg(62 + i, username=f"u{i}") for i in range(3)), first_id=10))
    assert m.severity == "critical" and m.value == 5
    assert set(m.evidence["username"]) == {"c", "d", "u0", "u1", "u2"}


# --- sum ------------------------------------------------------------------------------------------------------

SUM = """
    id: spend
    type: sum
    source: cdrs
    key: customer_account
    field: fee
    window: 60s
    warning: 10
    critical: 20
"""


def cdrs(*rows: dict[str, object]) -> pl.DataFrame:
    return Enricher(())("cdrs", events("cdrs", rows))


def test_sum_over_the_window(tmp_path: Path) -> None:
    det = detector(tmp_path, SUM)
    frame = cdrs({"t": 0, "fee": 6, "customer_account": "a1"}, {"t": 60, "fee": 6, "customer_account": "a1"},
                 {"t": 61, "fee": 3, "customer_account": "a2"}, {"t": 62, "fee": 3, "customer_account": "a1"},
                 {"t": 63, "fee": 12, "customer_account": "a1"})
    (m,) = run(det, frame)  # at 60 the window (0, 60] holds 6 only; at 62: 9; at 63: 21
    assert m.key == "a1" and m.key_type == "account" and m.severity == "critical" and m.value == 21
    assert m.detected_at == at(63) and m.first_seen == at(60) and m.count == 3
    assert m.evidence["flownos"] == [2, 4, 5]


# --- spike ----------------------------------------------------------------------------------------------------

SPIKE = """
    id: call-spike
    type: spike
    where: {event: request, method: INVITE}
    key: account
    window: 60s
    baseline: 600s
    min_count: 10
    warning: 3
    critical: 6
"""


def invite(t: float, account: str) -> dict[str, object]:
    return {"t": t, "event": "request", "method": "INVITE", "account": account, "src_ip": "198.51.100.1"}


def test_spike_against_the_keys_own_rate(tmp_path: Path) -> None:
    det = detector(tmp_path, SPIKE)
    steady = [invite(60 * i + 30, "a") for i in range(9)]  # one a minute, then 12 in a minute
    burst = [invite(600 + i, "a") for i in range(12)]
    (m,) = run(det, sip(*steady, *burst))
    # at the 12th event: now = 12, the preceding 540 s held 9 -> expected 1 per window, ratio 13/2
    assert m.key == "a" and m.severity == "critical" and m.value == 6.5
    assert m.detected_at == at(609)  # the 10th event of the burst: ratio 11/2 would already be warning
    assert m.count == 12


def test_spike_min_count_keeps_quiet_keys_quiet(tmp_path: Path) -> None:
    det = detector(tmp_path, SPIKE)
    assert run(det, sip(*(invite(i, "b") for i in range(9)))) == []  # ratio 10, but only 9 calls


def test_spike_not_raised_by_a_steady_high_rate(tmp_path: Path) -> None:
    det = detector(tmp_path, SPIKE)
    steady = [invite(5 * i, "c") for i in range(240)]  # 12 a minute for 20 minutes
    matches = run(det, sip(*steady))
    assert all(m.detected_at < at(600) for m in matches)  # only while there is no history yet
    assert det.process(sip(*(invite(1200 + 5 * i, "c") for i in range(24)), first_id=1000)) == []


# --- list_match -----------------------------------------------------------------------------------------------

LIST_MATCH = """
    id: scanner
    type: list_match
    where: {event: request}
    key: src_ip
    field: user_agent
    list: scanners
    match: {match}
    window: 60s
    warning: 1
    critical: 3
"""


def ua(t: float, agent: str, ip: str = "192.0.2.1") -> dict[str, object]:
    return {"t": t, "event": "request", "method": "OPTIONS", "src_ip": ip, "user_agent": agent}


def test_list_match_contains_is_case_insensitive(tmp_path: Path) -> None:
    lists_dir(tmp_path, scanners=["friendly-scanner", "sipcli"])
    det = detector(tmp_path, LIST_MATCH.replace("{match}", "contains"))
    frame = sip(ua(0, "Friendly-Scanner 1.0", "192.0.2.1"), ua(1, "Yealink SIP-T46S", "192.0.2.2"),
                ua(2, "sipcli/v1.8", "192.0.2.3"), ua(3, "sipcli/v1.8", "192.0.2.3"),
                ua(4, "sipcli/v1.8", "192.0.2.3"))
    by_key = {m.key: m for m in run(det, frame)}
    assert set(by_key) == {"192.0.2.1", "192.0.2.3"}
    assert by_key["192.0.2.1"].severity == "warning"
    assert by_key["192.0.2.3"].severity == "critical" and by_key["192.0.2.3"].count == 3
    assert by_key["192.0.2.3"].evidence["user_agent"] == ["sipcli/v1.8"]


def test_list_match_exact(tmp_path: Path) -> None:
    lists_dir(tmp_path, scanners=["sipcli"])
    det = detector(tmp_path, LIST_MATCH.replace("{match}", "exact"))
    frame = sip(ua(0, "sipcli/v1.8", "192.0.2.1"), ua(1, "SIPCLI", "192.0.2.2"), ua(2, "sipcli", "192.0.2.3"))
    assert [m.key for m in run(det, frame)] == ["192.0.2.3"]


def test_list_match_prefix_normalises_numbers(tmp_path: Path) -> None:
    lists_dir(tmp_path, premium=["+881", "00882", "44 90"])
    text = (LIST_MATCH.replace("{match}", "prefix").replace("user_agent", "callee").replace("scanners", "premium")
            .replace("event: request", "event: call_start"))
    det = detector(tmp_path, text)
    rows = [{"t": i, "event": "call_start", "src_ip": f"192.0.2.{i + 1}", "callee": callee}
            for i, callee in enumerate(["+8812345", "008823456", "0044 909 879 0000", "4420790000", "3881"])]
    assert [m.key for m in run(det, sip(*rows))] == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]


def test_list_match_keeps_the_rules_own_any_and_not(tmp_path: Path) -> None:
    lists_dir(tmp_path, scanners=["friendly-scanner"])
    text = LIST_MATCH.replace("{match}", "contains").replace(
        "where: {event: request}",
        "where: {any: [{method: OPTIONS}, {method: REGISTER}], not: {src_ip: 192.0.2.200}}")
    det = detector(tmp_path, text)
    frame = sip(ua(0, "friendly-scanner", "192.0.2.200"), ua(1, "friendly-scanner", "192.0.2.7"),
                ua(2, "Yealink", "192.0.2.8"),
                {"t": 3, "event": "request", "method": "INVITE", "src_ip": "192.0.2.9", "user_agent": "sipvicious"})
    assert [m.key for m in run(det, frame)] == ["192.0.2.7"]


def test_list_match_with_an_empty_list_matches_nothing(tmp_path: Path) -> None:
    lists_dir(tmp_path, scanners=[])
    det = detector(tmp_path, LIST_MATCH.replace("{match}", "contains"), Context(tmp_path / "lists"))
    assert run(det, sip(ua(0, "friendly-scanner"), ua(1, ""))) == []


def test_text_keys_are_grouped_by_their_hashes_unless_two_collide(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame path groups on 64-bit hashes of text keys and fields (`windowed._coded`); when the hashes of
    a batch's values are not all different it uses the text: the same matches either way."""
    from fraudwatch.detect.windows import frame as windowed

    monkeypatch.setattr(windowed, "SMALL", 0)  # the frame path, whatever the batch's size
    rule = """
    id: users-per-ip
    type: distinct
    where: {event: request, method: REGISTER}
    key: src_ip
    field: username
    window: 10s
    warning: 3
    critical: 6
    """
    stream = [reg(i * 0.4, f"192.0.2.{i % 4}", username=f"u{i % 9}") for i in range(80)]

    def matches() -> tuple[list[tuple[object, ...]], list[str]]:
        det = frames.detector(tmp_path, rule)
        got = run(det, sip(*stream[:30]), sip(*stream[30:], first_id=31))
        return sorted((m.key, m.severity, m.first_seen, m.detected_at, m.count, m.value,
                       tuple(m.evidence["username"])) for m in got), det.by

    hashed, by = matches()
    assert by == [windowed.CODED + "src_ip"] and len(hashed) >= 4
    monkeypatch.setattr(pl.Series, "hash", lambda self, *a, **k: pl.Series([7] * self.len(), dtype=pl.UInt64))
    texts, by = matches()
    assert by == ["src_ip"] and texts == hashed
