"""new_term, seasonal and credit_limit on hand-built frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fraudwatch.detect.base import Context, Match
from fraudwatch.detect.enrich import Enricher
from fraudwatch.detect.types.credit import NO_CREDIT
from tests.detect.frames import at, detector, events, lists_dir, run, sip

HOUR = 3600

# --- new_term -------------------------------------------------------------------------------------------------

NEW_TERM = """
    id: account-new-ip
    type: new_term
    where: {event: reg_online}
    key: account
    terms: [src_ip]
    learn: 1h
    window: 1h
    warning: 1
    critical: 3
"""


def online(t: float, account: str, ip: str) -> dict[str, object]:
    return {"t": t, "event": "reg_online", "account": account, "src_ip": ip}


def test_new_term_learns_silently_then_alerts_once(tmp_path: Path) -> None:
    det = detector(tmp_path, NEW_TERM)
    learning = sip(online(0, "a1", "10.0.0.1"), online(1800, "a1", "10.0.0.2"), online(3599, "a1", "10.0.0.3"))
    assert det.process(learning) == []
    assert det.process(sip(online(4000, "a1", "10.0.0.1"), online(4100, "a1", "10.0.0.3"), first_id=4)) == []
    (m,) = det.process(sip(online(5000, "a1", "192.0.2.66"), online(5001, "a1", "192.0.2.66"), first_id=6))
    assert (m.rule, m.key_type, m.key, m.severity, m.value) == ("account-new-ip", "account", "a1", "warning", 1.0)
    assert m.first_seen == at(5000) and m.detected_at == at(5000)
    assert m.evidence["new_terms"] == [["192.0.2.66"]] and m.evidence["known_terms"] == 3
    assert m.evidence["ids"][0] == 6
    assert det.process(sip(online(6000, "a1", "192.0.2.66"), first_id=8)) == []  # known now


def test_new_term_learning_is_per_key(tmp_path: Path) -> None:
    det = detector(tmp_path, NEW_TERM)
    frame = sip(online(0, "a1", "10.0.0.1"), online(7200, "a2", "10.0.0.9"), online(7300, "a2", "10.0.0.8"),
                online(7400, "a1", "10.0.0.8"))
    (m,) = run(det, frame)  # a2 is still learning at 7300; a1 learned for two hours
    assert m.key == "a1" and m.first_seen == at(7400)


def test_new_term_severity_from_new_terms_in_the_window(tmp_path: Path) -> None:
    det = detector(tmp_path, NEW_TERM)
    det.process(sip(online(0, "a1", "10.0.0.1")))
    (m,) = det.process(sip(*(online(HOUR + 60 * i, "a1", f"192.0.2.{i}") for i in range(3)), first_id=2))
    assert m.severity == "critical" and m.value == 3 and m.count == 3
    assert m.evidence["new_terms"] == [["192.0.2.0"], ["192.0.2.1"], ["192.0.2.2"]]


# --- seasonal -------------------------------------------------------------------------------------------------

SEASONAL = """
    id: reg-baseline
    type: seasonal
    where: {event: reg_online}
    bucket: 1h
    history: 2d
    direction: {direction}
    min_history: 2
    min_value: 5
    warning: 3
    critical: 6
"""


def hourly(counts: list[int], start_hour: int = 0) -> list[dict[str, object]]:
    """`counts[i]` registrations spread over hour start_hour + i."""
    rows: list[dict[str, object]] = []
    for h, n in enumerate(counts):
        rows += [online((start_hour + h) * HOUR + i * (HOUR / max(n, 1)), "a", "10.0.0.1") for i in range(n)]
    return rows


def tick(hour: float) -> dict[str, object]:
    """An event of another kind: it moves event time on without counting."""
    return {"t": hour * HOUR, "event": "request", "method": "OPTIONS", "src_ip": "10.9.9.9"}


def seasonal(tmp_path: Path, direction: str, counts: list[int]) -> list[Match]:
    det = detector(tmp_path, SEASONAL.replace("{direction}", direction))
    return run(det, sip(*hourly(counts), tick(len(counts) + 0.5)))


@pytest.mark.parametrize(("direction", "expect"), [("both", 1), ("down", 1), ("up", 0)])
def test_seasonal_drop(tmp_path: Path, direction: str, expect: int) -> None:
    matches = seasonal(tmp_path, direction, [20] * 12 + [2])
    assert len(matches) == expect
    if matches:
        (m,) = matches
        # median 20, MAD 0 -> scale sqrt(20); z = (2 - 20) / 4.47 = -4.02
        assert m.key == "*" and m.severity == "warning" and m.value == pytest.approx(4.02, abs=0.01)
        assert m.first_seen == at(12 * HOUR) and m.detected_at == at(13 * HOUR) and m.count == 2
        assert m.evidence["baseline_median"] == 20 and m.evidence["z"] == pytest.approx(-4.02, abs=0.01)


@pytest.mark.parametrize(("direction", "expect"), [("both", 1), ("up", 1), ("down", 0)])
def test_seasonal_spike(tmp_path: Path, direction: str, expect: int) -> None:
    matches = seasonal(tmp_path, direction, [20] * 12 + [80])
    assert len(matches) == expect
    if matches:
        assert matches[0].severity == "critical" and matches[0].value == pytest.approx(60 / 20**0.5, abs=0.01)


def test_seasonal_signed_value_per_direction(tmp_path: Path) -> None:
    det = detector(tmp_path, SEASONAL.replace("{direction}", "down").replace("warning: 3", "warning: -100"))
    (m,) = [m for m in run(det, sip(*hourly([20] * 12 + [80]), tick(13.5))) if m.first_seen == at(12 * HOUR)]
    assert m.value == pytest.approx(-60 / 20**0.5, abs=0.01)  # a spike is a negative drop


def test_seasonal_quiet_history_is_not_scored(tmp_path: Path) -> None:
    assert seasonal(tmp_path, "both", [2] * 12 + [30]) == []  # median 2 < min_value 5


def test_seasonal_empty_bucket_is_a_zero(tmp_path: Path) -> None:
    matches = seasonal(tmp_path, "down", [20] * 6 + [0] + [20] * 3)
    assert [(m.first_seen, m.count, m.severity) for m in matches] == [(at(6 * HOUR), 0, "warning")]


def test_seasonal_key_first_seen_late_has_zeros_since_the_profile_began(tmp_path: Path) -> None:
    """A key's profile starts with the rule's first event, not the key's: a user silent for six hours, then 30
    registrations in an hour, is scored against six zero hours (and the first key's steady traffic is quiet)."""
    text = SEASONAL.replace("{direction}", "up").replace("min_value: 5", "min_value: 0") + "    key: account\n"
    det = detector(tmp_path, text)
    steady = [online(h * HOUR + i * 600, "steady", "10.0.0.1") for h in range(8) for i in range(6)]
    burst = [online(6 * HOUR + i * 100, "late", "10.0.0.2") for i in range(30)]
    matches = run(det, sip(*sorted(steady + burst, key=lambda r: float(str(r["t"]))), tick(8.5)))
    assert [(m.key, m.first_seen, m.count) for m in matches] == [("late", at(6 * HOUR), 30)]
    assert matches[0].evidence["baseline_median"] == 0 and matches[0].evidence["baseline_points"] >= 2


def test_seasonal_empty_bucket_across_batches(tmp_path: Path) -> None:
    det = detector(tmp_path, SEASONAL.replace("{direction}", "down"))
    assert det.process(sip(*hourly([20] * 6))) == []
    (m,) = det.process(sip(*hourly([20], start_hour=7), tick(8.5), first_id=1000))
    assert m.first_seen == at(6 * HOUR) and m.value == pytest.approx(20 / 20**0.5)


def test_seasonal_bucket_is_scored_when_time_passes_its_end(tmp_path: Path) -> None:
    det = detector(tmp_path, SEASONAL.replace("{direction}", "both"))
    assert det.process(sip(*hourly([20] * 12 + [80]))) == []  # hour 12 is still open
    assert len(det.process(sip(tick(13), first_id=5000))) == 1


def test_seasonal_uses_the_same_hour_of_day(tmp_path: Path) -> None:
    # busy at 09:00 every day, quiet otherwise: a busy 09:00 is normal, a busy 03:00 is not
    def day() -> list[int]:
        return [30 if h == 9 else 6 for h in range(24)]

    text = SEASONAL.replace("{direction}", "up").replace("history: 2d", "history: 3d")
    det = detector(tmp_path, text)
    counts = day() + day() + day()[:3] + [30] + day()[4:10]
    matches = run(det, sip(*hourly(counts), tick(len(counts) + 0.5)))
    # without a day of history, 09:00 of days 1 and 2 stands out against the preceding hours
    day3 = [m for m in matches if m.first_seen >= at(48 * HOUR)]
    assert [m.first_seen for m in day3] == [at(51 * HOUR)]  # day 3, 03:00; day 3, 09:00 is normal
    assert day3[0].evidence["baseline"] == "hour_of_day" and day3[0].evidence["baseline_median"] == 6


# --- credit_limit ---------------------------------------------------------------------------------------------

CREDIT = """
    id: credit
    type: credit_limit
    source: cdrs
    key: customer_account
    window: 1h
    horizon: 2h
    warning: 0.8
    critical: 1.0
    action: lock_account
"""


def cdrs(*rows: dict[str, object]) -> pl.DataFrame:
    return Enricher(())("cdrs", events("cdrs", rows))


def call(t: float, account: str, fee: float) -> dict[str, object]:
    return {"t": t, "customer_account": account, "fee": fee, "hold_seconds": 60, "callee_e164": "441234567890"}


def credit_detector(tmp_path: Path) -> Any:
    ctx = Context(lists_dir(tmp_path), credit={"fast": 100.0, "slow": 100.0, "broke": 0.0})
    return detector(tmp_path, CREDIT, ctx)


def test_credit_breach_is_critical_and_projection_is_warning(tmp_path: Path) -> None:
    det = credit_detector(tmp_path)
    frame = cdrs(*(call(600 * i, "fast", 20) for i in range(6)))
    (m,) = run(det, frame)
    # t=600: spent 40, the last hour burnt 40 -> +80 within 2 h: warning; t=2400: spent 100 = limit: critical
    assert m.key == "fast" and m.key_type == "account" and m.severity == "critical"
    assert m.detected_at == at(600) and m.value == pytest.approx(1.2)
    assert m.count == 5 and m.evidence["spent"] == 120 and m.evidence["available"] == 100


def test_credit_projection_alone_is_a_warning(tmp_path: Path) -> None:
    det = credit_detector(tmp_path)
    (m,) = run(det, cdrs(call(0, "fast", 30), call(600, "fast", 30)))
    assert m.severity == "warning" and m.detected_at == at(600) and m.value == 0.8


def test_credit_slow_spend_is_quiet_and_unknown_accounts_ignored(tmp_path: Path) -> None:
    det = credit_detector(tmp_path)
    frame = cdrs(*(call(HOUR * i, "slow", 5) for i in range(8)), *(call(i, "unknown", 500) for i in range(3)))
    assert run(det, frame) == []


def test_credit_spend_carries_across_batches(tmp_path: Path) -> None:
    det = credit_detector(tmp_path)
    first = det.process(cdrs(*(call(HOUR * 3 * i, "slow", 30) for i in range(3))))  # 90 over 6 h
    assert [m.severity for m in first] == ["warning"]  # from 3 h on: 60 spent, 60 more within the horizon
    (m,) = det.process(cdrs(call(HOUR * 9, "slow", 10)))
    assert m.severity == "critical" and m.value == pytest.approx(1.0) and m.detected_at == at(9 * HOUR)


def test_credit_nothing_available_is_critical_at_the_first_fee(tmp_path: Path) -> None:
    det = credit_detector(tmp_path)
    (m,) = run(det, cdrs(call(0, "broke", 0.5)))
    assert m.severity == "critical"
    assert m.value == NO_CREDIT  # finite: it is stored, and written as JSON


def test_credit_evidence_is_as_at_the_last_hot_cdr_however_the_batches_are_cut(tmp_path: Path) -> None:
    """A warning (projected breach), then two small calls that are not hot: the match's spend and burn rate are
    those at its last hot CDR, whether the quiet calls came in its batch or after it."""
    rows = [call(0, "fast", 30), call(600, "fast", 30), call(4 * HOUR, "fast", 1), call(8 * HOUR, "fast", 1)]
    whole = credit_detector(tmp_path).process(cdrs(*rows))
    det = credit_detector(tmp_path)
    cut = det.process(cdrs(*rows[:2])) + det.process(cdrs(*rows[2:]))
    assert [m.evidence for m in whole] == [m.evidence for m in cut]
    assert whole[0].evidence["spent"] == 60 and whole[0].evidence["burn_per_hour"] == 60


NEW_COUNTRY = """
    id: account-new-country
    type: new_term
    source: cdrs
    key: customer_account
    terms: [src_country]
    learn_unknown: {unknown}
    learn: 2h
    warning: 1
"""


def test_a_key_seen_only_without_a_term_learns_that_and_keeps_it_through_the_sweeps(tmp_path: Path) -> None:
    """learn_unknown: an account calling from addresses without a country for hours, batch after batch (while
    another account's calls make the detector sweep its memory), then from Sweden: a new country. Without
    learn_unknown it is only being born then, and learns Sweden silently."""
    got = {}
    for unknown in ("true", "false"):
        det = detector(tmp_path, NEW_COUNTRY.format(unknown=unknown))
        out = []
        for h in range(6):
            out += det.process(cdrs({"t": h * HOUR, "customer_account": "dark", "caller_ip": "198.51.100.7"},
                                    {"t": h * HOUR + 1, "customer_account": "lit", "caller_ip": "81.2.69.142"}))
        out += det.process(cdrs({"t": 6 * HOUR, "customer_account": "dark", "caller_ip": "89.160.20.112"}))
        got[unknown] = [(m.key, m.evidence["new_terms"]) for m in out]
    assert got == {"true": [("dark", [["SE"]])], "false": []}
