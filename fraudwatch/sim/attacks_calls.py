"""Toll fraud: IRSF pumping through a compromised account, a credit-limit breach, a wangiri burst, a hacked PBX
inside the trusted network pumping premium numbers, and an account taken over through its trunk.

These write complete calls (sipproxy INVITE/BYE, mbx [CALL] START/END and the CDR row) through
:func:`dialogs.emit_call`, so detectors see the same call in every source -- except the trunk takeover, whose
calls reach the CDRs only.
"""

from __future__ import annotations

import random

from fraudwatch.sim import dialogs
from fraudwatch.sim.context import Ctx
from fraudwatch.sim.dialogs import CALLER_HANGUP, CallSpec
from fraudwatch.sim.model import SOFT_UAS, Account, Destination, Endpoint, is_hosted
from fraudwatch.sim.normal import dialed_form, outcome
from fraudwatch.sim.presence import DAY_MS, HOUR_MS
from fraudwatch.sim.sink import call_id


def _spec(acc: Account, ep: Endpoint, *, ts: int, ip: str, port: int, ua: str, caller: str, callee: str,
          dest: Destination, challenge: int, call: tuple[int, int, int, int, int], style: str = "soft") -> CallSpec:
    ring, hold, status, direction, reason = call
    return CallSpec(ts=ts, ip=ip, port=port, user=ep.username, ua=ua, style=style, caller=caller,
                    dialed=dialed_form(callee, dest.region), callee=callee, dest=dest, account=acc.account,
                    account_name=acc.name, agent=acc.agent, calllevel=acc.calllevel, gateway=acc.gateway,
                    challenge=challenge, ring_ms=ring, hold_s=hold, status=status,
                    enddirection=direction, endreason=reason)


def irsf_pumping(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """At night an attacker registers with a stolen phone's credentials from his own address and keeps several
    channels busy with long calls to number ranges in high-risk destinations (revenue share)."""
    sink, model = ctx.sink, ctx.model
    acc = ctx.pick_account(rng, pbx=False)
    ep = rng.choice(acc.endpoints)
    ip, port = ctx.pool.single(), rng.randint(1024, 65000)
    ua = rng.choice((*SOFT_UAS, ep.ua))
    risky = [d for d in model.deck if d.risk == "high-risk"]
    ranges: list[tuple[Destination, list[str]]] = []
    for dest in rng.sample(risky, rng.randint(1, 2)):
        base = model.numbers.draw(rng, dest)
        ranges.append((dest, [model.numbers.draw(rng, dest, base=base, vary=3) for _ in range(rng.randint(5, 15))]))
    window = int(rng.uniform(2.0, 4.0) * 3_600_000)
    inc = sink.open("irsf_pumping")
    inc.ips, inc.accounts = [ip], [acc.account]
    calls, answered, seconds, fee = 0, 0, 0, 0
    with sink.within(inc):
        reg_cid = call_id(rng, "soft", ip)
        t = dialogs.register_ok(sink, rng, t0, ep.username, ip, port, ua, 3600, challenge=True, online=True,
                                cid=reg_cid)
        last = t
        channels = rng.randint(3, 8)
        for _ in range(channels):
            tc = t + rng.randint(5_000, 300_000)
            while tc < t0 + window:
                dest, numbers = rng.choice(ranges)
                call = outcome(rng, 0.85, median_s=rng.uniform(1200, 1800), sigma=0.6, max_s=3600)
                spec = _spec(acc, ep, ts=tc, ip=ip, port=port, ua=ua, caller=rng.choice(ep.dids),
                             callee=rng.choice(numbers), dest=dest, challenge=407, call=call)
                cdr = dialogs.emit_call(sink, rng, spec)
                if cdr is None:
                    break
                calls, answered = calls + 1, answered + (cdr.holdtime > 0)
                seconds, fee = seconds + cdr.holdtime, fee + cdr.fee_e4
                last = max(last, cdr.stoptime)
                tc = cdr.stoptime + rng.randint(2_000, 30_000)
        tr = t + rng.randint(1_500_000, 1_800_000)  # the softphone refreshes its registration every ~half hour
        while tr < last:
            dialogs.register_ok(sink, rng, tr, ep.username, ip, port, ua, 3600, challenge=True, online=False,
                                cid=reg_cid)
            tr += rng.randint(1_500_000, 1_800_000)
        dialogs.unregister(sink, rng, last + rng.randint(5_000, 60_000), ep.username, ip, port, ua, cid=reg_cid)
    keys = "/".join(d.key for d, _ in ranges)
    inc.notes = (f"user {ep.username} of account {acc.account} registered from {ip} ({ua}); {calls} calls on "
                 f"{channels} channels to {keys} ranges, {answered} answered, {seconds // 60} min, "
                 f"fee {fee / 10_000:.2f}")


def credit_limit_breach(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """A customer's own phone system runs up long international calls until its spend passes its balance plus
    its credit limit; billing sets that balance so the crossing falls inside the incident."""
    sink, model = ctx.sink, ctx.model
    acc = ctx.pick_account(rng)
    eps = [ep for ep in acc.endpoints if ctx.presence.online_throughout(ep.username, t0, t0 + 4 * 3_600_000)]
    ep = rng.choice(eps or list(acc.endpoints))
    dests = [model.dest(k) for k in ("NG-mobile", "PH-mobile", "PK-mobile", "CU-mobile")]
    window = int(rng.uniform(1.0, 3.0) * 3_600_000)
    inc = sink.open("credit_limit_breach")
    inc.accounts = [acc.account]
    call_ids: set[str] = set()
    fee = 0
    with sink.within(inc):
        for _ in range(rng.randint(2, 4)):
            tc = t0 + rng.randint(0, 600_000)
            while tc < t0 + window:
                dest = rng.choice(dests)
                call = outcome(rng, 0.8, median_s=600, sigma=0.5, max_s=3600)
                spec = _spec(acc, ep, ts=tc, ip=ep.ip, port=ep.port, ua=ep.ua, caller=rng.choice(ep.dids),
                             callee=model.numbers.draw(rng, dest), dest=dest, challenge=407, call=call)
                cdr = dialogs.emit_call(sink, rng, spec)
                if cdr is None:
                    break
                call_ids.add(cdr.callercallid)
                fee += cdr.fee_e4
                tc = cdr.stoptime + rng.randint(5_000, 120_000)
    ctx.credit[acc.account] = (inc, call_ids)
    inc.notes = (f"account {acc.account} ran {len(call_ids)} long international calls (fee {fee / 10_000:.2f}) "
                 f"from its own {ep.style} {ep.username}; spend passes money+limitmoney of customers.csv")


def wangiri(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """One-ring fraud: a compromised PBX account rings hundreds of mobiles for 0-3 s each, showing a premium
    caller ID so that victims call back."""
    sink, model = ctx.sink, ctx.model
    acc = ctx.pick_account(rng, pbx=True)
    ep = acc.endpoints[0]
    ip, port = ctx.pool.single(), rng.choice((5060, rng.randint(1024, 65000)))
    ua = rng.choice(("Asterisk PBX 13.1.0", ep.ua))
    callback = [d for d in model.deck if d.risk == "high-risk" and d.kind != "satellite"]
    clis = [model.numbers.draw(rng, rng.choice(callback)) for _ in range(rng.randint(1, 3))]
    targets = [model.dest("GB-mobile")] * 4 + [model.dest("IE-mobile")]
    n = rng.randint(200, 450)
    window = rng.randint(10, 30) * 60_000
    inc = sink.open("wangiri")
    inc.ips, inc.accounts = [ip], [acc.account]
    seen: set[str] = set()
    with sink.within(inc):
        t = t0
        for i in range(n):
            dest = rng.choice(targets)
            number = model.numbers.draw(rng, dest)
            while number in seen:
                number = model.numbers.draw(rng, dest)
            seen.add(number)
            ring = rng.randint(300, 3000)
            if rng.random() < 0.9:
                call = (ring, 0, 487, CALLER_HANGUP[0], 487)
            else:
                call = (ring, rng.randint(1, 3), 200, *CALLER_HANGUP)
            cli = rng.choice(clis)
            spec = _spec(acc, ep, ts=t, ip=ip, port=port, ua=ua, caller=cli, callee=number, dest=dest,
                         challenge=407 if i == 0 else 0, call=call, style="pbx")
            dialogs.emit_call(sink, rng, spec)
            t += int(rng.expovariate(n / window)) + 20
    inc.notes = (f"{n} calls of 0-3 s from {ip} with account {acc.account} ({ep.username}) to {len(seen)} "
                 f"distinct mobiles, caller IDs {', '.join(clis)} (premium/high-risk callback numbers)")


def trusted_pbx_pumping(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """A customer's IP-PBX on the operator's hosted platform, inside the trusted network, is hacked (a weak
    extension password on the PBX itself): from its own trusted address, on its own trunk, it pumps many short
    answered calls on parallel channels to a few international premium-rate number ranges -- each call short
    and cheap, the total dear (IRSF / traffic pumping). Nothing here may be banned; the account's calls still
    have to be seen."""
    sink, model = ctx.sink, ctx.model
    acc = ctx.pick_account(rng, pbx=True, hosted=True)
    ep = acc.endpoints[0]
    premium = [d for d in model.deck if d.kind == "premium" and d.risk == "high-risk"]
    ranges: list[tuple[Destination, list[str]]] = []
    for dest in rng.sample(premium, min(len(premium), rng.randint(1, 2))):
        base = model.numbers.draw(rng, dest)
        ranges.append((dest, [model.numbers.draw(rng, dest, base=base, vary=3) for _ in range(rng.randint(4, 10))]))
    window = int(rng.uniform(1.0, 2.5) * HOUR_MS)
    channels = rng.randint(4, 8)  # as many as the PBX's trunk allows, at once
    inc = sink.open("trusted_pbx_pumping")
    inc.accounts = [acc.account]  # no address: the PBX's own is trusted, and nothing is to be banned
    calls, answered, seconds, fee = 0, 0, 0, 0
    with sink.within(inc):
        for _ in range(channels):
            tc = t0 + rng.randint(0, 60_000)
            while tc < t0 + window:
                dest, numbers = rng.choice(ranges)
                call = outcome(rng, 0.9, median_s=rng.uniform(25, 60), sigma=0.4, max_s=180)
                spec = _spec(acc, ep, ts=tc, ip=ep.ip, port=ep.port, ua=ep.ua, caller=rng.choice(ep.dids),
                             callee=rng.choice(numbers), dest=dest, challenge=407 if rng.random() < 0.4 else 0,
                             call=call, style="pbx")
                cdr = dialogs.emit_call(sink, rng, spec)
                if cdr is None:
                    break
                calls, answered = calls + 1, answered + (cdr.holdtime > 0)
                seconds, fee = seconds + cdr.holdtime, fee + cdr.fee_e4
                tc = cdr.stoptime + rng.randint(3_000, 20_000)
    keys = "/".join(d.key for d, _ in ranges)
    inc.notes = (f"hosted PBX {ep.username} of account {acc.account} at trusted {ep.ip}: {calls} calls on "
                 f"{channels} channels to {keys} ranges, {answered} answered, {seconds // 60} min, "
                 f"fee {fee / 10_000:.2f}")


# Caller addresses abroad for the trunk takeover: addresses MaxMind's public GeoIP2 test data uses (docs/sources.md,
# "Addresses with a country in the simulator"), whose registry country iptocc knows; written into files, never
# contacted.
ABROAD = (("89.160.20.112", "SE"), ("89.160.20.128", "SE"), ("175.16.199.10", "CN"), ("216.160.83.56", "US"))


def cdr_takeover(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """An account's trunk is used from an address abroad (its IP authentication or its credentials leaked): calls
    to the account's ordinary destinations, answered and billed like its own, that reach the CDRs only -- the
    switch took them on a path whose logs fraudwatch does not read, so the signalling shows nothing. The account
    has called from home for at least a day before (what a detector can learn from)."""
    sink, model = ctx.sink, ctx.model
    first: dict[str, int] = {}
    for row in sink.cdrs:
        if row.customeraccount and row.stoptime < first.get(row.customeraccount, t0):
            first[row.customeraccount] = row.stoptime
    known = {a for a, t in first.items() if t <= t0 - DAY_MS - HOUR_MS}
    customers = [a for a in model.customers if a.account in known and a.account not in ctx.used_accounts
                 and not is_hosted(a)]
    if not customers:
        return
    acc = rng.choice(customers)
    ctx.used_accounts.add(acc.account)
    ep = rng.choice(acc.endpoints)
    ip, country = rng.choice(ABROAD)
    port = rng.randint(1024, 65000)
    ordinary = [i for i, d in enumerate(model.deck) if d.risk in ("domestic", "nearby")]
    weights = [acc.weights[i] for i in ordinary]
    window = int(rng.uniform(1.5, 3.0) * HOUR_MS)
    inc = sink.open("cdr_takeover")
    inc.ips, inc.accounts = [ip], [acc.account]
    calls, seconds, fee = 0, 0, 0
    with sink.within(inc):
        for _ in range(rng.randint(1, 3)):
            tc = t0 + rng.randint(0, 600_000)
            while tc < t0 + window:
                dest = model.deck[rng.choices(ordinary, weights)[0]]
                call = outcome(rng, 0.7, median_s=180, sigma=0.7, max_s=1800)
                spec = _spec(acc, ep, ts=tc, ip=ip, port=port, ua=ep.ua, caller=rng.choice(ep.dids),
                             callee=model.numbers.draw(rng, dest), dest=dest, challenge=0, call=call)
                cdr = dialogs.emit_call(sink, rng, spec, logged=False)
                if cdr is None:
                    break
                calls, seconds, fee = calls + 1, seconds + cdr.holdtime, fee + cdr.fee_e4
                tc = cdr.stoptime + rng.randint(20_000, 600_000)
    inc.notes = (f"account {acc.account}'s trunk used from {ip} ({country}), in the CDRs only: {calls} calls to "
                 f"ordinary destinations, {seconds // 60} min, fee {fee / 10_000:.2f}")
