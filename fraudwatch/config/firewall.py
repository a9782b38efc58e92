"""The `[firewall]` section: which backend, the names it owns, what it drops, and how long bans last.

Parsed by `parse_firewall`, called from `fraudwatch.config.parse_config`; every error names file:line:reason.
Durations here are whole seconds: the kernel's set timeouts count seconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fraudwatch.errors import ConfigError
from fraudwatch.netaddr import IPNetwork, parse_networks
from fraudwatch.tomldoc import DURATION_HINT, Document, check_keys, parse_duration

BACKENDS = ("nftables", "ipset", "iptables", "dry-run")
SCOPES = ("sip-ports", "all")
PROTOCOLS = ("udp", "tcp", "sctp")
FULL_POLICIES = ("evict", "aggregate")  # what a nearly full set does (fraudwatch.enforce.capacity)
# ipset's timeout is a 32-bit count of seconds of which the kernel keeps 2^31/1000 (fail2ban#1320, #2720)
IPSET_MAX_TIMEOUT = 2_147_483
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")


def ttl_seconds(value: object) -> int | None:
    """Whole seconds from 90, "90", "90s", "15m", "1h", "2d", "1w"; None when it is not a positive duration."""
    try:
        return int(parse_duration(value, whole=True))
    except ValueError:
        return None


@dataclass(frozen=True)
class RuleTTL:
    warning: int
    critical: int


@dataclass(frozen=True)
class FirewallConfig:
    backend: str = "dry-run"
    table: str = "fraudwatch"  # nftables: our own `table inet <table>`
    set: str = "fraudwatch"  # set name stem: <set>4, <set>6 (+ <set>4net, <set>6net for nftables networks)
    chain: str = "FRAUDWATCH"  # iptables/ip6tables chain (ipset and iptables backends), jumped to from INPUT
    scope: str = "sip-ports"  # sip-ports: drop only to `ports`; all: drop everything from a banned source
    ports: tuple[int, ...] = (5060, 5061)
    protocols: tuple[str, ...] = ("udp", "tcp")
    priority: int = -10  # nftables input hook priority (filter is 0: ours runs first)
    ttl_warning: int = 3600
    ttl_critical: int = 86400
    ttl_manual: int = 86400  # `bans add` without --ttl
    ttl_max: int = 30 * 86400  # escalation never goes beyond
    escalation_factor: float = 2.0  # each earlier ban of the same source within the window multiplies the TTL
    escalation_window: int = 30 * 86400
    ipv6_prefix: int = 128  # 64: an IPv6 offender's whole /64 is banned
    allow: tuple[IPNetwork, ...] = ()  # admin addresses and networks: never banned (beside [trusted] networks)
    allow_host_addresses: bool = True  # the host's own addresses are never banned
    report_only: tuple[str, ...] = ()  # rule ids on trial: say what would be banned, ban nothing
    rule_ttl: dict[str, RuleTTL] = field(default_factory=dict)
    maxelem: int = 262_144  # the ban set's size, per family, in every backend (nftables `size`, ipset `maxelem`)
    full_policy: str = "evict"  # nearly full: evict the soonest-expiring lowest-level bans, or aggregate to a prefix
    full_at: int = 95  # percent of maxelem at which the full policy starts
    ban_evidence: bool = True  # a recent customer's address is banned only on evidence it really sent the lines
    customer_window: int = 86400  # "recent": a successful registration or call within this time
    kernel_timeout_max: int = 7 * 86400  # longer bans are re-asserted by reconcile before the kernel drops them
    reconcile_interval: int = 60
    unban_on_stop: bool = False

    def ttl_for(self, rule: str | None, severity: str | None) -> int:
        override = self.rule_ttl.get(rule or "")
        if severity == "critical":
            return override.critical if override else self.ttl_critical
        return override.warning if override else self.ttl_warning


ALLOWED_KEYS = {
    "backend", "table", "set", "chain", "scope", "ports", "protocols", "priority", "ttl_warning", "ttl_critical",
    "ttl_manual", "ttl_max", "escalation_factor", "escalation_window", "ipv6_prefix", "allow",
    "allow_host_addresses", "report_only", "rule_ttl", "maxelem", "kernel_timeout_max", "reconcile_interval",
    "unban_on_stop", "full_policy", "full_at", "ban_evidence", "customer_window",
}


def parse_firewall(raw: dict[str, Any], doc: Document) -> FirewallConfig:
    """The typed `[firewall]` table (defaults when absent)."""
    t = "firewall"
    sec = raw.get(t, {})
    if not isinstance(sec, dict):
        raise doc.error("'firewall' must be a table ([firewall])", None, t)
    check_keys(sec, ALLOWED_KEYS, doc, t)
    d = FirewallConfig()

    def choice(key: str, options: tuple[str, ...], default: str) -> str:
        value = sec.get(key, default)
        if value not in options:
            raise doc.error(f"'{key}' must be one of {', '.join(options)} (got {value!r})", t, key)
        return str(value)

    def name(key: str, default: str) -> str:
        value = sec.get(key, default)
        if not isinstance(value, str) or not _NAME.match(value):
            raise doc.error(f"'{key}' must be a name of letters, digits and _ (at most 24, starting with a letter)",
                            t, key)
        return value

    def duration(key: str, default: int) -> int:
        if key not in sec:
            return default
        seconds = ttl_seconds(sec[key])
        if seconds is None:
            raise doc.error(f"'{key}' must be a positive duration in whole seconds ({DURATION_HINT}); "
                            f"got {sec[key]!r}", t, key)
        return seconds

    def integer(key: str, default: int, lo: int, hi: int) -> int:
        value = sec.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise doc.error(f"'{key}' must be a whole number from {lo} to {hi}", t, key)
        return value

    def boolean(key: str, default: bool) -> bool:
        value = sec.get(key, default)
        if not isinstance(value, bool):
            raise doc.error(f"'{key}' must be true or false", t, key)
        return value

    backend = choice("backend", BACKENDS, d.backend)
    ports = sec.get("ports", list(d.ports))
    if (not isinstance(ports, list) or not ports
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports)):
        raise doc.error("'ports' must be a non-empty list of port numbers (1-65535)", t, "ports")
    protocols = sec.get("protocols", list(d.protocols))
    if not isinstance(protocols, list) or not protocols or not all(p in PROTOCOLS for p in protocols):
        raise doc.error(f"'protocols' must be a non-empty list of {', '.join(PROTOCOLS)}", t, "protocols")
    factor = sec.get("escalation_factor", d.escalation_factor)
    if not isinstance(factor, int | float) or isinstance(factor, bool) or not 1.0 <= factor <= 100.0:
        raise doc.error("'escalation_factor' must be a number from 1 (no escalation) to 100", t,
                        "escalation_factor")
    allow_raw = sec.get("allow", [])
    if not isinstance(allow_raw, list) or not all(isinstance(a, str) for a in allow_raw):
        raise doc.error("'allow' must be a list of addresses or CIDR networks", t, "allow")
    try:
        allow = tuple(parse_networks(allow_raw))
    except ValueError as exc:
        raise doc.error(str(exc), t, "allow") from None
    report_only = sec.get("report_only", [])
    if not isinstance(report_only, list) or not all(isinstance(r, str) and r for r in report_only):
        raise doc.error("'report_only' must be a list of rule ids", t, "report_only")
    ipv6_prefix = integer("ipv6_prefix", d.ipv6_prefix, 32, 128)
    ttl_warning = duration("ttl_warning", d.ttl_warning)
    ttl_critical = duration("ttl_critical", d.ttl_critical)
    kernel_max = duration("kernel_timeout_max", d.kernel_timeout_max)
    if backend == "ipset" and kernel_max > IPSET_MAX_TIMEOUT:
        raise doc.error(f"'kernel_timeout_max' must be at most {IPSET_MAX_TIMEOUT} s with ipset", t,
                        "kernel_timeout_max")
    return FirewallConfig(
        backend=backend,
        table=name("table", d.table),
        set=name("set", d.set),
        chain=name("chain", d.chain),
        scope=choice("scope", SCOPES, d.scope),
        ports=tuple(sorted(set(ports))),
        protocols=tuple(dict.fromkeys(protocols)),
        priority=integer("priority", d.priority, -400, 400),
        ttl_warning=ttl_warning,
        ttl_critical=ttl_critical,
        ttl_manual=duration("ttl_manual", d.ttl_manual),
        ttl_max=duration("ttl_max", d.ttl_max),
        escalation_factor=float(factor),
        escalation_window=duration("escalation_window", d.escalation_window),
        ipv6_prefix=ipv6_prefix,
        allow=allow,
        allow_host_addresses=boolean("allow_host_addresses", d.allow_host_addresses),
        report_only=tuple(report_only),
        rule_ttl=_rule_ttl(sec, doc, ttl_warning, ttl_critical),
        maxelem=integer("maxelem", d.maxelem, 1, 1 << 31),
        full_policy=choice("full_policy", FULL_POLICIES, d.full_policy),
        full_at=integer("full_at", d.full_at, 50, 100),
        ban_evidence=boolean("ban_evidence", d.ban_evidence),
        customer_window=duration("customer_window", d.customer_window),
        kernel_timeout_max=kernel_max,
        reconcile_interval=duration("reconcile_interval", d.reconcile_interval),
        unban_on_stop=boolean("unban_on_stop", d.unban_on_stop),
    )


def _rule_ttl(sec: dict[str, Any], doc: Document, warning: int, critical: int) -> dict[str, RuleTTL]:
    """`[firewall.rule_ttl]`: `rule-id = "6h"` (any severity) or `rule-id = { warning = "1h", critical = "2d" }`."""
    t = "firewall.rule_ttl"

    def error(reason: str, key: str) -> ConfigError:
        if doc.line_of(t, key) is not None:
            return doc.error(reason, t, key)
        return doc.error(reason, "firewall", "rule_ttl")  # written inline: rule_ttl = { ... }

    raw = sec.get("rule_ttl", {})
    if not isinstance(raw, dict):
        raise doc.error("'rule_ttl' must be a table of rule id = duration", "firewall", "rule_ttl")
    out: dict[str, RuleTTL] = {}
    for rule, value in raw.items():
        if isinstance(value, dict):
            unknown = set(value) - {"warning", "critical"}
            if unknown:
                raise error(f"'{rule}': unknown key '{sorted(unknown)[0]}' (allowed: critical, warning)", rule)
            w = ttl_seconds(value.get("warning", warning))
            c = ttl_seconds(value.get("critical", critical))
        else:
            w = c = ttl_seconds(value)
        if w is None or c is None:
            raise error(f"'{rule}' must be a duration (\"6h\") or {{ warning = ..., critical = ... }}", rule)
        out[rule] = RuleTTL(w, c)
    return out
