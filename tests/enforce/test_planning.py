"""Ban planning without a backend or a store (fraudwatch.enforce.planning): the facts test_enforcer.py checks
through an enforcer — TTLs, escalation, extension, report-only, the allowlist, IPv6 /64, supersession, set
capacity, an early ban's alert — as functions of the bans in memory, the decisions and the time."""

from __future__ import annotations

import ipaddress
import logging

from fraudwatch.config.firewall import FirewallConfig, RuleTTL
from fraudwatch.detect.runners.early import Decision
from fraudwatch.enforce.backends.base import Entry
from fraudwatch.enforce.index import BanIndex
from fraudwatch.enforce.planning import EARLY, Plan, plan_alerts, plan_reconcile, ttl
from fraudwatch.enforce.state import Ban
from fraudwatch.enforce.targets import Allowlist, parse_target
from tests.enforce.helpers import T0, alert

TRUSTED = [ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:5::7/128")]
HOST = [ipaddress.ip_network("203.0.113.250/32")]
NOW = T0.timestamp()
HOUR = 3600
NO_CAP: dict[int, int | None] = {4: None, 6: None}


def plan(alerts: list, cfg: FirewallConfig | None = None, active: BanIndex | None = None,  # type: ignore[type-arg]
         prior: dict[str, int] | None = None, t_now: float = NOW, caps: dict[int, int | None] = NO_CAP,
         next_id: int = 1) -> Plan:
    cfg = cfg or FirewallConfig()
    allowlist = Allowlist.build(TRUSTED, cfg.allow, HOST)
    return plan_alerts(alerts, t_now, cfg, allowlist, active if active is not None else BanIndex(),
                       prior if prior is not None else {}, next_id, caps)


def test_ttl_by_severity_and_rule() -> None:
    cfg = FirewallConfig(ttl_warning=3600, ttl_critical=86400, rule_ttl={"scanner": RuleTTL(600, 7200)})
    p = plan([alert(1, "192.0.2.1"), alert(2, "192.0.2.2", severity="critical"),
              alert(3, "192.0.2.3", rule="scanner"), alert(4, "192.0.2.4", rule="scanner", severity="critical")],
             cfg)
    assert p.out[1] == "banned 192.0.2.1 until 2026-11-26 13:00 UTC (level 1)"
    assert p.out[2] == "banned 192.0.2.2 until 2026-11-27 12:00 UTC (level 1)"
    assert p.out[3] == "banned 192.0.2.3 until 2026-11-26 12:10 UTC (level 1)"
    assert p.out[4] == "banned 192.0.2.4 until 2026-11-26 14:00 UTC (level 1)"
    first = p.new[0]
    assert (first.id, first.net.text, first.source, first.rule, first.alert_id, first.level) == \
        (1, "192.0.2.1", "rule", "sip-bruteforce", 1, 1)
    assert p.entries == [Entry(parse_target(f"192.0.2.{i}"), t) for i, t in ((1, 3600), (2, 86400), (3, 600),
                                                                                (4, 7200))]
    assert p.next_id == 5


def test_only_ban_ip_alerts_act() -> None:
    p = plan([alert(1, "192.0.2.1", action="alert"), alert(2, "1001", action="lock_account"),
              alert(3, "1001", key_type="account")])
    assert p.out == {3: "not banned: the key is an account, not an address"}
    assert not p.new and not p.entries


def test_escalation_for_repeat_offenders_is_capped() -> None:
    cfg = FirewallConfig(ttl_warning=3600, escalation_factor=4.0, ttl_max=10 * HOUR)
    assert [ttl(cfg, 3600, level) for level in (1, 2, 3, 4)] == [HOUR, 4 * HOUR, 10 * HOUR, 10 * HOUR]
    prior: dict[str, int] = {}
    levels = []
    for i in range(4):  # each ban over (an empty index) before the next alert: escalation counts separate bans
        p = plan([alert(i + 1, "192.0.2.9")], cfg, prior=prior)
        levels.append(p.out[i + 1].rsplit("(", 1)[1])
        assert p.new[0].expires - NOW == [HOUR, 4 * HOUR, 10 * HOUR, 10 * HOUR][i]
    assert levels == ["level 1)", "level 2)", "level 3)", "level 4)"]
    assert prior == {"192.0.2.9": 4}


def test_repeat_alert_while_banned_extends_or_reports() -> None:
    cfg = FirewallConfig(ttl_warning=3600, ttl_critical=86400)
    active = BanIndex()
    plan([alert(1, "192.0.2.1")], cfg, active)
    p = plan([alert(1, "192.0.2.1"), alert(2, "192.0.2.1|other-user")], cfg, active, t_now=NOW + HOUR / 2)
    assert p.out[1] == "extended ban #1 on 192.0.2.1 until 2026-11-26 13:30 UTC"
    assert p.out[2].startswith("already banned: 192.0.2.1 until 2026-11-26 13:30 UTC (ban #1)")
    p = plan([alert(1, "192.0.2.1", severity="critical")], cfg, active, t_now=NOW + HOUR / 2)
    assert p.out[1].startswith("extended ban #1 on 192.0.2.1 until 2026-11-27 12:30")
    assert not p.new and len(active) == 1


def test_report_only_by_rule_and_by_alert() -> None:
    p = plan([alert(1, "192.0.2.1", rule="new-rule"), alert(2, "192.0.2.2", report_only=True)],
             FirewallConfig(report_only=("new-rule",)))
    assert p.out[1] == "report-only: would ban 192.0.2.1 for 1h (level 1)"
    assert p.out[2] == "report-only: would ban 192.0.2.2 for 1h (level 1)"
    assert not p.new and not p.entries


def test_allowlist_always_wins() -> None:
    cfg = FirewallConfig(allow=(ipaddress.ip_network("192.0.2.200/32"),))
    cases = {"198.51.100.7": "trusted network 198.51.100.0/24",
             "::ffff:198.51.100.7": "trusted network 198.51.100.0/24",
             "192.0.2.200": "allowlisted network 192.0.2.200/32 ([firewall] allow)",
             "203.0.113.250": "this host's own address 203.0.113.250",
             "127.0.0.1": "special-purpose network 127.0.0.0/8",
             "fe80::1": "special-purpose network fe80::/10"}
    keys = list(cases)
    p = plan([alert(i, key) for i, key in enumerate(keys, 1)], cfg)
    assert p.out == {i: f"not banned: {cases[key]}" for i, key in enumerate(keys, 1)}
    assert p.refused == [(key, f"not banned: {cases[key]}", logging.WARNING) for key in keys]
    assert not p.new


def test_ipv6_aggregation_to_64_with_fallback() -> None:
    active = BanIndex()
    p = plan([alert(1, "2001:db8:1:2::abcd"), alert(2, "2001:db8:1:2::1"), alert(3, "2001:db8:5::99")],
             FirewallConfig(ipv6_prefix=64), active)
    assert p.out[1].startswith("banned 2001:db8:1:2::/64 ")
    assert p.out[2].startswith("already banned: 2001:db8:1:2::/64")
    assert p.out[3].startswith("banned 2001:db8:5::99 ")  # its /64 holds trusted 2001:db8:5::7
    assert {str(n) for n in active} == {"2001:db8:1:2::/64", "2001:db8:5::99"}


def test_a_network_ban_supersedes_the_bans_inside_it() -> None:
    active = BanIndex()
    plan([alert(1, "2001:db8:1:2::7")], FirewallConfig(), active)  # a single address first
    p = plan([alert(2, "2001:db8:1:2::8")], FirewallConfig(ipv6_prefix=64), active, next_id=2)
    assert p.out[2].startswith("banned 2001:db8:1:2::/64 ")
    assert [b.net.text for b in p.superseded] == ["2001:db8:1:2::7"]
    assert {str(n) for n in active} == {"2001:db8:1:2::/64"}
    assert plan([alert(3, "2001:db8:1:2::9")], FirewallConfig(), active).out[3].startswith(
        "already banned: 2001:db8:1:2::/64")


def test_set_capacity_makes_room_beyond_maxelem() -> None:
    p = plan([alert(1, "192.0.2.1"), alert(2, "192.0.2.2"), alert(3, "192.0.2.3"), alert(4, "2001:db8::3")],
             caps={4: 2, 6: 2})
    assert p.out[3].startswith("banned 192.0.2.3")
    assert p.out[1].startswith("not banned after all: banned 192.0.2.1 ")
    assert [b.net.text for b in p.new] == ["192.0.2.2", "192.0.2.3", "2001:db8::3"]
    assert [e.net.text for e in p.entries] == ["192.0.2.2", "192.0.2.3", "2001:db8::3"]
    assert p.evicted == [] and p.made_room == ["evicted ban #1 on 192.0.2.1 (level 1)"]
    assert p.out[4].startswith("banned 2001:db8::3")


def test_aggregating_makes_room_and_a_new_address_inside_is_already_banned() -> None:
    cfg = FirewallConfig(full_policy="aggregate", full_at=100)
    active = BanIndex()
    first = plan([alert(1, "192.0.2.1"), alert(2, "192.0.2.2"), alert(3, "203.0.113.1")], cfg, active,
                 caps={4: 3, 6: 3})
    assert len(first.new) == 3 and not first.made_room
    p = plan([alert(4, "192.0.2.3"), alert(5, "203.0.113.77")], cfg, active, caps={4: 3, 6: 3}, next_id=4)
    assert p.made_room == ["aggregated 2 bans into 192.0.2.0/24"]
    assert p.out[4].startswith("already banned: 192.0.2.0/24 until ")
    assert [b.net.text for b in p.superseded] == ["192.0.2.1", "192.0.2.2"]
    assert p.out[5].startswith("banned 203.0.113.77")  # the aggregation left room for it
    assert p.evicted == [] and {str(n) for n in active} == {"192.0.2.0/24", "203.0.113.1", "203.0.113.77"}
    # 203.0.113.0/24 holds two host bans but also a recent customer: never aggregated, the oldest is evicted
    p = plan_alerts([alert(6, "203.0.113.200")], NOW, cfg, Allowlist.build(TRUSTED, (), HOST), active, {}, 6,
                    {4: 3, 6: 3}, None, {"203.0.113.9"})
    assert p.out[6].startswith("banned 203.0.113.200")
    assert p.made_room == ["evicted ban #3 on 203.0.113.1 (level 1)"]
    assert {str(n) for n in active} == {"192.0.2.0/24", "203.0.113.77", "203.0.113.200"}


def test_an_early_ban_is_the_ban_of_its_rules_alert() -> None:
    cfg = FirewallConfig(ttl_critical=86400)
    active = BanIndex()
    decide = [Decision("sip-bruteforce", "192.0.2.9", "critical", 15.0, T0, "brute force"),
              Decision("sip-bruteforce", "198.51.100.9", "critical", 15.0, T0, "brute force")]
    p = plan(decide, cfg, active)
    assert p.out == {-1: "banned 192.0.2.9 until 2026-11-27 12:00 UTC (level 1)",
                     -2: "not banned: trusted network 198.51.100.0/24"}
    assert [(b.source, b.alert_id) for b in p.new] == [(EARLY, None)]
    p = plan([alert(7, "192.0.2.9", severity="critical")], cfg, active, t_now=NOW + 2, next_id=2)
    assert p.out[7] == ("banned 192.0.2.9 until 2026-11-27 12:00 UTC (level 1; ban #1, decided early on the log's "
                        "newest lines, 2.0 s before this alert)")
    assert [(b.id, b.alert_id, b.expires - NOW) for b in p.linked] == [(1, 7, 86402)]
    p = plan([alert(8, "192.0.2.9", severity="critical", rule="scanner")], cfg, active, t_now=NOW + 2)
    assert p.out[8].startswith(("already banned", "extended")) and not p.linked


def test_reconcile_restores_renews_and_removes_stale() -> None:
    active = BanIndex.of([Ban(1, parse_target("192.0.2.1"), 1, NOW + HOUR, NOW),
                          Ban(2, parse_target("192.0.2.2"), 1, NOW + HOUR, NOW),
                          Ban(3, parse_target("192.0.2.3"), 1, NOW + 86400, NOW)])
    kernel: dict = {parse_target("192.0.2.2"): float(HOUR), parse_target("192.0.2.3"): 100.0,  # type: ignore[type-arg]
                    parse_target("192.0.2.99"): 500.0, parse_target("192.0.2.98"): 3.0}
    p = plan_reconcile(active, kernel, NOW, margin=130, timeouts=True, kernel_max=3600)
    assert (p.added, p.renewed) == (1, 1)  # .1 lost from the kernel; .3 close to its (capped) timeout
    assert sorted(p.add) == [Entry(parse_target("192.0.2.1"), 3600), Entry(parse_target("192.0.2.3"), 3600)]
    assert p.remove == [parse_target("192.0.2.99")]  # nobody's; .98 is left to lapse
    without = plan_reconcile(active, kernel, NOW, margin=130, timeouts=False, kernel_max=3600)
    assert without.renewed == 0 and [e.net.text for e in without.add] == ["192.0.2.1"]

