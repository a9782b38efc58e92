"""Incidents beside labelled attacks (the simulator's labels.csv: fraudwatch.sim.labels): which incidents hold
each attack, judged the way an operator would — the same addresses or accounts, at the same time.

An incident *holds* a labelled attack when their times overlap (within SLACK: a rule's window may start its
alert's events a little before the attack, a rule on CDRs sees a call when it ends) and they share an address
or an account. An attack labelled with neither (a switch-wide event: registrations dropping, a restart) is held
by a switch-wide incident at the same time. The goal (issue 23): every labelled attack in exactly one incident,
and not many more incidents than attacks.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudwatch.detect.evaluate import Incident as Label
from fraudwatch.errors import UsageError
from fraudwatch.netaddr import parse_ip
from fraudwatch.sim.labels import HEADER

SLACK = dt.timedelta(minutes=15)


@dataclass(frozen=True)
class Held:
    label: Label
    incidents: tuple[str, ...]  # ids of the incidents that hold it (one, when all is well)


def load_labels(path: Path) -> list[Label]:
    """The rows of a labels.csv (as `fraudwatch.detect.evaluate` reads them, checked: a file that is not one
    is a usage error naming it and the line)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            if tuple(reader.fieldnames or ()) != HEADER:
                raise UsageError(f"{path}: not a labels.csv (its header should be {','.join(HEADER)})")
            rows = list(reader)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    out = []
    for n, r in enumerate(rows, 2):
        try:
            start, end = dt.datetime.fromisoformat(r["start"]), dt.datetime.fromisoformat(r["end"])
        except (TypeError, ValueError):
            raise UsageError(f"{path}:{n}: start or end is not a time") from None
        ips = frozenset(str(a) for x in r["ips"].split(";") if (a := parse_ip(x.strip())) is not None)
        accounts = frozenset(x.strip() for x in r["accounts"].split(";") if x.strip())
        out.append(Label(r["incident_id"], r["kind"], start, end, ips, accounts, r["notes"]))
    return out


def holds(incident: Mapping[str, Any], label: Label) -> bool:
    """Whether an incident (a row of the `incidents` table, or an Incident's fields) holds a labelled attack."""
    if incident["first_seen"] > label.end + SLACK or incident["last_seen"] < label.start - SLACK:
        return False
    if not label.ips and not label.accounts:
        return bool(incident["kind"] == "switch")
    return bool(label.ips & set(incident["ips"]) or label.accounts & set(incident["accounts"]))


def match(labels: Sequence[Label], incidents: Sequence[Mapping[str, Any]]) -> list[Held]:
    """For each label, the incidents that hold it."""
    return [Held(lab, tuple(str(i["id"]) for i in incidents if holds(i, lab))) for lab in labels]


def allowed_incidents(labels: Sequence[Label], days: float) -> float:
    """The most incidents the goal allows: 1.5 per labelled attack, plus 2 a day."""
    return 1.5 * len(labels) + 2 * days
