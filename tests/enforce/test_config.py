"""`[firewall]` parsing: defaults, every key, and errors naming file:line:reason."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from fraudwatch.config import parse_config
from fraudwatch.config.firewall import FirewallConfig, RuleTTL, ttl_seconds
from fraudwatch.errors import ConfigError

P = Path("/etc/fraudwatch/fraudwatch.toml")


def test_defaults_are_safe() -> None:
    fw = parse_config(P, "").firewall
    assert fw == FirewallConfig()
    assert fw.backend == "dry-run" and not fw.unban_on_stop and fw.scope == "sip-ports"
    assert fw.ports == (5060, 5061) and fw.protocols == ("udp", "tcp")
    assert fw.ban_evidence and fw.full_policy == "evict" and fw.customer_window == 86400  # spoof-resistant, bounded


def test_every_key() -> None:
    fw = parse_config(P, """
[firewall]
backend = "ipset"
table = "fw"
set = "fwset"
chain = "FWCHAIN"
scope = "all"
ports = [5080, 5060]
protocols = ["udp"]
priority = -150
ttl_warning = "30m"
ttl_critical = 7200
ttl_manual = "1d"
ttl_max = "2w"
escalation_factor = 3
escalation_window = "7d"
ipv6_prefix = 64
allow = ["192.0.2.10", "2001:db8::/64"]
allow_host_addresses = false
report_only = ["new-rule"]
maxelem = 1000000
kernel_timeout_max = "1d"
reconcile_interval = "5m"
unban_on_stop = true
full_policy = "aggregate"
full_at = 80
ban_evidence = false
customer_window = "2h"

[firewall.rule_ttl]
scanner = "6h"
sip-bruteforce = { critical = "3d" }
""").firewall
    assert fw.backend == "ipset" and (fw.table, fw.set, fw.chain) == ("fw", "fwset", "FWCHAIN")
    assert fw.scope == "all" and fw.ports == (5060, 5080) and fw.protocols == ("udp",) and fw.priority == -150
    assert (fw.ttl_warning, fw.ttl_critical, fw.ttl_manual, fw.ttl_max) == (1800, 7200, 86400, 14 * 86400)
    assert (fw.escalation_factor, fw.escalation_window, fw.ipv6_prefix) == (3.0, 7 * 86400, 64)
    assert fw.allow == (ipaddress.ip_network("192.0.2.10/32"), ipaddress.ip_network("2001:db8::/64"))
    assert not fw.allow_host_addresses and fw.report_only == ("new-rule",) and fw.maxelem == 1_000_000
    assert (fw.kernel_timeout_max, fw.reconcile_interval, fw.unban_on_stop) == (86400, 300, True)
    assert (fw.full_policy, fw.full_at, fw.ban_evidence, fw.customer_window) == ("aggregate", 80, False, 7200)
    assert fw.rule_ttl == {"scanner": RuleTTL(21600, 21600), "sip-bruteforce": RuleTTL(1800, 3 * 86400)}
    assert fw.ttl_for("sip-bruteforce", "critical") == 3 * 86400 and fw.ttl_for("other", "warning") == 1800


@pytest.mark.parametrize(("body", "line", "reason"), [
    ('backend = "nft"', 3, "'backend' must be one of nftables, ipset, iptables, dry-run"),
    ('tabel = "x"', 3, "unknown key 'tabel' in [firewall]"),
    ('table = "fw; flush ruleset"', 3, "'table' must be a name"),
    ('set = "a b"', 3, "'set' must be a name"),
    ("ports = [5060, 70000]", 3, "'ports' must be a non-empty list of port numbers"),
    ("ports = []", 3, "'ports' must be a non-empty list"),
    ('protocols = ["icmp"]', 3, "'protocols' must be a non-empty list of udp, tcp, sctp"),
    ('scope = "everything"', 3, "'scope' must be one of sip-ports, all"),
    ('ttl_warning = "-1h"', 3, "'ttl_warning' must be a positive duration"),
    ("ttl_critical = 0", 3, "'ttl_critical' must be a positive duration"),
    ("escalation_factor = 0.5", 3, "'escalation_factor' must be a number from 1"),
    ("ipv6_prefix = 16", 3, "'ipv6_prefix' must be a whole number from 32 to 128"),
    ('allow = ["192.0.2.300"]', 3, "'192.0.2.300' is not an IP address or network"),
    ("maxelem = 0", 3, "'maxelem' must be a whole number"),
    ('unban_on_stop = "no"', 3, "'unban_on_stop' must be true or false"),
    ('backend = "ipset"\nkernel_timeout_max = "30d"', 4, "'kernel_timeout_max' must be at most 2147483 s"),
    ('report_only = "rule"', 3, "'report_only' must be a list of rule ids"),
    ('full_policy = "refuse"', 3, "'full_policy' must be one of evict, aggregate"),
    ("full_at = 10", 3, "'full_at' must be a whole number from 50 to 100"),
    ('ban_evidence = "yes"', 3, "'ban_evidence' must be true or false"),
    ('customer_window = "forever"', 3, "'customer_window' must be a positive duration"),
])
def test_errors_name_file_line_and_reason(body: str, line: int, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(P, f"# comment\n[firewall]\n{body}\n")
    assert str(info.value).startswith(f"{P}:{line}: {reason}"), str(info.value)


def test_rule_ttl_errors() -> None:
    with pytest.raises(ConfigError, match=r":4: 'scanner' must be a duration"):
        parse_config(P, '[firewall]\nbackend = "nftables"\n[firewall.rule_ttl]\nscanner = "soon"\n')
    with pytest.raises(ConfigError, match=r":2: 'x': unknown key 'warn'"):
        parse_config(P, '[firewall]\nrule_ttl = { x = { warn = "1h" } }\n')


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90), ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1w", 604800),
    (" 5 m ", 300), ("0", None), (0, None), (-5, None), ("1.5h", None), ("1y", None), (True, None), (None, None),
    ("1h;reboot", None),
])
def test_ttl_seconds(text: object, seconds: int | None) -> None:
    assert ttl_seconds(text) == seconds
