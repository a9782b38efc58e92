"""The incident book: alerts in, incidents out (`fraudwatch.detect.incident` says what an incident is).

Alerts join one incident when they are about the same attack, judged from what the alerts themselves hold:

- **the same thing**: an IP, an account (a SIP username or a billing account), or, for switch-wide rules, the
  switch in one rule family;
- **shared evidence**: an IP-keyed alert names the accounts it attacked (`username`), an account-keyed one the
  addresses it came from (`new_terms`, `src_ip`); a grouped or switch-wide alert names its member keys (`keys`,
  `src_ip`); the runners add `links` (the addresses and accounts of an alert's first events, read from the
  store: `fraudwatch.detect.runners.links`);
- **a campaign**: several keys of one *rule family* active together (CAMPAIGN_KEYS, or the rule's `group` when
  it has one). A family is what the rules' data say they are: the same source, the same key type and the same
  main tag (a rule's first tag: `bruteforce`, `flood`, `takeover` ...). A botnet's addresses guessing passwords
  at once become one campaign incident listing its members.

"Together" is in event time: an alert joins an incident when the gap between their events is at most the
incident's *spell* (the longest cooldown of its members' rules, at least MIN_SPELL). An incident ends when no
member has seen an event for its spell (`close_quiet`, given the event time reached); it is not reopened.

The book is deterministic and does not depend on how the alert stream is cut into batches: an alert's links only
grow as it is updated, incidents only merge, and the survivor of a merge is the incident with the earliest
founding alert, whose id it keeps. An incident's id is derived from its founding alert (rule, key, the event
time it was detected at), so a replay of the same data gives the same ids.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import hashlib
import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fraudwatch.detect.decide import BOUNDED_TYPES, SEVERITY_RANK, Alert
from fraudwatch.detect.incident import ACTION_RANK, Change, Incident, IncidentChange
from fraudwatch.detect.spec import Common
from fraudwatch.netaddr import parse_ip

MIN_SPELL = dt.timedelta(hours=1)  # the shortest quiet spell that ends an incident (a switch's hour-long outage is one)
MAX_SPELL = dt.timedelta(hours=6)
# Switch-wide alerts (registrations dropping, then coming back in a burst) are one incident up to this far apart:
# an outage and the re-registrations that end it
SWITCH_SPELL = dt.timedelta(hours=2)
# Sources of one rule family active together that make a campaign (a rule's `group` overrides), by the family's
# key type. A source is an address an alert is about or tied to (an alert tied to none counts its key). Addresses
# are the attackers themselves, and three of one family at once are rarely a coincidence; account alerts are
# about victims, and a few attackers each on its own victim at once are common, so it takes more of them. Many
# accounts from one address are one attack (joined by the address), not a campaign.
CAMPAIGN_KEYS = {"ip": 3}
CAMPAIGN_OTHER_KEYS = 5
LISTED = 200  # IPs, accounts and keys an incident lists (its members are all kept)
TIES_KEPT = 64  # alerts of one incident an entity keeps for joining (a botnet's shared username: not all)
FORGET_AFTER = dt.timedelta(days=2)  # an ended incident is forgotten this long (event time) after it ended


def family(common: Common) -> str:
    """A rule's family: its source, its key type and its main (first) tag."""
    return f"{common.source}/{common.key_type}/{common.tags[0] if common.tags else common.id}"


def incident_id(alert: Alert, namespace: str = "") -> str:
    """The id of the incident `alert` founds: its day and a digest of what identifies it (not a counter)."""
    ident = f"{namespace}\x1f{alert.rule}\x1f{alert.key_type}\x1f{alert.key}\x1f{alert.detected_at.isoformat()}"
    return f"{alert.detected_at:%Y%m%d}-{hashlib.sha256(ident.encode()).hexdigest()[:8]}"


def _order(a: Alert) -> tuple[dt.datetime, str, str, str]:
    return a.detected_at, a.rule, a.key_type, a.key


def _strongest(actions: Iterable[str]) -> str:
    """The strongest action: by rank, and a ban (carried out today) before a lock of the same rank."""
    return max(actions, key=lambda x: (ACTION_RANK.get(x, 0), x == "ban_ip", x), default="alert")


def _ip_entity(text: Any) -> str | None:
    return _ip_entity_of(str(text)) if text is not None else None


@functools.lru_cache(maxsize=1 << 16)
def _ip_entity_of(text: str) -> str | None:
    """`ip:ADDR` in canonical form, or None: cached, as an ongoing attack's updates name the same addresses again
    and again (parsing them was half of the book's time under a flood)."""
    addr = parse_ip(text)
    return f"ip:{addr}" if addr is not None else None


def alert_entities(alert: Alert) -> set[str]:
    """What an alert is about and what its evidence ties it to: `ip:ADDR` and `account:NAME`."""
    out: set[str] = set()
    ev = alert.evidence
    if alert.key_type == "ip":
        first, _, rest = alert.key.partition("|")
        if (e := _ip_entity(first)) is not None:
            out.add(e)
        if rest:
            out.add(f"account:{rest}")
    elif alert.key_type == "account":
        out.add(f"account:{alert.key.split('|', 1)[0]}")
    for name in ("username", "account", "customer_account"):
        for v in ev.get(name) or ():
            if isinstance(v, str) and v:
                out.add(f"account:{v}")
    for name in ("src_ip", "caller_ip"):
        for v in ev.get(name) or ():
            if (e := _ip_entity(v)) is not None:
                out.add(e)
    for term in ev.get("new_terms") or ():
        for v in term if isinstance(term, list) else (term,):
            if (e := _ip_entity(v)) is not None:
                out.add(e)
    for v in ev.get("keys") or ():  # a grouped alert's member keys
        e = _ip_entity(str(v).split("|", 1)[0])
        out.add(e if e is not None else f"account:{v}")
    links = ev.get("links") or {}
    for v in links.get("ips") or ():
        if (e := _ip_entity(v)) is not None:
            out.add(e)
    for v in links.get("accounts") or ():
        if isinstance(v, str) and v:
            out.add(f"account:{v}")
    return out


@dataclass
class _FamilyPart:
    """An incident's alerts of one rule family: their sources and the span of their events."""

    sources: set[str]  # see CAMPAIGN_KEYS
    first: dt.datetime
    last: dt.datetime


@dataclass
class _Entry:
    """An incident and what the book needs to grow it."""

    incident: Incident
    founder: Alert
    members: dict[int, Alert] = field(default_factory=dict)
    entities: set[str] = field(default_factory=set)
    spell: dt.timedelta = MIN_SPELL
    first: dt.datetime | None = None  # the span alerts join within (`_span`)
    last: dt.datetime | None = None
    campaign: bool = False
    merged_into: str | None = None
    # what `_summarise` reports, kept as members come (a botnet's campaign has thousands: no rescan per batch)
    order: list[tuple[tuple[dt.datetime, str, str, str], int]] = field(default_factory=list)  # sorted
    counts: dict[int, int] = field(default_factory=dict)
    severity: str = "warning"
    actions: set[str] = field(default_factory=set)
    rules: set[str] = field(default_factory=set)
    ip_keys: set[str] = field(default_factory=set)
    trusted: bool = False
    report_only: bool = True
    grouped: bool = False
    keyed: bool = False  # some member has a key of its own (not switch-wide)


class IncidentBook:
    """Implements `IncidentFeed`: `apply` joins alerts into incidents, `close_quiet` ends the quiet ones."""

    def __init__(self, rules: Mapping[str, Common], namespace: str = "") -> None:
        self.rules = rules
        self.namespace = namespace  # origin of the alerts (live, replay): a part of the ids
        self.entries: dict[str, _Entry] = {}
        self.member_of: dict[int, str] = {}  # alert id -> its incident id
        self.by_entity: dict[str, dict[str, set[int]]] = {}  # entity -> open incident -> its alerts about it
        self.ips_of: dict[int, frozenset[str]] = {}  # alert id -> the addresses among its entities, as last seen
        # family -> open incident -> its keys of the family, and the span of their alerts' events
        self.by_family: dict[str, dict[str, _FamilyPart]] = {}
        self._fresh: set[str] = set()  # incidents opened in the step `apply` is taking

    # ------------------------------------------------------------------ the feed

    def apply(self, alerts: Sequence[Alert]) -> list[IncidentChange]:
        before: dict[str, tuple[str, str, bool]] = {}  # incident id -> (severity, action, announced) before
        self._fresh = set()  # incidents opened in this step
        touched: dict[str, list[Alert]] = {}
        merged: list[_Entry] = []
        for alert in sorted(alerts, key=_order):
            entry = self._place(alert, before, merged)
            touched.setdefault(entry.incident.id, []).append(alert)
        for iid in touched:
            if iid in self.entries:
                self._summarise(self.entries[iid])
        changes: list[IncidentChange] = []
        for e in merged:
            self._summarise(e)
            if e.incident.id in before and before[e.incident.id][2]:  # announced before this step: say it ended
                changes.append(IncidentChange(e.incident, "ended", alerts=()))
        for iid, members in touched.items():
            found = self.entries.get(iid)
            if found is None:
                continue  # merged into another one later in this step
            entry = found
            sev, act, existed = before.get(iid, ("", "", False))
            inc = entry.incident
            change: Change
            if not existed:
                change = "opened"
            elif (SEVERITY_RANK[inc.severity], ACTION_RANK.get(inc.action, 0)) > \
                    (SEVERITY_RANK.get(sev, 0), ACTION_RANK.get(act, 0)):
                change = "escalated"
            else:
                change = "grew"
            changes.append(IncidentChange(inc, change, (sev, act) if change == "escalated" else None,
                                          tuple({a.id: a for a in members}.values())))
        return changes

    def close_quiet(self, now: dt.datetime) -> list[IncidentChange]:
        changes = []
        for entry in list(self.entries.values()):
            inc = entry.incident
            if inc.state == "open" and inc.last_seen + entry.spell < now:  # quiet: no member saw an event
                inc.state = "ended"
                inc.ended_at = inc.last_seen + entry.spell
                self._unindex(entry)
                changes.append(IncidentChange(inc, "ended"))
            elif inc.state == "ended" and inc.ended_at is not None and inc.ended_at + FORGET_AFTER < now:
                del self.entries[inc.id]
                for aid in entry.members:
                    self.member_of.pop(aid, None)
                    self.ips_of.pop(aid, None)
        return changes

    def incidents(self) -> list[Incident]:
        """The incidents the book holds, oldest first."""
        return sorted((e.incident for e in self.entries.values()), key=lambda i: (i.opened_at, i.id))

    # ------------------------------------------------------------------ joining

    def _common(self, alert: Alert) -> Common | None:
        return self.rules.get(alert.rule)

    def _spell_of(self, alert: Alert) -> dt.timedelta:
        c = self._common(alert)
        cooldown = dt.timedelta(seconds=float(c.cooldown)) if c is not None else MIN_SPELL
        floor = SWITCH_SPELL if alert.key_type == "global" and "grouped_keys" not in alert.evidence else MIN_SPELL
        return min(max(cooldown, floor), MAX_SPELL)

    def _family(self, alert: Alert) -> str | None:
        c = self._common(alert)
        return family(c) if c is not None else None

    def _entities(self, alert: Alert) -> set[str]:
        out = alert_entities(alert)
        if alert.key_type == "global" and "grouped_keys" not in alert.evidence and (fam := self._family(alert)):
            source, _, tag = fam.split("/")
            out.add(f"switch:{source}/{tag}")  # switch-wide rules of one family on one switch
        return out

    def _span(self, alert: Alert) -> tuple[dt.datetime, dt.datetime]:
        """The events of `alert` that others join by: all of them, but for a rule whose matches have no time
        bound (a credit limit counts an account's spend from its first call, for days), the moment it fired."""
        c = self._common(alert)
        if c is not None and c.type not in BOUNDED_TYPES:
            return alert.detected_at, alert.detected_at
        return alert.first_seen, alert.last_seen

    def _near(self, entry: _Entry, alert: Alert, spell: dt.timedelta) -> bool:
        first, last = self._span(alert)
        assert entry.first is not None and entry.last is not None
        gap = max(first - entry.last, entry.first - last, dt.timedelta(0))
        return gap <= max(entry.spell, spell)

    def _tied(self, alert: Alert, ips: set[str], spell: dt.timedelta, other: Alert) -> bool:
        """Whether two alerts that share an address or an account are about one attack: their events are within
        a spell of each other, and they do not come from different addresses (two attackers guessing the same
        account are two incidents, unless they are a campaign: see `_place`)."""
        theirs = self.ips_of.get(other.id, frozenset())
        if ips and theirs and not ips & theirs:
            return False
        (a0, a1), (b0, b1) = self._span(alert), self._span(other)
        return max(a0 - b1, b0 - a1) <= max(spell, self._spell_of(other))

    def _place(self, alert: Alert, before: dict[str, tuple[str, str, bool]], merged: list[_Entry]) -> _Entry:
        spell = self._spell_of(alert)
        entities = self._entities(alert)
        found: dict[str, _Entry] = {}
        own = self.member_of.get(alert.id)
        if own is not None and own in self.entries:
            found[own] = self.entries[own]
        ips = {e for e in entities if e.startswith("ip:")}
        campaign = False
        addresses = len(ips)  # the addresses of the campaign it makes, as far as counted
        fam = self._family(alert)
        c = self._common(alert)
        if fam is not None and c is not None and alert.key_type != "global":
            need = int(c.group) if c.group else CAMPAIGN_KEYS.get(alert.key_type, CAMPAIGN_OTHER_KEYS)
            sources = _sources(alert, ips)
            together = []
            first, last = self._span(alert)
            for iid, part in self.by_family.get(fam, {}).items():
                if max(first - part.last, part.first - last) <= spell:
                    together.append(iid)
                    for src in part.sources:  # only until there are enough: a botnet's part holds thousands
                        if len(sources) >= need:
                            break
                        sources.add(src)
            addresses = sum(1 for src in sources if src.startswith("ip:"))
            if len(sources) >= need:
                campaign = True
                for iid in together:
                    found.setdefault(iid, self.entries[iid])
        if "grouped_keys" in alert.evidence:
            campaign = True
        if campaign:  # a botnet flooding and guessing at once is one campaign, whichever rules saw which part:
            # an open campaign near it that shares an address with it, or that is a swarm of addresses as it is
            # (an account's fraud going on at the same time is not the botnet's)
            swarm = addresses >= CAMPAIGN_KEYS["ip"] or "grouped_keys" in alert.evidence
            for iid, entry in self.entries.items():
                if entry.campaign and entry.incident.state == "open" and iid not in found and \
                        self._near(entry, alert, spell) and \
                        (not ips.isdisjoint(entry.entities) or (swarm and len(entry.ip_keys) >= CAMPAIGN_KEYS["ip"])):
                    found[iid] = entry
        for ent in entities:  # after the campaign: its members need no tie checked
            for iid, aids in self.by_entity.get(ent, {}).items():
                entry = self.entries[iid]
                if iid not in found and self._near(entry, alert, spell) and \
                        any(self._tied(alert, ips, spell, entry.members[aid]) for aid in aids):
                    found[iid] = entry
        for iid, entry in found.items():
            before.setdefault(iid, (entry.incident.severity, entry.incident.action, iid not in self._fresh))
        if found:
            ordered = sorted(found.values(), key=lambda e: _order(e.founder))
            target = ordered[0]
            if _order(alert) < _order(target.founder):  # an earlier alert came late: it founds the incident
                target = self._refound(target, alert, before)
            for other in ordered[1:]:
                self._merge(other, target)
                merged.append(other)
        else:
            target = self._new(alert)
        self._add(target, alert, entities, spell, campaign)
        return target

    def _new(self, alert: Alert) -> _Entry:
        iid = incident_id(alert, self.namespace)
        inc = Incident(iid, "attack", "", alert.severity, alert.action, "open", alert.first_seen, alert.last_seen,
                       alert.detected_at)
        entry = _Entry(inc, alert)
        self.entries[iid] = entry
        self._fresh.add(iid)
        return entry

    def _refound(self, entry: _Entry, alert: Alert, before: dict[str, tuple[str, str, bool]]) -> _Entry:
        """`entry` under the id `alert` gives it, `alert` being earlier than its founder."""
        new = self._new(alert)
        before.setdefault(new.incident.id, before.get(entry.incident.id, ("", "", False)))
        self._merge(entry, new)
        return new

    def _merge(self, src: _Entry, dst: _Entry) -> None:
        self._unindex(src)
        self.entries.pop(src.incident.id, None)
        src.merged_into = dst.incident.id
        src.incident.state = "ended"
        src.incident.merged_into = dst.incident.id
        src.incident.ended_at = src.incident.last_seen
        dst.campaign = dst.campaign or src.campaign
        dst.spell = max(dst.spell, src.spell)
        for a in sorted(src.members.values(), key=_order):
            self._add(dst, a, self._entities(a), self._spell_of(a), False)

    def _unindex(self, entry: _Entry) -> None:
        iid = entry.incident.id
        for ent in entry.entities:
            by_incident = self.by_entity.get(ent)
            if by_incident is not None:
                by_incident.pop(iid, None)
                if not by_incident:
                    del self.by_entity[ent]
        for fam in {self._family(a) for a in entry.members.values()}:
            if fam is not None and fam in self.by_family:
                self.by_family[fam].pop(iid, None)
                if not self.by_family[fam]:
                    del self.by_family[fam]

    def _add(self, entry: _Entry, alert: Alert, entities: set[str], spell: dt.timedelta, campaign: bool) -> None:
        iid = entry.incident.id
        if alert.id not in entry.members:
            bisect.insort(entry.order, (_order(alert), alert.id))
        entry.members[alert.id] = alert
        entry.counts[alert.id] = alert.count
        if SEVERITY_RANK.get(alert.severity, 0) > SEVERITY_RANK.get(entry.severity, 0):
            entry.severity = alert.severity
        entry.actions.add(alert.action)
        entry.rules.add(alert.rule)
        if alert.key_type == "ip":
            entry.ip_keys.add(alert.key.split("|", 1)[0])
        entry.trusted = entry.trusted or alert.trusted
        entry.report_only = entry.report_only and alert.report_only
        entry.grouped = entry.grouped or "grouped_keys" in alert.evidence
        entry.keyed = entry.keyed or alert.key_type != "global"
        self.member_of[alert.id] = iid
        self.ips_of[alert.id] = frozenset(e for e in entities if e.startswith("ip:"))
        entry.spell = max(entry.spell, spell)
        entry.campaign = entry.campaign or campaign
        if entry.incident.state == "open":
            for ent in entities:
                aids = self.by_entity.setdefault(ent, {}).setdefault(iid, set())
                if len(aids) < TIES_KEPT:
                    aids.add(alert.id)
            fam = self._family(alert)
            if fam is not None and alert.key_type != "global":
                part = self.by_family.setdefault(fam, {}).get(iid)
                sources = _sources(alert, {e for e in entities if e.startswith("ip:")})
                if part is None:
                    self.by_family[fam][iid] = _FamilyPart(sources, *self._span(alert))
                else:
                    part.sources |= sources
                    first, last = self._span(alert)
                    part.first, part.last = min(part.first, first), max(part.last, last)
        entry.entities |= entities
        # the times joining and ending are judged by, kept current as members come (the rest: `_summarise`)
        first, last = self._span(alert)
        entry.first = first if entry.first is None else min(entry.first, first)
        entry.last = last if entry.last is None else max(entry.last, last)
        entry.incident.first_seen = min(entry.incident.first_seen, alert.first_seen)
        entry.incident.last_seen = max(entry.incident.last_seen, alert.last_seen)

    def _summarise(self, entry: _Entry) -> None:
        """The incident's facts from its members (the same whatever order they came in)."""
        inc = entry.incident
        inc.alert_ids = [aid for _, aid in entry.order]
        inc.members = len(entry.order)
        inc.count = sum(entry.counts.values())
        inc.opened_at = entry.order[0][0][0]
        inc.severity = entry.severity
        inc.action = _strongest(entry.actions)
        inc.rules = sorted(entry.rules)
        keys: dict[str, None] = {}
        for (_, _rule, key_type, key), _aid in entry.order:
            if len(keys) >= LISTED:
                break
            keys[f"{key_type}:{key}"] = None
        inc.keys = list(keys)
        ips = [e[3:] for e in entry.entities if e.startswith("ip:")]
        accounts = [e[8:] for e in entry.entities if e.startswith("account:")]
        inc.ips, inc.accounts = heapq.nsmallest(LISTED, ips), heapq.nsmallest(LISTED, accounts)
        inc.trusted, inc.report_only = entry.trusted, entry.report_only
        if entry.grouped or len(entry.ip_keys) >= CAMPAIGN_KEYS["ip"] or (entry.campaign and not entry.ip_keys):
            inc.kind = "campaign"  # many sources, or many accounts with no source in common
        elif entry.ip_keys or (len(ips) == 1 and len(accounts) > 1):
            inc.kind = "attack"  # one source (a spray over many accounts, seen only on the accounts, too)
        elif entry.keyed:
            inc.kind = "fraud"
        else:
            inc.kind = "switch"
        inc.title = _title(inc, entry, len(ips), len(accounts))


def _sources(alert: Alert, ips: set[str]) -> set[str]:
    """What an alert counts as in a campaign: the addresses it is about or tied to, else its key's first part (one
    account pumping many numbers is one source, not a campaign)."""
    return set(ips) if ips else {f"{alert.key_type}:{alert.key.split('|', 1)[0]}"}  # account|number: the account


def _title(inc: Incident, entry: _Entry, n_ips: int, n_accounts: int) -> str:
    """One line: what kind, who (its address, its account, how many), which rules."""
    members = [entry.members[aid] for _, aid in entry.order[:LISTED]]
    rules = ", ".join(inc.rules[:3]) + (f" +{len(inc.rules) - 3} more" if len(inc.rules) > 3 else "")
    accounts = f", {n_accounts} account(s)" if n_accounts else ""
    if inc.kind == "campaign":
        n = max(len(entry.ip_keys), n_ips)
        who = f"campaign from {n} address(es)" if n else f"campaign over {len(inc.keys)} keys"
        return f"{who}{accounts}: {rules}"
    if inc.kind == "attack":
        ip = next((a.key.split("|", 1)[0] for a in members if a.key_type == "ip"), inc.ips[0] if inc.ips else "?")
        return f"attack from {ip}{accounts}: {rules}"
    if inc.kind == "fraud":  # named by its strongest alert's account
        key = max((a for a in members if a.key_type != "global"),
                  key=lambda a: (SEVERITY_RANK.get(a.severity, 0), ACTION_RANK.get(a.action, 0))).key
        return f"account {key}{f' and {n_ips} address(es)' if n_ips else ''}: {rules}"
    return f"switch-wide: {rules}"
