"""What an incident is: the alerts of one attack, joined — the object an operator reads, is notified about and acts on.

This module is the contract between the code that joins alerts into incidents (the incident book) and the code that
consumes them (the store, the notifier, the CLI). It holds data only.

An operator thinks in incidents ("a botnet is flooding us", "account 10023 is pumping premium numbers"), not in
(rule, key) alerts: one attack fires several rules on one key, touches an IP and the accounts it attacked, or comes
from hundreds of keys at once. An incident opens with its first alert, grows while its attack goes on, escalates when
its severity or its strongest action rises, and ends after a quiet spell in event time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from fraudwatch.detect.decide import Alert

State = Literal["open", "ended"]
# What happened to an incident in one step of the book: `opened` (its first alert), `escalated` (its severity or its
# strongest proposed action rose), `grew` (new or updated member alerts, nothing an operator must hear about now),
# `ended` (no member has seen an event for the incident's quiet spell; it will not reopen).
Change = Literal["opened", "escalated", "grew", "ended"]
ACTION_RANK = {"alert": 0, "lock_account": 1, "ban_ip": 1}


@dataclass
class Incident:
    id: str  # stable across replays of the same data (derived from the founding alert, not a counter)
    kind: str  # attack (one source), fraud (one account), campaign (many keys of one rule family), switch (global)
    title: str  # one line for a person: what, who, how many
    severity: str  # the highest severity of its members
    action: str  # the strongest action proposed by its members
    state: State
    first_seen: dt.datetime  # event time of the first event behind any member
    last_seen: dt.datetime  # event time of the latest event behind any member
    opened_at: dt.datetime  # event time its first member was detected
    ended_at: dt.datetime | None = None  # event time it was closed
    alert_ids: list[int] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # "key_type:key" of every member, in the order they joined
    members: int = 0  # alerts in it
    count: int = 0  # events behind its members
    trusted: bool = False  # some member is about a trusted network or account
    report_only: bool = False  # every member's rule is on trial: nothing is carried out
    merged_into: str | None = None  # ended because a later alert showed it part of this (older) incident


@dataclass(frozen=True)
class IncidentChange:
    incident: Incident
    change: Change
    before: tuple[str, str] | None = None  # (severity, action) before an `escalated` change
    alerts: tuple[Alert, ...] = ()  # the member alerts this step created or changed


class IncidentFeed(Protocol):
    """Alerts in, incident changes out; `close_quiet` ends the incidents quiet since before `now` (event time)."""

    def apply(self, alerts: Sequence[Alert]) -> list[IncidentChange]: ...

    def close_quiet(self, now: dt.datetime) -> list[IncidentChange]: ...
