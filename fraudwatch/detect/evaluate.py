"""Scoring alerts against a simulator's labels.csv: was each incident caught, on its key, how fast; what else fired.

An alert *detects* an incident when its key is one of the incident's addresses or accounts (a switch-wide
incident: a global alert) and it was raised between the incident's start and a grace period after its end. The
delay is measured in event time from the moment the incident became visible to the detectors:

- SIP and kernel incidents: its first event (labels' `start`); the bound is `SIP_BOUND` seconds;
- CDR incidents (call fraud): the arrival of its first CDR (stop time), and for a credit-limit breach the
  arrival of the CDR that takes the account's spend past money + limit_money; the bound is `CDR_BOUND`. A rule
  that catches the fraud in the signalling, before any CDR exists, has a negative delay.

A *false alert* is one that no incident explains: none overlaps it in time and has its key, or is the source of
all the events the alert points at (its evidence ids, looked up in the store: e.g. an alert about a username that
a flood guessed, whose every event came from the flood's address). Trusted networks must never be proposed for a
ban; alerts about trusted keys are reported too, since shipped rules should not fire on carriers' normal traffic.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from fraudwatch.detect.decide import Alert
from fraudwatch.netaddr import IPNetwork, parse_ip

SWITCHWIDE = frozenset({"registration_drop", "registration_spike"})
# Incidents a switch-wide (global) alert may detect: the switch-wide ones, and a flood spread over many addresses.
GLOBAL_KINDS = SWITCHWIDE | {"register_flood_distributed"}
CDR_KINDS = frozenset({"irsf_pumping", "credit_limit_breach", "wangiri", "trusted_pbx_pumping", "cdr_takeover"})
SIP_BOUND = 10.0  # seconds from the incident's first event
CDR_BOUND = 60.0  # seconds from the arrival of the CDR that shows it
GRACE = dt.timedelta(minutes=30)  # after an incident's end, alerts about it may still arrive (bucket ends)
EARLY = dt.timedelta(seconds=1)  # kern.log stamps are whole seconds


@dataclass(frozen=True)
class Incident:
    id: str
    kind: str
    start: dt.datetime
    end: dt.datetime
    ips: frozenset[str]
    accounts: frozenset[str]
    notes: str = ""

    @property
    def switchwide(self) -> bool:
        return self.kind in SWITCHWIDE

    @property
    def bound(self) -> float:
        return CDR_BOUND if self.kind in CDR_KINDS else SIP_BOUND

    def explains(self, alert: Alert, addresses: frozenset[str] = frozenset()) -> bool:
        """The alert is about this incident: their times overlap, and the alert's key is one of the incident's or
        all the `addresses` its events came from are the incident's."""
        if alert.last_seen < self.start - EARLY or alert.first_seen > self.end + GRACE:
            return False
        return self.has_key(alert) or bool(addresses and addresses <= self.ips)

    def has_key(self, alert: Alert) -> bool:
        if alert.key_type == "global":
            return self.kind in GLOBAL_KINDS
        for part in alert.key.split("|"):
            addr = parse_ip(part)
            if (addr is not None and addr.compressed in self.ips) or part in self.accounts:
                return True
        return False


def load_labels(path: Path) -> list[Incident]:
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            ips = frozenset(a.compressed for a in (parse_ip(x) for x in row["ips"].split(";")) if a is not None)
            out.append(Incident(row["incident_id"], row["kind"], dt.datetime.fromisoformat(row["start"]),
                                dt.datetime.fromisoformat(row["end"]), ips,
                                frozenset(a for a in row["accounts"].split(";") if a), row.get("notes", "")))
    return out


def cdr_arrivals(con: duckdb.DuckDBPyConnection, incidents: Iterable[Incident]) -> dict[str, dt.datetime]:
    """For each CDR incident, when the CDR that shows it arrived (see the module doc)."""
    out: dict[str, dt.datetime] = {}
    for inc in incidents:
        if inc.kind not in CDR_KINDS or not inc.accounts:
            continue
        accounts = sorted(inc.accounts)
        if inc.kind == "credit_limit_breach":
            row = con.execute("""
                SELECT min(stop_time) FROM (
                  SELECT c.stop_time, sum(c.fee) OVER (PARTITION BY c.customer_account
                                                       ORDER BY c.stop_time, c.flowno) AS spent,
                         coalesce(u.money, 0) + coalesce(u.limit_money, 0) AS available
                  FROM cdrs c JOIN customers u ON u.account = c.customer_account
                  WHERE c.customer_account IN (SELECT unnest(?)))
                WHERE spent > available AND stop_time >= ?""", [accounts, inc.start - EARLY]).fetchone()
        else:
            ips = sorted(inc.ips)
            row = con.execute("""
                SELECT min(stop_time) FROM cdrs
                WHERE customer_account IN (SELECT unnest(?)) AND stop_time BETWEEN ? AND ?
                  AND (len(?) = 0 OR caller_ip IN (SELECT unnest(?)))""",
                              [accounts, inc.start - EARLY, inc.end + EARLY, ips, ips]).fetchone()
        if row and row[0] is not None:
            out[inc.id] = row[0]
    return out


def evidence_addresses(con: duckdb.DuckDBPyConnection, alerts: Iterable[Alert],
                       sources: dict[str, str]) -> dict[int, frozenset[str]]:
    """Alert id -> the addresses its evidence events came from (`sources`: rule id -> its source table)."""
    column = {"sip_events": ("id", "ids", "src_ip"), "netfilter_events": ("id", "ids", "src_ip"),
              "cdrs": ("flowno", "flownos", "caller_ip")}
    out: dict[int, frozenset[str]] = {}
    for a in alerts:
        source = sources.get(a.rule)
        if source not in column:
            continue
        key, field_name, ip = column[source]
        ids = a.evidence.get(field_name) or []
        if ids:
            rows = con.execute(f"SELECT DISTINCT {ip} FROM {source} WHERE {key} IN (SELECT unnest(?))",  # nosec B608 # table and columns from the constant map above; ids are a parameter
                               [list(ids)]).fetchall()
            out[a.id] = frozenset(x.compressed for x in (parse_ip(r[0]) for r in rows if r[0]) if x is not None)
    return out


@dataclass(frozen=True)
class IncidentResult:
    incident: Incident
    reference: dt.datetime  # the moment the delay is measured from
    alert: Alert | None  # the first alert that detected it
    severity: str | None  # the highest severity of the alerts that detected it
    rules: tuple[str, ...]  # every rule that detected it, first first

    @property
    def detected(self) -> bool:
        return self.alert is not None

    @property
    def delay(self) -> float | None:
        return None if self.alert is None else (self.alert.detected_at - self.reference).total_seconds()

    @property
    def in_time(self) -> bool:
        return self.delay is not None and self.delay <= self.incident.bound


@dataclass
class Evaluation:
    results: list[IncidentResult]
    false_alerts: list[Alert]
    trusted_bans: list[Alert]  # ban_ip proposed for a trusted network: must stay empty
    trusted_alerts: list[Alert]  # any alert about a trusted address
    days: float
    alerts: int = 0
    false_by_rule: Counter[tuple[str, str]] = field(default_factory=Counter)

    def false_per_day(self, severity: str) -> float:
        return sum(a.severity == severity for a in self.false_alerts) / self.days if self.days else 0.0

    @property
    def missed(self) -> list[IncidentResult]:
        return [r for r in self.results if not r.in_time]

    @property
    def ok(self) -> bool:
        return not self.missed and not self.trusted_bans and self.false_per_day("critical") <= 1.0


def _trusted(key: str, networks: Sequence[IPNetwork]) -> bool:
    addrs = [a for a in (parse_ip(p) for p in key.split("|")) if a is not None]
    return any(a.version == n.version and a in n for a in addrs for n in networks)


def evaluate(alerts: Sequence[Alert], incidents: Sequence[Incident], days: float,
             trusted: Sequence[IPNetwork] = (), arrivals: dict[str, dt.datetime] | None = None,
             addresses: dict[int, frozenset[str]] | None = None) -> Evaluation:
    """Score `alerts` (e.g. a replay's) against `incidents`; `arrivals` from `cdr_arrivals` (without them a
    CDR incident is measured from its start, which only makes it look slower), `addresses` from
    `evidence_addresses` (without them only the key ties an alert to an incident)."""
    arrivals, addresses = arrivals or {}, addresses or {}
    results = []
    for inc in incidents:
        hits = sorted((a for a in alerts if inc.has_key(a) and inc.start - EARLY <= a.detected_at <= inc.end + GRACE),
                      key=lambda a: (a.detected_at, a.id))
        severity = max((a.severity for a in hits), key=("warning", "critical").index, default=None)
        results.append(IncidentResult(inc, arrivals.get(inc.id, inc.start), hits[0] if hits else None, severity,
                                      tuple(dict.fromkeys(a.rule for a in hits))))
    false = [a for a in alerts if not any(inc.explains(a, addresses.get(a.id, frozenset())) for inc in incidents)]
    ip_alerts = [a for a in alerts if a.key_type == "ip" and _trusted(a.key, trusted)]
    return Evaluation(results=results, false_alerts=false,
                      trusted_bans=[a for a in ip_alerts if a.action == "ban_ip"], trusted_alerts=ip_alerts,
                      days=days, alerts=len(alerts),
                      false_by_rule=Counter((a.rule, a.severity) for a in false))
