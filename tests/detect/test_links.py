"""An alert's links (fraudwatch.detect.runners.links): the addresses and accounts of its first events, read from
the store; a trusted network's address is never one (a trunk carries every customer's calls)."""

from __future__ import annotations

import datetime as dt

import duckdb

from fraudwatch.detect.decide import Alert
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.links import LINKED, add_links
from fraudwatch.netaddr import parse_networks

RULES = {k: r.common for k, r in load_rules([]).rules.items()}
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _alert(rule: str, key_type: str, key: str, **evidence: object) -> Alert:
    return Alert(1, rule, "warning", key_type, key, T0, T0, T0, 1, 1.0, "alert", False, False, "", dict(evidence))


def test_links_name_the_first_events_addresses_and_accounts_but_no_trusted_address() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE sip_events (id BIGINT, src_ip VARCHAR, username VARCHAR, account VARCHAR)")
    con.executemany("INSERT INTO sip_events VALUES (?, ?, ?, ?)",
                    [[1, "192.0.2.10", "441200000001", "10019"], [2, "203.0.113.5", "441200000001", "10019"],
                     [3, "192.0.2.11", None, None], *([i, "198.51.100.9", "x", None] for i in range(4, 12))])
    calls = _alert("high-risk-calls-account", "account", "10019", ids=[1, 2, 3])
    add_links(con, RULES, [calls], parse_networks(["203.0.113.0/25"]))
    assert calls.evidence["links"] == {"ips": ["192.0.2.10", "192.0.2.11"], "accounts": ["10019", "441200000001"],
                                       "read": 3}
    calls.evidence["ids"] = list(range(1, 12))  # the alert grew: its links are read again, up to LINKED events
    add_links(con, RULES, [calls], ())
    assert calls.evidence["links"]["read"] == LINKED
    assert "203.0.113.5" in calls.evidence["links"]["ips"] and "198.51.100.9" in calls.evidence["links"]["ips"]


def test_switch_wide_alerts_and_alerts_without_events_have_no_links() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE sip_events (id BIGINT, src_ip VARCHAR, username VARCHAR, account VARCHAR)")
    switch = _alert("registration-burst", "global", "*", ids=[1])
    bare = _alert("auth-failures-ip", "ip", "192.0.2.1")
    add_links(con, RULES, [switch, bare])
    assert "links" not in switch.evidence and "links" not in bare.evidence
