"""When each endpoint is reachable: softphones follow office hours, switch-wide incidents knock phones off.

Registrations and calls both consult the same :class:`Presence`, so a phone that is offline neither refreshes
its registration nor places calls.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from fraudwatch.sim.model import LOCAL_UTC_OFFSET_HOURS, Endpoint, Model
from fraudwatch.sim.sink import Incident

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def local_hour(ts: int) -> int:
    return ((ts + LOCAL_UTC_OFFSET_HOURS * HOUR_MS) // HOUR_MS) % 24


def local_weekday(ts: int) -> int:
    """Monday is 0 (1970-01-01 was a Thursday)."""
    return ((ts + LOCAL_UTC_OFFSET_HOURS * HOUR_MS) // DAY_MS + 3) % 7


def local_midnight(ts: int) -> int:
    off = LOCAL_UTC_OFFSET_HOURS * HOUR_MS
    return (ts + off) // DAY_MS * DAY_MS - off


@dataclass(frozen=True, slots=True)
class Absence:
    """An endpoint is away in [start, end). ``mode`` says how it leaves: ``none`` (was never there),
    ``logoff`` (unregisters), ``vanish`` (stops refreshing, expires), ``outage`` (the switch's keepalive
    times out), ``restart`` (the switch forgets it; it re-registers at ``end``)."""

    start: int
    end: int
    mode: str
    incident: Incident | None = None


class Presence:
    def __init__(self) -> None:
        self._absences: dict[str, list[Absence]] = {}

    def add(self, user: str, absence: Absence) -> None:
        items = self._absences.setdefault(user, [])
        bisect.insort(items, absence, key=lambda a: a.start)

    def absences(self, user: str) -> list[Absence]:
        return self._absences.get(user, [])

    def online(self, user: str, ts: int) -> bool:
        return not any(a.start <= ts < a.end for a in self._absences.get(user, ()))

    def online_throughout(self, user: str, start: int, end: int) -> bool:
        return not any(a.start < end and start < a.end for a in self._absences.get(user, ()))


def _office_windows(rng: random.Random, model: Model) -> list[tuple[int, int]]:
    windows = []
    for day in range(model.days + 1):
        midnight = local_midnight(model.start_ms) + day * DAY_MS
        if local_weekday(midnight) < 5:
            if rng.random() < 0.9:
                on = midnight + int(rng.uniform(7.5, 10.0) * HOUR_MS)
                windows.append((on, midnight + int(rng.uniform(16.5, 19.5) * HOUR_MS)))
        elif rng.random() < 0.25:
            on = midnight + int(rng.uniform(10.0, 18.0) * HOUR_MS)
            windows.append((on, on + int(rng.uniform(1.0, 3.0) * HOUR_MS)))
    return [(max(a, model.start_ms), min(b, model.end_ms)) for a, b in windows
            if b > model.start_ms and a < model.end_ms]


def build_presence(rng: random.Random, model: Model) -> Presence:
    """Desk phones and PBXs stay up; softphones are online during their user's working day."""
    presence = Presence()
    for ep in model.endpoints():
        if ep.style != "soft":
            continue
        _add_softphone(rng, model, presence, ep)
    return presence


def _add_softphone(rng: random.Random, model: Model, presence: Presence, ep: Endpoint) -> None:
    cursor, mode = model.start_ms, "none"
    for on, off in _office_windows(rng, model):
        if on > cursor:
            presence.add(ep.username, Absence(cursor, on, mode))
        cursor, mode = off, ("logoff" if rng.random() < 0.6 else "vanish")
    if cursor < model.end_ms:
        presence.add(ep.username, Absence(cursor, model.end_ms, mode))
