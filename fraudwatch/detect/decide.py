"""The decision layer: matches become alerts. One ongoing attack is one alert that updates, not thousands.

An alert is keyed by (rule, key). A match within the rule's `cooldown` of the alert's last event updates it
(counts add up, severity only rises); after a quiet cooldown the next match opens a new alert. Trusted networks
and accounts are never proposed for a ban or a lock: their alerts say `trusted` and propose `alert`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fraudwatch.detect.base import Match
from fraudwatch.netaddr import IPNetwork, parse_ip

SEVERITY_RANK = {"warning": 1, "critical": 2}
MAX_EVIDENCE_IDS = 50


@dataclass
class Alert:
    id: int
    rule: str
    severity: str
    key_type: str
    key: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    detected_at: dt.datetime
    count: int
    value: float
    action: str
    trusted: bool
    report_only: bool
    description: str
    evidence: dict[str, Any] = field(default_factory=dict)
    updates: int = 0

    def as_row(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


class AlertBook:
    """Open alerts by (rule, key); `apply` returns the alerts a batch of matches created or changed."""

    def __init__(self, rules: dict[str, Any], trusted_networks: Sequence[IPNetwork] = (),
                 trusted_accounts: Iterable[str] = (), next_id: int = 1) -> None:
        self.rules = rules
        self.trusted_networks = tuple(trusted_networks)
        self.trusted_accounts = set(trusted_accounts)
        self.open: dict[tuple[str, str], Alert] = {}
        self.next_id = next_id

    def is_trusted(self, key_type: str, key: str) -> bool:
        if key_type == "ip":  # the key's first field is the address, also in a composite key (ip|username)
            addr = parse_ip(key.split("|", 1)[0])
            return addr is not None and any(addr.version == n.version and addr in n for n in self.trusted_networks)
        if key_type == "account":
            return key.split("|", 1)[0] in self.trusted_accounts
        return False

    def apply(self, matches: Iterable[Match]) -> list[Alert]:
        changed: dict[int, Alert] = {}
        for m in sorted(matches, key=lambda m: m.detected_at):
            common = self.rules[m.rule].common
            slot = (m.rule, m.key)
            alert = self.open.get(slot)
            if alert is not None and m.first_seen - alert.last_seen <= dt.timedelta(seconds=common.cooldown):
                self._update(alert, m)
            else:
                alert = self._new(m, common)
                self.open[slot] = alert
            changed[alert.id] = alert
        return list(changed.values())

    @staticmethod
    def _action(common: Any, severity: str, trusted: bool) -> str:
        """The rule's action once the alert reaches `act_on` severity; never a ban or lock for trusted keys."""
        if trusted or SEVERITY_RANK[severity] < SEVERITY_RANK[common.act_on]:
            return "alert"
        return str(common.action)

    def _new(self, m: Match, common: Any) -> Alert:
        trusted = self.is_trusted(m.key_type, m.key)
        alert = Alert(self.next_id, m.rule, m.severity, m.key_type, m.key, m.first_seen, m.last_seen,
                      m.detected_at, m.count, m.value, self._action(common, m.severity, trusted), trusted,
                      common.report_only, common.description, dict(m.evidence))
        self.next_id += 1
        return alert

    def _update(self, alert: Alert, m: Match) -> None:
        if SEVERITY_RANK[m.severity] > SEVERITY_RANK[alert.severity]:
            alert.severity = m.severity
            alert.action = self._action(self.rules[alert.rule].common, m.severity, alert.trusted)
        alert.last_seen = max(alert.last_seen, m.last_seen)
        alert.first_seen = min(alert.first_seen, m.first_seen)
        alert.count += m.count
        alert.value = max(alert.value, m.value)
        alert.updates += 1
        for k, v in m.evidence.items():
            if isinstance(v, list) and isinstance(alert.evidence.get(k), list):
                merged = alert.evidence[k] + [x for x in v if x not in alert.evidence[k]]
                alert.evidence[k] = merged[:MAX_EVIDENCE_IDS]
            else:
                alert.evidence[k] = v
