"""Which incidents happen when: every kind at least once, spread over the days, at hours that suit the kind."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from fraudwatch.sim import attacks_auth, attacks_calls, switchwide
from fraudwatch.sim.context import Ctx
from fraudwatch.sim.model import Model
from fraudwatch.sim.presence import DAY_MS, HOUR_MS, local_midnight

Injector = Callable[[Ctx, random.Random, int], None]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    per_day: float  # expected incidents per day (at least one per run)
    hours: tuple[float, float]  # local start-hour window (may run past 24: the next morning)
    span_hours: float  # how long it can run, to keep it inside the simulated period
    inject: Injector
    switchwide: bool = False
    min_day: int = 0  # the first day it may start on (a detector needs that much history to tell it); when the
    # run is shorter, it is not scheduled


KINDS = (
    Kind("register_flood_single", 0.4, (0, 24), 0.3, attacks_auth.register_flood_single),
    Kind("register_flood_distributed", 0.25, (0, 24), 0.5, attacks_auth.register_flood_distributed),
    Kind("bruteforce_fast", 0.5, (18, 30), 0.4, attacks_auth.bruteforce_fast),
    Kind("bruteforce_slow", 0.3, (0, 24), 6.2, attacks_auth.bruteforce_slow),
    Kind("credential_stuffing", 0.3, (0, 24), 0.8, attacks_auth.credential_stuffing),
    Kind("scanner", 0.7, (0, 24), 0.2, attacks_auth.scanner),
    Kind("irsf_pumping", 0.3, (0, 3), 5.5, attacks_calls.irsf_pumping),
    Kind("credit_limit_breach", 0.25, (9, 15), 4.2, attacks_calls.credit_limit_breach),
    Kind("registration_drop", 0.2, (9, 15), 1.8, switchwide.registration_drop, switchwide=True),
    Kind("registration_spike", 0.2, (7, 21), 0.3, switchwide.registration_spike, switchwide=True),
    Kind("wangiri", 0.25, (10, 19), 0.7, attacks_calls.wangiri),
    Kind("trusted_pbx_pumping", 0.25, (18, 27), 2.7, attacks_calls.trusted_pbx_pumping),
    Kind("cdr_takeover", 0.25, (8, 18), 3.5, attacks_calls.cdr_takeover, min_day=1),
)
KIND_NAMES = tuple(k.name for k in KINDS)


@dataclass(frozen=True, slots=True)
class Slot:
    kind: Kind
    t0: int


def _place(rng: random.Random, model: Model, kind: Kind, day: int) -> int:
    midnight = local_midnight(model.start_ms) + day * DAY_MS
    t0 = midnight + int(rng.uniform(*kind.hours) * HOUR_MS)
    lo = model.start_ms + 20 * 60_000
    hi = model.end_ms - int(kind.span_hours * HOUR_MS) - 20 * 60_000
    if hi <= lo:
        return lo
    if not lo <= t0 <= hi:  # the preferred hour does not fit on this day: any time that fits
        t0 = rng.randint(max(lo, hi - 6 * HOUR_MS), hi) if t0 > hi else rng.randint(lo, min(hi, lo + 6 * HOUR_MS))
    return t0


def schedule(rng: random.Random, model: Model) -> list[Slot]:
    """Incident start times. Switch-wide incidents are kept three hours apart so they do not blur together."""
    instances = [k for k in KINDS if k.min_day < model.days
                 for _ in range(max(1, int(k.per_day * model.days + 0.5)))]
    rng.shuffle(instances)
    slots: list[Slot] = []
    for i, kind in enumerate(instances):
        day = max(kind.min_day, i % model.days)
        t0 = _place(rng, model, kind, day)
        for _ in range(50):
            clash = any(s.kind.switchwide and abs(s.t0 - t0) < 3 * HOUR_MS for s in slots)
            if not (kind.switchwide and clash):
                break
            t0 = _place(rng, model, kind, rng.randrange(model.days))
        slots.append(Slot(kind, t0))
    slots.sort(key=lambda s: (s.t0, s.kind.name))
    return slots
