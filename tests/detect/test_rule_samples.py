"""Every shipped rule carries annotated samples (fail2ban's failJSON discipline): at least one that must raise an
alert and one that must not, and each sample gives exactly the severity it says."""

from __future__ import annotations

from typing import Any

import pytest

from fraudwatch.detect.base import Context
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.samples import BASE, SampleError, expand, run_sample
from fraudwatch.rulesdir import shipped_rules_dir

RULES: dict[str, Any] = load_rules().rules
SAMPLES = [(rid, s.name) for rid, rule in RULES.items() for s in rule.common.samples]


def test_rules_are_shipped() -> None:
    assert len(RULES) >= 20


@pytest.mark.parametrize("rule_id", sorted(RULES))
def test_rule_has_positive_and_negative_samples(rule_id: str) -> None:
    expects = [s.expect for s in RULES[rule_id].common.samples]
    assert any(e != "none" for e in expects), f"{rule_id}: no sample that must alert (expect: warning/critical)"
    assert "none" in expects, f"{rule_id}: no sample that must stay quiet (expect: none)"


@pytest.mark.parametrize(("rule_id", "name"), SAMPLES, ids=[f"{r}:{n}" for r, n in SAMPLES])
def test_sample_gives_its_expected_severity(rule_id: str, name: str) -> None:
    rule = RULES[rule_id]
    sample = next(s for s in rule.common.samples if s.name == name)
    got = run_sample(rule, sample, Context(shipped_rules_dir() / "lists"))
    assert got == sample.expect, f"{rule_id} / {name} ({sample.where}): expected {sample.expect}, got {got}"


def test_expand_types_times_and_templates() -> None:
    frame, credit = expand("sip_events", [
        {"credit": {"10001": 5}},
        {"repeat": 3, "every": 2, "event": "request", "username": "u{i}-{i%2}", "status": 401},
        {"event": "response", "src_ip": "192.0.2.1"},  # without `at`: `every` (1 s) after the previous item
    ])
    assert credit == {"10001": 5.0}
    assert frame.get_column("username").to_list() == ["u0-0", "u1-1", "u2-0", None]
    assert [(t - BASE).total_seconds() for t in frame.get_column("ts")] == [0, 2, 4, 5]
    assert frame.get_column("id").to_list() == [1, 2, 3, 4]
    assert str(frame.schema["ts"]) == "Datetime(time_unit='us', time_zone='UTC')"
    cdrs, _ = expand("cdrs", [{"at": 60, "hold_seconds": 30, "fee": 1.25, "customer_account": 10001}])
    row = cdrs.row(0, named=True)
    assert (row["stop_time"] - row["start_time"]).total_seconds() == 30
    assert row["customer_account"] == "10001" and str(row["fee"]) == "1.2500"


def test_expand_rejects_unknown_columns() -> None:
    with pytest.raises(SampleError, match="not columns of sip_events: usrname"):
        expand("sip_events", [{"usrname": "1001"}])
