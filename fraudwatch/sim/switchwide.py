"""Switch-wide incidents: many endpoints lose their registrations, or all of them re-register at once.

Both are planned before the registrations are written: they add absences to :class:`Presence` tagged with the
incident, and the registration timeline writes the OFFLINE / re-registration lines inside the incident.
"""

from __future__ import annotations

import random

from fraudwatch.sim.context import Ctx
from fraudwatch.sim.presence import Absence

MINUTE = 60_000


def registration_drop(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """An access network carrying about half of the customers fails for an hour: the switch's keepalives to
    their endpoints go unanswered, the endpoints go OFFLINE, and they re-register when the network is back."""
    model = ctx.model
    outage = rng.randint(60, 80) * MINUTE
    accounts = [a for a in model.customers if rng.random() < 0.55] or list(model.customers[:1])
    inc = ctx.sink.open("registration_drop")
    hit = 0
    for acc in accounts:
        for ep in acc.endpoints:
            if not ctx.presence.online_throughout(ep.username, t0 - 15 * MINUTE, t0 + outage + 25 * MINUTE):
                continue
            back = t0 + outage + rng.randint(0, 10 * MINUTE)
            ctx.presence.add(ep.username, Absence(t0, back, "outage", inc))
            hit += 1
    inc.notes = (f"{hit} endpoints of {len(accounts)} accounts went OFFLINE (keepalive: no response) and stopped "
                 f"registering for ~{outage // MINUTE} min, then re-registered")


def registration_spike(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """The SIP proxy restarts and the core flushes its registrations: every online endpoint re-registers
    (401 challenge, 200, [REG] ONLINE) within a few minutes."""
    sink = ctx.sink
    inc = sink.open("registration_spike")
    with sink.within(inc):
        sink.sip(t0, "INFO", "sipproxy stopping reason=\"admin restart\"")
        sink.mbx(t0 + 40, "INFO", "[SYS] registrations flushed reason=\"sipproxy restart\"")
        sink.sip(t0 + 2500, "INFO", f"sipproxy started version=2.1.9.07 pid={rng.randint(2000, 60000)}")
    hit = 0
    for ep in ctx.model.endpoints():
        if ctx.presence.online_throughout(ep.username, t0 - 5 * MINUTE, t0 + 15 * MINUTE):
            back = t0 + rng.randint(3_000, 4 * MINUTE)
            ctx.presence.add(ep.username, Absence(t0, back, "restart", inc))
            hit += 1
    inc.notes = f"sipproxy restart flushed registrations; {hit} endpoints re-registered ([REG] ONLINE) within 4 min"
