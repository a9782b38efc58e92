"""What the notifier keeps about incidents, and its decisions that need no store.

An incident is told at most three times on a channel: when it opens, once when it escalates, and when it ends.

- `opened`: a critical incident is told at once; a warning one waits `SETTLE` seconds (wall clock) and is then
  told as it is by then — what joins it, merges it into another incident or escalates it meanwhile is in that
  one message, and one that ends meanwhile is told only by its summary. An incident not told yet (all its
  members silenced, or no route matched) is told when a later change makes it tellable: a new member nobody
  silenced, or a severity a route picks. Digests (a route's `digest`, quiet hours) are not held: they wait
  anyway.
- `escalated` within `SETTLE` seconds of the last message waits until then, and goes out as one message with
  the incident as it is by then: escalations that follow each other quickly fold into one. Only one escalation
  message is sent per incident; later rises are counted and said in its summary.
- `grew` sends nothing.
- An incident merged into another (the book found them one attack; `ended` with `merged_into`) sends nothing:
  what was told about it carries over to the incident it joined, whose next message names it.
- `ended` sends one short summary (what was done, how long it lasted) to every channel told about it and
  every channel its routes pick now; a waiting escalation is folded into it. Nothing is sent about an incident
  never told, nor after its end (an incident does not reopen: an update of a member alert after it is no news).

A waiting message is a `notify_digest` row (kind `incident-hold`, replaced at each change), so it survives a
restart; `Notice.told` counts it from the moment it waits (1 while the opening waits, 2 while an escalation
does).

Silences and routes act on the incident's members: an incident whose every member alert matches a silence is
not told; a route matches when its severity matcher matches the incident's severity, its rule matcher one of
the member rules, and its tag matcher a tag of one of them.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from fraudwatch.config.alerts import RouteConfig
from fraudwatch.detect.decide import Alert
from fraudwatch.detect.incident import Incident
from fraudwatch.notify.done import Member
from fraudwatch.notify.store import Silence

SETTLE = 120.0  # seconds after a message in which an escalation waits, to fold the next ones into it
MAX_TOLD = 2  # messages before the summary: the opening one and one escalation
ENDED_KEPT = 10_000  # ended incidents remembered, so that a change after the end does not tell one again


@dataclass
class Memory:
    """Per open incident: its member alerts as far as seen (with what the enforcer said about each), and the
    channels told about it. Forgotten when it ends."""

    members: dict[str, dict[int, Member]] = field(default_factory=dict)
    channels: dict[str, set[str]] = field(default_factory=dict)
    looked_up: set[str] = field(default_factory=set)  # incidents whose unknown members were read from the store
    joined: dict[str, list[str]] = field(default_factory=dict)  # incident -> told incidents merged into it
    ended: dict[str, None] = field(default_factory=dict)  # the last ENDED_KEPT incidents that ended, oldest first

    def note(self, inc: Incident, alerts: Sequence[Alert], done: Mapping[int, str]) -> dict[int, Member]:
        known = self.members.setdefault(inc.id, {})
        for a in alerts:
            old = known.get(a.id)
            member = Member.of(a, done)
            if member.done is None and old is not None and old.done is not None:  # keep the enforcer's last word
                member = Member(member.rule, member.key_type, member.key, member.action, member.trusted,
                                member.report_only, old.done)
            known[a.id] = member
        return known

    def missing(self, inc: Incident) -> list[int]:
        """Member alert ids not seen in a change (after a restart), once per incident."""
        if inc.id in self.looked_up:
            return []
        known = self.members.get(inc.id, {})
        ids = [i for i in inc.alert_ids if i not in known]
        if ids:
            self.looked_up.add(inc.id)
        return ids

    def told(self, inc_id: str) -> set[str]:
        return self.channels.setdefault(inc_id, set())

    def move(self, src: str, dst: str, told: bool) -> None:
        """`src` was merged into `dst`: its members and channels are `dst`'s now (`told`: it was told about)."""
        self.members.setdefault(dst, {}).update(self.members.get(src, {}))
        self.told(dst).update(self.channels.get(src, ()))
        if told:
            self.joined.setdefault(dst, []).append(src)
        self.joined.setdefault(dst, []).extend(self.joined.get(src, ()))
        if not self.joined[dst]:
            del self.joined[dst]
        self.forget(src)

    def end(self, inc_id: str) -> None:
        """`inc_id` ended: a later change about it (an update of a member alert) is not news."""
        self.ended[inc_id] = None
        if len(self.ended) > ENDED_KEPT:
            del self.ended[next(iter(self.ended))]

    def forget(self, inc_id: str) -> None:
        self.members.pop(inc_id, None)
        self.channels.pop(inc_id, None)
        self.looked_up.discard(inc_id)
        self.joined.pop(inc_id, None)


def silenced(members: Iterable[Member], silences: Sequence[Silence], now: dt.datetime) -> bool:
    """Every member matches an active silence (an incident without known members is not silenced)."""
    active = [s for s in silences if s.until > now]
    if not active:
        return False
    seen = False
    for m in members:
        seen = True
        if not any(s.matches(m.rule, m.key) for s in active):
            return False
    return seen


def routes_for(inc: Incident, routes: Sequence[RouteConfig], channels: Sequence[str],
               tags: Mapping[str, Sequence[str]]) -> list[RouteConfig]:
    """The routes that pick the incident (no routes configured: one to every channel)."""
    if not routes:
        return [RouteConfig(tuple(channels))] if channels else []
    all_tags = tuple(sorted({t for r in inc.rules for t in tags.get(r, ())}))
    rules = inc.rules or [""]
    return [r for r in routes if any(r.matches(rule, inc.severity, all_tags) for rule in rules)]


def row_id(inc: Incident) -> int:
    """The number an incident's row in a digest is replaced by (its founding alert): an incident is one row."""
    if inc.alert_ids:
        return int(inc.alert_ids[0])
    return -(zlib.crc32(inc.id.encode()) + 1)
