"""The decision layer: matches become alerts. One ongoing attack is one alert that updates, not thousands.

An alert is keyed by (rule, key). A match within the rule's `cooldown` of the alert's last event updates it
(counts add up, severity only rises); after a quiet cooldown the next match opens a new alert. Trusted networks
and accounts are never proposed for a ban or a lock: their alerts say `trusted` and propose `alert`.

Trust decides what may be done, not what may be seen: account and CDR rules look at traffic from trusted
networks too (a hacked PBX behind a trusted trunk is the costliest toll fraud). When any of an alert's events
came from a trusted network, its evidence lists those addresses (`trusted_sources`), its description says so,
and it proposes locking the account only where the config allows it (`[trusted] lock_accounts_in_networks`).
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fraudwatch.detect.base import EVIDENCE_KEPT, LINES_KEPT, TRUST_FACT, Match
from fraudwatch.detect.spec import Common
from fraudwatch.netaddr import IPNetwork, parse_ip

if TYPE_CHECKING:  # the book needs only the rules' common keys, not the detectors' modules
    from fraudwatch.detect.types import RuleType

SEVERITY_RANK = {"warning": 1, "critical": 2}
GROUP_KEY = "*"  # the key of a rule's switch-wide alert of grouped keys
PRUNE_FROM = 1024  # open alerts before the book looks for ones that can no longer continue
# rule types whose matches start within a bounded time before their latest event (see AlertBook._reach)
BOUNDED_TYPES = frozenset({"threshold", "distinct", "sum", "spike", "list_match", "new_term", "seasonal"})
MAX_EVIDENCE_IDS = EVIDENCE_KEPT


def key_trusted(key_type: str, key: str, networks: Sequence[IPNetwork], accounts: Collection[str]) -> bool:
    """Whether an alert key is trusted: its address (the first field of a composite key such as ip|username) in a
    trusted network, or its account a trusted one."""
    if key_type == "ip":
        addr = parse_ip(key.split("|", 1)[0])
        return addr is not None and any(addr.version == n.version and addr in n for n in networks)
    if key_type == "account":
        return key.split("|", 1)[0] in accounts
    return False


def proposed_action(common: Common, severity: str, trusted: bool, from_trusted: bool = False,
                    lock_in_trusted: bool = False) -> str:
    """The rule's action once an alert reaches its `act_on` severity; never a ban or lock for trusted keys, and
    a lock for traffic `from_trusted` networks only when `lock_in_trusted` (the config's choice)."""
    if trusted or SEVERITY_RANK[severity] < SEVERITY_RANK[common.act_on]:
        return "alert"
    if from_trusted and common.action == "lock_account" and not lock_in_trusted:
        return "alert"
    return str(common.action)


def trust_note(evidence: Mapping[str, Any], lock_in_trusted: bool) -> str:
    """What an alert's description adds when its traffic came from a trusted network ('' when it did not)."""
    sources = evidence.get(TRUST_FACT)
    if not sources:
        return ""
    shown = ", ".join(str(s) for s in sources[:3]) + (" ..." if len(sources) > 3 else "")
    told = "" if lock_in_trusted else "; an account is not locked for it ([trusted] lock_accounts_in_networks)"
    return f" (traffic from a trusted network: {shown}{told})"


def _hashable(x: Any) -> Any:
    return tuple(x) if isinstance(x, list) else x


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

    def __init__(self, rules: Mapping[str, RuleType], trusted_networks: Sequence[IPNetwork] = (),
                 trusted_accounts: Iterable[str] = (), next_id: int = 1, lock_in_trusted: bool = False) -> None:
        self.rules = rules
        self.trusted_networks = tuple(trusted_networks)
        self.trusted_accounts = set(trusted_accounts)
        self.lock_in_trusted = lock_in_trusted  # propose locks for fraud from inside trusted networks
        self.open: dict[tuple[str, str], Alert] = {}
        self.next_id = next_id
        self.clock: dict[str, dt.datetime] = {}  # rule -> the latest event behind its matches
        self.opened: dict[str, deque[dt.datetime]] = {}  # rule with `group` -> when its recent alerts opened
        self.member_last: dict[tuple[str, str], dt.datetime] = {}  # a grouped key -> its last event
        self._prune_at = PRUNE_FROM

    def is_trusted(self, key_type: str, key: str) -> bool:
        return key_trusted(key_type, key, self.trusted_networks, self.trusted_accounts)

    def apply(self, matches: Iterable[Match]) -> list[Alert]:
        changed: dict[int, Alert] = {}
        cooldowns: dict[str, dt.timedelta] = {}
        for m in sorted(matches, key=lambda m: m.detected_at):
            common = self.rules[m.rule].common
            cooldown = cooldowns.get(m.rule)
            if cooldown is None:
                cooldown = cooldowns[m.rule] = dt.timedelta(seconds=common.cooldown)
            slot = (m.rule, m.key)
            alert = self.open.get(slot)
            grouped = alert is not None and alert.key_type == "global" and m.key_type != "global"
            last = self.member_last.get(slot) if grouped else alert.last_seen if alert is not None else None
            if alert is not None and last is not None and m.first_seen - last <= cooldown \
                    and not (grouped and m.severity == "critical"):
                self._update(alert, m)
                if grouped:
                    self.member_last[slot] = max(last, m.last_seen)
            elif self._joins_group(m, common):
                alert = self._group(m, common)
                self.open[slot] = alert
                self.member_last[slot] = m.last_seen
            else:
                alert = self._new(m, common)
                self.open[slot] = alert
                self.member_last.pop(slot, None)
                if common.group:
                    self.opened.setdefault(m.rule, deque()).append(m.detected_at)
            changed[alert.id] = alert
            if m.rule not in self.clock or m.last_seen > self.clock[m.rule]:
                self.clock[m.rule] = m.last_seen
        if len(self.open) > self._prune_at:
            self.prune()
        return list(changed.values())

    def _reach(self, rule_id: str) -> dt.timedelta | None:
        """How far before its rule's latest event a future match of a rule may start, plus the cooldown: an
        open alert whose last event is further back can never be continued. None: no bound (credit_limit
        carries an account's spend from its first CDR)."""
        rule = self.rules[rule_id]
        c = rule.common
        if c.type not in BOUNDED_TYPES:
            return None
        reach = max(c.window, float(getattr(rule, "baseline", 0) or 0), float(getattr(rule, "bucket", 0) or 0))
        return dt.timedelta(seconds=reach + c.cooldown)

    def prune(self) -> None:
        """Forget open alerts that no future match can continue (a long-running watcher stays bounded);
        alerts are unchanged by it, however the stream is cut into batches."""
        reach = {r: self._reach(r) for r in self.clock}
        stale = [slot for slot, a in self.open.items()
                 if (d := reach.get(a.rule)) is not None and a.last_seen < self.clock[a.rule] - d]
        for slot in stale:
            del self.open[slot]
            self.member_last.pop(slot, None)
        self._prune_at = max(PRUNE_FROM, 2 * len(self.open))

    def _joins_group(self, m: Match, common: Common) -> bool:
        """A new warning of a rule with `group: N` joins the rule's switch-wide alert once N alerts of it opened
        within its cooldown (a botnet's members), and while that alert goes on — unless it is critical (each of
        those keeps its own alert and action) or the rule is switch-wide already."""
        if not common.group or m.severity == "critical" or m.key_type == "global":
            return False
        group = self.open.get((m.rule, GROUP_KEY))
        if group is not None and m.first_seen - group.last_seen <= dt.timedelta(seconds=common.cooldown):
            return True  # the botnet is still at it
        recent = self.opened.get(m.rule)
        if recent is None:
            return False
        horizon = m.detected_at - dt.timedelta(seconds=common.cooldown)
        while recent and recent[0] < horizon:
            recent.popleft()
        return len(recent) >= int(common.group)

    def _group(self, m: Match, common: Common) -> Alert:
        """The rule's switch-wide alert for grouped keys, opened or updated with `m`."""
        slot = (m.rule, GROUP_KEY)
        alert = self.open.get(slot)
        cooldown = dt.timedelta(seconds=common.cooldown)
        if alert is None or m.first_seen - alert.last_seen > cooldown:
            alert = Alert(self.next_id, m.rule, m.severity, "global", GROUP_KEY, m.first_seen, m.last_seen,
                          m.detected_at, 0, 0.0, "alert", False, common.report_only,
                          f"{common.description} (many {m.key_type} keys at once, grouped)",
                          {"keys": [], "grouped_keys": 0})
            self.next_id += 1
            self.open[slot] = alert
        else:
            alert.updates += 1
        alert.first_seen = min(alert.first_seen, m.first_seen)
        alert.last_seen = max(alert.last_seen, m.last_seen)
        alert.count += m.count
        alert.evidence["grouped_keys"] += 1
        alert.value = float(alert.evidence["grouped_keys"])
        if len(alert.evidence["keys"]) < MAX_EVIDENCE_IDS:
            alert.evidence["keys"].append(m.key)
        return alert

    def _new(self, m: Match, common: Common) -> Alert:
        trusted = self.is_trusted(m.key_type, m.key)
        inside = bool(m.evidence.get(TRUST_FACT))
        alert = Alert(self.next_id, m.rule, m.severity, m.key_type, m.key, m.first_seen, m.last_seen,
                      m.detected_at, m.count, m.value,
                      proposed_action(common, m.severity, trusted, inside, self.lock_in_trusted), trusted,
                      common.report_only, common.description + trust_note(m.evidence, self.lock_in_trusted),
                      dict(m.evidence))
        self.next_id += 1
        return alert

    def _update(self, alert: Alert, m: Match) -> None:
        common = self.rules[alert.rule].common
        was_inside = bool(alert.evidence.get(TRUST_FACT))
        if SEVERITY_RANK[m.severity] > SEVERITY_RANK[alert.severity]:
            alert.severity = m.severity
            alert.action = proposed_action(common, m.severity, alert.trusted, was_inside, self.lock_in_trusted)
        if m.last_seen > alert.last_seen:
            alert.last_seen = m.last_seen
        if m.first_seen < alert.first_seen:
            alert.first_seen = m.first_seen
        alert.count += m.count
        if m.value > alert.value:
            alert.value = m.value
        alert.updates += 1
        evidence = alert.evidence
        for k, v in m.evidence.items():
            have = evidence.get(k)
            if isinstance(v, list) and isinstance(have, list):
                room = (LINES_KEPT if k == "lines" else MAX_EVIDENCE_IDS) - len(have)
                if room <= 0 or not v:  # a full list stays as it is
                    continue
                if len(v) * len(have) <= 256:  # a few new values (an ongoing alert's): scanning is cheaper
                    fresh = [x for x in v if x not in have]
                elif any(isinstance(x, list) for x in (*v[:1], *have[:1])):  # pointers, terms: lists
                    seen = {_hashable(x) for x in have}
                    fresh = [x for x in v if _hashable(x) not in seen]
                else:
                    seen = set(have)
                    fresh = [x for x in v if x not in seen]
                if fresh:
                    evidence[k] = have + fresh[:room]
            else:
                evidence[k] = v
        if not was_inside and evidence.get(TRUST_FACT):  # its traffic came from a trusted network after all
            alert.action = proposed_action(common, alert.severity, alert.trusted, True, self.lock_in_trusted)
            alert.description = common.description + trust_note(evidence, self.lock_in_trusted)
