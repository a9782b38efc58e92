"""The incident book (fraudwatch.detect.incidents): how alerts join, what an incident says, and that the result
does not depend on how the alert stream is cut into batches."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import random
from pathlib import Path

import pytest

from fraudwatch.config import load_config
from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incidents import IncidentBook, family
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.batch import run_detect
from tests.test_ingest_sample import copy_sample

T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)
RULES = {k: r.common for k, r in load_rules([]).rules.items()}


def alert(n: int, rule: str, key_type: str, key: str, at: float, until: float | None = None,
          severity: str = "warning", action: str = "alert", **evidence: object) -> Alert:
    t, u = T0 + dt.timedelta(seconds=at), T0 + dt.timedelta(seconds=until if until is not None else at)
    return Alert(n, rule, severity, key_type, key, t, u, t, 1, 1.0, action, False, False, "", dict(evidence))


def test_an_address_and_the_account_it_attacked_are_one_incident() -> None:
    book = IncidentBook(RULES)
    ch = book.apply([alert(1, "auth-failures-ip", "ip", "192.0.2.5", 0, 300, "critical", "ban_ip")])
    assert [c.change for c in ch] == ["opened"]
    ch = book.apply([alert(2, "account-new-address", "account", "441200000001", 60, new_terms=[["192.0.2.5"]])])
    assert [c.change for c in ch] == ["grew"]
    (inc,) = book.incidents()
    assert inc.alert_ids == [1, 2] and inc.kind == "attack" and inc.action == "ban_ip"
    assert inc.ips == ["192.0.2.5"] and inc.accounts == ["441200000001"]


def test_severity_and_action_are_the_strongest_of_the_members_and_escalate() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(1, "high-risk-calls-account", "account", "10019", 0, 60)])
    ch = book.apply([alert(2, "high-risk-spend-account", "account", "10019", 100, 200, "critical", "lock_account")])
    assert [(c.change, c.before) for c in ch] == [("escalated", ("warning", "alert"))]
    (inc,) = book.incidents()
    assert (inc.severity, inc.action, inc.kind) == ("critical", "lock_account", "fraud")


def test_the_same_key_after_a_quiet_spell_is_a_new_incident_and_the_old_one_ended() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(1, "auth-failures-ip", "ip", "192.0.2.5", 0, 60)])
    ended = book.close_quiet(T0 + dt.timedelta(hours=3))
    assert [c.change for c in ended] == ["ended"] and ended[0].incident.ended_at is not None
    book.apply([alert(2, "auth-failures-ip", "ip", "192.0.2.5", 4 * 3600)])
    assert [i.state for i in book.incidents()] == ["ended", "open"]


def test_many_addresses_of_one_rule_family_are_one_campaign_and_unrelated_ones_stay_apart() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(n, "credential-stuffing-ip", "ip", f"198.51.100.{n}", n * 30, n * 30 + 60) for n in (1, 2)])
    assert len(book.incidents()) == 2  # two addresses: not yet a campaign
    ch = book.apply([alert(3, "auth-failures-ip", "ip", "198.51.100.3", 100, 160)])  # same family: bruteforce
    (inc,) = book.incidents()
    assert inc.kind == "campaign" and inc.ips == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert {c.change for c in ch} == {"ended", "grew"}  # the absorbed one says so, and where it went
    assert [c.incident.merged_into for c in ch if c.change == "ended"] == [inc.id]
    book.apply([alert(4, "scanner-user-agent", "ip", "203.0.113.200", 120)])  # another family, no shared evidence
    assert len(book.incidents()) == 2
    assert family(RULES["credential-stuffing-ip"]) == family(RULES["auth-failures-ip"])


def test_switch_wide_alerts_of_one_family_join_within_the_spell() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(1, "registration-keepalive-loss", "global", "*", 0, 600, "critical"),
                alert(2, "registration-burst", "global", "*", 3000, 3600)])
    (inc,) = book.incidents()
    assert inc.kind == "switch" and inc.title.startswith("switch-wide")


def _snapshots(final: Alert, rng: random.Random) -> list[Alert]:
    """Earlier states of an alert, as a stream would show it before `final`: fewer events, lower severity."""
    out = []
    for k in range(rng.randint(0, 2)):
        a = copy.deepcopy(final)
        span = (final.last_seen - final.first_seen) * (k + 1) / 4
        a = dataclasses.replace(a, last_seen=a.first_seen + span, severity="warning", action="alert",
                                evidence={k2: (v[:1] if isinstance(v, list) else v) for k2, v in a.evidence.items()})
        out.append(a)
    return [*out, final]


@pytest.fixture(scope="module")
def sample_alerts(tmp_path_factory: pytest.TempPathFactory) -> list[Alert]:
    from fraudwatch.cli import main

    folder = copy_sample(tmp_path_factory.mktemp("cuts"))
    assert main(["--config", str(folder / "fraudwatch.toml"), "ingest", "--quiet", "--json"]) == 0
    result = run_detect(load_config(folder / "fraudwatch.toml"), None, None, [], dry_run=True)
    return result.alerts


def _final(alerts: list[Alert], batches: list[list[Alert]]) -> list[tuple[object, ...]]:
    book = IncidentBook(RULES, "replay")
    for b in batches:
        book.apply(b)
    book.close_quiet(max(a.last_seen for a in alerts) + dt.timedelta(days=1))
    return sorted((i.id, tuple(i.alert_ids), i.kind, i.severity, i.action, tuple(i.ips), tuple(i.accounts), i.state,
                   i.first_seen, i.last_seen) for i in book.incidents())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_incidents_however_the_stream_is_cut(sample_alerts: list[Alert], seed: int) -> None:
    rng = random.Random(seed)
    whole = _final(sample_alerts, [sample_alerts])
    assert len(whole) >= 10
    stream = sorted((s for a in sample_alerts for s in _snapshots(a, rng)), key=lambda a: (a.last_seen, a.id))
    cuts = sorted(rng.sample(range(1, len(stream)), 25))
    batches = [stream[i:j] for i, j in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _final(sample_alerts, batches) == whole
    one_by_one = [[a] for a in stream]
    assert _final(sample_alerts, one_by_one) == whole


def test_ids_come_from_the_founding_alert_not_a_counter(tmp_path: Path) -> None:
    a = [alert(1, "auth-failures-ip", "ip", "192.0.2.5", 0), alert(2, "auth-failures-ip", "ip", "192.0.2.6", 9000)]
    first = IncidentBook(RULES)
    first.apply(a)
    later = IncidentBook(RULES)
    later.apply([a[1]])  # a replay of a later range: the same id for the same attack
    assert later.incidents()[0].id == first.incidents()[1].id
    assert first.incidents()[0].id.startswith("20261101-")


def test_two_addresses_guessing_one_account_are_two_incidents() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(1, "auth-failures-ip", "ip", "192.0.2.7", 0, 300, links={"ips": ["192.0.2.7"],
                                                                             "accounts": ["441200000009"]}),
                alert(2, "account-new-address", "account", "441200000009", 10, new_terms=[["192.0.2.7"]])])
    book.apply([alert(3, "auth-failures-ip", "ip", "198.51.100.8", 1200, 1500,
                      links={"ips": ["198.51.100.8"], "accounts": ["441200000009"]})])
    assert sorted(i.alert_ids for i in book.incidents()) == [[1, 2], [3]]


def test_one_address_spraying_many_accounts_is_an_attack_not_a_campaign() -> None:
    book = IncidentBook(RULES)
    book.apply([alert(n, "account-guessed-new-address", "account", f"44120000001{n}", n * 5, new_terms=[["192.0.2.9"]])
                for n in range(8)])
    (inc,) = book.incidents()
    assert inc.kind == "attack" and inc.ips == ["192.0.2.9"] and len(inc.accounts) == 8
    assert inc.title.startswith("attack from 192.0.2.9, 8 account(s)")
