"""Normal traffic: registrations and their refreshes, customers' and carriers' calls, and background chatter."""

from __future__ import annotations

import datetime as dt
import math
import random

from fraudwatch.sim import dialogs, kernel
from fraudwatch.sim.dialogs import CALLEE_HANGUP, CALLER_HANGUP, CallSpec
from fraudwatch.sim.model import HOME_REGION, HOURLY, WEEKLY, Endpoint, Model, carrier_hourly
from fraudwatch.sim.presence import DAY_MS, HOUR_MS, Absence, Presence, local_hour, local_midnight, local_weekday
from fraudwatch.sim.sink import Sink, call_id

WRONG_PASSWORD_P = 0.02  # a real user mistypes a password on a fresh registration
MISTYPES_PER_DAY = 2  # and now and then someone re-provisions a phone with a wrong password, then fixes it


def outcome(rng: random.Random, answer_p: float, median_s: float = 75.0, sigma: float = 1.0,
            max_s: int = 7200) -> tuple[int, int, int, int, int]:
    """(ring ms, hold s, final status, enddirection, endreason) for one call attempt."""
    if rng.random() < answer_p:
        ring = int(min(40_000, max(800, math.exp(rng.gauss(math.log(7000), 0.5)))))
        hold = int(min(max_s, max(1, math.exp(rng.gauss(math.log(median_s), sigma)))))
        end = CALLER_HANGUP if rng.random() < 0.5 else CALLEE_HANGUP
        return ring, hold, 200, *end
    r = rng.random()
    if r < 0.30:
        return rng.randint(300, 3000), 0, 486, 1, 486
    if r < 0.62:
        return rng.randint(20_000, 45_000), 0, 480, 1, 480
    if r < 0.93:
        return rng.randint(3_000, 25_000), 0, 487, 0, 487
    status = 404 if r < 0.97 else 503
    return rng.randint(20, 200), 0, status, 2, status


def dialed_form(number: str, region: str) -> str:
    """How a UK customer dials: national format at home, 00 + E.164 abroad."""
    if region == HOME_REGION:
        return "0" + number[len("44"):]
    return "00" + number


# --- registrations ---------------------------------------------------------------------------------------------

def registrations(sink: Sink, model: Model, presence: Presence, rng: random.Random) -> None:
    for ep in model.endpoints():
        _timeline(sink, rng, ep, presence.absences(ep.username), model.start_ms, model.end_ms)
    _mistypes(sink, model, presence, rng)


def _mistypes(sink: Sink, model: Model, presence: Presence, rng: random.Random) -> None:
    """Genuine users' wrong passwords: one to three 403s from the phone's usual address, then success."""
    endpoints = model.endpoints()
    for _ in range(model.days * MISTYPES_PER_DAY):
        for _ in range(30):
            ep = rng.choice(endpoints)
            t = local_midnight(model.start_ms) + rng.randrange(model.days) * DAY_MS
            t += rng.randint(8 * HOUR_MS, 19 * HOUR_MS)
            if model.start_ms <= t < model.end_ms - HOUR_MS and presence.online_throughout(
                    ep.username, t - 60_000, t + 15 * 60_000):
                break
        else:
            continue
        for _ in range(rng.randint(1, 3)):
            t = dialogs.register_fail(sink, rng, t, ep.username, ep.ip, ep.port, ep.ua, style=ep.style)
            t += rng.randint(5_000, 120_000)
        dialogs.register_ok(sink, rng, t, ep.username, ep.ip, ep.port, ep.ua, ep.expires, challenge=True,
                            online=False, style=ep.style)


def _gap(rng: random.Random, ep: Endpoint) -> int:
    """Phones refresh somewhere between half-way and just before expiry."""
    if rng.random() < 0.2:
        return int(ep.expires * 1000 * rng.uniform(0.5, 0.6))
    return ep.expires * 1000 - rng.randint(10_000, 60_000)


def _timeline(sink: Sink, rng: random.Random, ep: Endpoint, absences: list[Absence], start: int,
              end: int) -> None:
    user, ip, port, ua = ep.username, ep.ip, ep.port, ep.ua
    cid = call_id(rng, ep.style, ip)  # the registration Call-ID, new each time the endpoint starts afresh
    reg_until = 0  # the switch holds a registration until this time
    last_reg = 0
    pos, previous = start, None
    for absence in [*absences, None]:
        seg_end = absence.start if absence else end
        if seg_end > pos:
            if pos == start and previous is None:  # registered before the log begins
                last_reg = start - rng.randint(0, int(ep.expires * 800))
                reg_until = last_reg + ep.expires * 1000
            elif reg_until > pos:  # back before the registration expired: a plain refresh
                last_reg = pos
                dialogs.register_ok(sink, rng, pos, user, ip, port, ua, ep.expires, challenge=True,
                                    online=False, cid=cid)
                reg_until = pos + ep.expires * 1000
            else:
                with sink.within(previous.incident if previous else None):
                    t = pos
                    if rng.random() < WRONG_PASSWORD_P:
                        for _ in range(rng.randint(1, 3)):
                            t = dialogs.register_fail(sink, rng, t, user, ip, port, ua, style=ep.style)
                            t += rng.randint(8_000, 90_000)
                    if t < seg_end:
                        cid = call_id(rng, ep.style, ip)
                        last_reg = dialogs.register_ok(sink, rng, t, user, ip, port, ua, ep.expires,
                                                       challenge=True, online=True, cid=cid)
                        reg_until = last_reg + ep.expires * 1000
            nxt = max(last_reg + _gap(rng, ep), pos + rng.randint(1_000, 120_000))
            while pos <= nxt < seg_end and reg_until > 0:
                challenge = rng.random() < 0.2
                last_reg = dialogs.register_ok(sink, rng, nxt, user, ip, port, ua, ep.expires,
                                               challenge=challenge, online=False, cid=cid)
                reg_until = last_reg + ep.expires * 1000
                nxt = last_reg + _gap(rng, ep)
        if absence is None:
            break
        reg_until = _leave(sink, rng, ep, absence, reg_until, end, cid)
        pos, previous = absence.end, absence


def _leave(sink: Sink, rng: random.Random, ep: Endpoint, absence: Absence, reg_until: int, end: int,
           cid: str) -> int:
    """Write how the endpoint goes away; return until when the switch still holds its registration."""
    if reg_until <= absence.start:
        return 0
    user, ip, port = ep.username, ep.ip, ep.port
    if absence.mode == "logoff":
        dialogs.unregister(sink, rng, absence.start, user, ip, port, ep.ua, cid=cid)
        return 0
    if absence.mode == "vanish":
        off = reg_until + rng.randint(0, 30_000)
        if off < min(absence.end, end):
            dialogs.reg_offline(sink, off, user, ip, port, "expired")
            return 0
        return reg_until
    if absence.mode == "outage":
        with sink.within(absence.incident):
            dialogs.reg_offline(sink, absence.start + rng.randint(20_000, 180_000), user, ip, port,
                                "no response")
        return 0
    return 0  # restart: the switch forgot it without a word


# --- calls -----------------------------------------------------------------------------------------------------

def _arrivals(rng: random.Random, model: Model, per_hour: float, curve_carrier: bool) -> list[int]:
    out = []
    for h in range(model.days * 24):
        h0 = model.start_ms + h * HOUR_MS
        hourly = carrier_hourly(local_hour(h0)) if curve_carrier else HOURLY[local_hour(h0)]
        lam = per_hour * hourly * WEEKLY[local_weekday(h0)]
        if lam <= 0:
            continue
        t = h0 + int(rng.expovariate(lam) * HOUR_MS)
        while t < h0 + HOUR_MS:
            out.append(t)
            t += int(rng.expovariate(lam) * HOUR_MS)
    return out


def customer_calls(sink: Sink, model: Model, presence: Presence, rng: random.Random) -> None:
    deck = model.deck
    for acc in model.customers:
        for ts in _arrivals(rng, model, acc.calls_per_hour, False):
            eps = [ep for ep in acc.endpoints if presence.online(ep.username, ts)]
            if not eps:
                continue
            ep = rng.choice(eps)
            if acc.address_book and rng.random() < 0.35:
                di, number = rng.choice(acc.address_book)
            else:
                di = rng.choices(range(len(deck)), acc.weights)[0]
                number = model.numbers.draw(rng, deck[di])
            dest = deck[di]
            answer_p = 0.72 if dest.kind == "premium" else 0.64
            ring, hold, status, direction, reason = outcome(rng, answer_p)
            spec = CallSpec(
                ts=ts, ip=ep.ip, port=ep.port, user=ep.username, ua=ep.ua, style=ep.style,
                caller=rng.choice(ep.dids), dialed=dialed_form(number, dest.region), callee=number,
                dest=dest, account=acc.account, account_name=acc.name, agent=acc.agent,
                calllevel=acc.calllevel, gateway=acc.gateway,
                challenge=407 if rng.random() < 0.4 else 0, ring_ms=ring, hold_s=hold, status=status,
                enddirection=direction, endreason=reason,
            )
            dialogs.emit_call(sink, rng, spec)


def carrier_calls(sink: Sink, model: Model, rng: random.Random) -> None:
    """Carriers hand over a steady stream of calls, IP-authenticated; now and then one still gets a 401."""
    deck = model.deck
    origins = [d for d in deck if d.region != HOME_REGION and d.kind in ("fixed", "mobile")
               and d.risk != "high-risk"]
    for acc in model.carriers:
        for ts in _arrivals(rng, model, acc.calls_per_hour, True):
            di = rng.choices(range(len(deck)), acc.weights)[0]
            dest, number = deck[di], model.numbers.draw(rng, deck[di])
            origin = rng.choice(origins)
            ring, hold, status, direction, reason = outcome(rng, 0.6, median_s=90.0)
            spec = CallSpec(
                ts=ts, ip=acc.ip, port=acc.port, user=None, ua=acc.ua, style="trunk",
                caller=model.numbers.draw(rng, origin), dialed=number, callee=number, dest=dest,
                account=acc.account, account_name=acc.name, agent="", calllevel=acc.calllevel,
                gateway=acc.gateway,
                challenge=401 if rng.random() < 0.03 else 0, ring_ms=ring, hold_s=hold, status=status,
                enddirection=direction, endreason=reason,
            )
            dialogs.emit_call(sink, rng, spec)


# --- background ------------------------------------------------------------------------------------------------

_DEBUG_SIP = ("timer T1 fired for transaction z9hG4bK{h}", "transaction z9hG4bK{h} terminated",
              "dialog {h} refreshed by re-INVITE", "retransmission of response 200 for z9hG4bK{h}")
_KERNEL_NOISE = ("perf: interrupt took too long (2504 > 2500), lowering kernel.perf_event_max_sample_rate "
                 "to 79750", "e1000e 0000:00:19.0 eth0: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: None",
                 "nf_conntrack: default automatic helper assignment has been turned off for security reasons")


def background(sink: Sink, model: Model, rng: random.Random) -> None:
    start, end = model.start_ms, model.end_ms
    # Carriers' OPTIONS keepalives (about a third of them ping, every fifteen minutes).
    for acc in model.carriers:
        if rng.random() < 0.67:
            continue
        t = start + rng.randint(0, 900_000)
        while t < end - 1000:
            cid = call_id(rng, "trunk", acc.ip)
            dialogs.request(sink, t, "OPTIONS", acc.ip, acc.port, cid, acc.ua)
            dialogs.response(sink, t + rng.randint(1, 4), 200, "OPTIONS", acc.ip, acc.port, cid)
            t += 900_000 + rng.randint(-500, 500)
    # The proxy's debug chatter.
    t = start + rng.randint(0, 300_000)
    while t < end:
        sink.sip(t, "DEBUG", rng.choice(_DEBUG_SIP).format(h=f"{rng.getrandbits(40):010x}"))
        t += rng.randint(60_000, 600_000)
    # The core's hourly licence line and the daily CDR table.
    for h in range(model.days * 24):
        t = start + h * HOUR_MS
        if h % 24 == 0:
            day = dt.datetime.fromtimestamp(t / 1000, dt.UTC).strftime("%Y%m%d")
            sink.mbx(t, "INFO", f"[SYS] cdr table e_cdr_{day} created")
        sink.mbx(t + rng.randint(100, 900), "INFO", "[SYS] mbx3000 license ok lines=3000")
    # kern.log: a few ordinary kernel messages, and the internet's background probing of other ports
    # (FW-DROP, TCP, from 192.0.2.200-254: not SIP, not part of any incident).
    for _ in range(model.days * 2):
        sink.kern(rng.randint(start, end - 1), rng.choice(_KERNEL_NOISE))
    t = start + rng.randint(0, HOUR_MS)
    while t < end:
        sink.kern(t, kernel.tcp_probe(rng, f"192.0.2.{rng.randint(200, 254)}"))
        t += rng.randint(600_000, 3 * HOUR_MS)

