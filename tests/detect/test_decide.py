"""The alert book: one alert per ongoing (rule, key) episode; severity only rises; trusted keys are never acted on."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fraudwatch.detect.base import Context, Match
from fraudwatch.detect.decide import AlertBook
from fraudwatch.detect.fields import columns_of
from fraudwatch.netaddr import parse_networks
from tests.detect.frames import at, lists_dir, load_rules_text, sip, split_every

RULES = """
rules:
  - id: flood
    type: threshold
    description: REGISTER flood
    where: {event: request, method: REGISTER}
    key: src_ip
    window: 10s
    warning: 3
    critical: 6
    action: ban_ip
  - id: spend
    type: sum
    source: cdrs
    key: customer_account
    field: fee
    window: 1h
    cooldown: 2h
    warning: 10
    action: lock_account
    report_only: true
  - id: users
    type: distinct
    description: usernames per address
    where: {event: request, method: REGISTER}
    key: src_ip
    field: username
    window: 10s
    cooldown: 5m
    warning: 3
    critical: 10
    group: 3
"""


def rules(tmp_path: Path) -> dict[str, Any]:
    return {r.common.id: r for r in load_rules_text(tmp_path, RULES)}


def book(tmp_path: Path, **kw: Any) -> AlertBook:
    return AlertBook(rules(tmp_path), **kw)


def match(rule: str, key: str, t0: float, t1: float, count: int = 3, severity: str = "warning",
          value: float = 3.0, key_type: str = "ip", **evidence: Any) -> Match:
    return Match(rule, key_type, key, severity, at(t0), at(t1), at(t1), count, value, dict(evidence))


def test_an_attack_over_batches_is_one_alert_with_summed_counts(tmp_path: Path) -> None:
    b = book(tmp_path)
    (a1,) = b.apply([match("flood", "192.0.2.1", 0, 2, ids=[1, 2, 3])])
    (a2,) = b.apply([match("flood", "192.0.2.1", 3, 6, count=4, ids=[4, 5, 6, 7])])
    (a3,) = b.apply([match("flood", "192.0.2.1", 12, 16, count=5, severity="critical", value=7, ids=[3, 8])])
    assert a1.id == a2.id == a3.id == 1
    assert a3.count == 12 and a3.updates == 2
    assert a3.first_seen == at(0) and a3.detected_at == at(2) and a3.last_seen == at(16)
    assert a3.severity == "critical" and a3.value == 7
    assert a3.evidence["ids"] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (a3.action, a3.trusted, a3.report_only, a3.description) == ("ban_ip", False, False, "REGISTER flood")


def test_after_the_cooldown_a_new_alert_opens(tmp_path: Path) -> None:
    b = book(tmp_path)
    (first,) = b.apply([match("flood", "192.0.2.1", 0, 2)])
    (same,) = b.apply([match("flood", "192.0.2.1", 12, 14)])  # 10 s after last_seen: cooldown = window = 10 s
    (new,) = b.apply([match("flood", "192.0.2.1", 24.5, 26)])  # 10.5 s quiet
    assert same.id == first.id and new.id == first.id + 1
    assert new.count == 3 and new.first_seen == at(24.5) and new.updates == 0


def test_keys_and_rules_are_separate_alerts(tmp_path: Path) -> None:
    b = book(tmp_path)
    out = b.apply([match("flood", "192.0.2.1", 0, 2), match("flood", "192.0.2.2", 0, 2),
                   match("spend", "192.0.2.1", 0, 2, key_type="account")])
    assert len({a.id for a in out}) == 3


def test_severity_only_rises(tmp_path: Path) -> None:
    b = book(tmp_path)
    b.apply([match("flood", "192.0.2.1", 0, 2, severity="critical", value=9)])
    (a,) = b.apply([match("flood", "192.0.2.1", 3, 4, severity="warning", value=3)])
    assert a.severity == "critical" and a.value == 9


def test_the_action_is_proposed_from_act_on_severity_and_rises_with_it(tmp_path: Path) -> None:
    b = book(tmp_path)
    (a,) = b.apply([match("flood", "192.0.2.1", 0, 2, severity="warning")])
    assert a.action == "alert"  # act_on defaults to critical when the rule has a critical level
    (a,) = b.apply([match("flood", "192.0.2.1", 3, 4, severity="critical", value=9)])
    assert (a.severity, a.action) == ("critical", "ban_ip")
    spend = b.apply([match("spend", "10001", 0, 2, key_type="account")])
    assert spend[0].action == "lock_account"  # a warning-only rule acts at warning


def test_matches_of_one_batch_apply_in_event_order(tmp_path: Path) -> None:
    b = book(tmp_path)
    out = b.apply([match("flood", "192.0.2.1", 100, 102), match("flood", "192.0.2.1", 0, 2)])
    assert [a.first_seen for a in out] == [at(0), at(100)]  # two episodes, the earlier one first


def test_trusted_networks_are_never_banned(tmp_path: Path) -> None:
    b = book(tmp_path, trusted_networks=parse_networks(["10.0.0.0/8", "2001:db8::/32"]))
    out = b.apply([match("flood", ip, 0, 2, severity="critical")
                   for ip in ("10.1.1.1", "2001:db8::1", "::ffff:10.2.2.2", "192.0.2.1")])
    assert [(a.key, a.action, a.trusted) for a in out] == [
        ("10.1.1.1", "alert", True), ("2001:db8::1", "alert", True), ("::ffff:10.2.2.2", "alert", True),
        ("192.0.2.1", "ban_ip", False)]


def test_trusted_ip_in_a_composite_key(tmp_path: Path) -> None:
    b = book(tmp_path, trusted_networks=parse_networks(["10.0.0.0/8"]))
    (a,) = b.apply([match("flood", "10.1.1.1|1001", 0, 2)])
    assert a.trusted and a.action == "alert"


def test_trusted_accounts_are_never_locked_and_report_only_is_carried(tmp_path: Path) -> None:
    b = book(tmp_path, trusted_accounts=["carrier-1"])
    out = b.apply([match("spend", "carrier-1", 0, 2, key_type="account"),
                   match("spend", "retail-9", 0, 2, key_type="account")])
    assert [(a.key, a.action, a.trusted, a.report_only) for a in out] == [
        ("carrier-1", "alert", True, True), ("retail-9", "lock_account", False, True)]


def test_detector_matches_over_batches_make_one_alert(tmp_path: Path) -> None:
    rs = rules(tmp_path)
    det = rs["flood"].frame_detector(Context(lists_dir(tmp_path)), columns_of("sip_events"))
    b = AlertBook(rs)
    frame = sip(*({"t": t * 0.5, "event": "request", "method": "REGISTER", "src_ip": "192.0.2.1"} for t in range(40)))
    alerts = {}
    for part in split_every(frame, 5):
        for a in b.apply(det.process(part)):
            alerts[a.id] = a
    (a,) = alerts.values()
    assert a.count == 40 and a.severity == "critical" and a.detected_at == at(1) and a.first_seen == at(0)
    assert a.last_seen == at(19.5)


def test_the_book_forgets_alerts_that_can_no_longer_continue(tmp_path: Path) -> None:
    """A watcher runs for months: alerts past the rule's window and cooldown leave the open set, and a later
    match of the same key opens a new alert exactly as it would have without pruning."""
    b = AlertBook(rules(tmp_path))
    for i in range(1500):  # 1,500 scanners, each one episode, a minute apart
        b.apply([match("flood", f"192.0.2.{i % 250}|{i}", 60 * i, 60 * i + 2)])
    assert len(b.open) < 1100  # pruned when it passed 1,024: only the last window + cooldown remain open
    (late,) = b.apply([match("flood", "192.0.2.0|0", 60 * 1500, 60 * 1500 + 1)])
    assert late.id == 1501
    (again,) = b.apply([match("flood", "192.0.2.0|0", 60 * 1500 + 3, 60 * 1500 + 5)])
    assert again.id == late.id  # within the cooldown: the same alert
    assert b._reach("flood") == dt.timedelta(seconds=20)  # window 10 s + cooldown (the window)
    assert b._reach("spend") == dt.timedelta(hours=3)  # window 1 h + cooldown 2 h


def test_a_botnet_beyond_group_keys_is_one_switch_wide_warning(tmp_path: Path) -> None:
    b = AlertBook(rules(tmp_path))
    opened = [b.apply([match("users", f"192.0.2.{i}", 10 * i, 10 * i + 5)])[0] for i in range(3)]
    assert [a.key for a in opened] == ["192.0.2.0", "192.0.2.1", "192.0.2.2"]
    grouped = [b.apply([match("users", f"192.0.2.{i}", 10 * i, 10 * i + 5)])[0] for i in range(3, 40)]
    assert {a.id for a in grouped} == {4} and grouped[-1].key_type == "global" and grouped[-1].key == "*"
    g = grouped[-1]
    assert g.evidence["grouped_keys"] == 37 and g.value == 37 and g.count == 37 * 3 and g.action == "alert"
    assert g.evidence["keys"][:2] == ["192.0.2.3", "192.0.2.4"]
    # a grouped address that goes on stays in the group; one that turns critical gets its own alert
    (same,) = b.apply([match("users", "192.0.2.39", 400, 402)])
    assert same.id == 4 and b.open[("users", "*")].evidence["grouped_keys"] == 37
    (own,) = b.apply([match("users", "192.0.2.6", 401, 403, severity="critical", value=12)])
    assert own.id == 5 and own.key == "192.0.2.6"
    # after a quiet cooldown the group has emptied: the next address alerts on its own
    (later,) = b.apply([match("users", "192.0.2.200", 5000, 5002)])
    assert later.key == "192.0.2.200" and later.id == 6
