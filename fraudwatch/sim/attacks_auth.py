"""Attacks on the SIP front door: REGISTER floods, password guessing, credential stuffing and scanners.

Every injector opens its incident, writes its events inside ``sink.within(incident)`` (which sets the label's
start and end to the first and last event) and fills in the addresses, accounts and a one-line note.
"""

from __future__ import annotations

import random

from fraudwatch.sim import dialogs, kernel
from fraudwatch.sim.context import GUESSES, SCANNER_UAS, Ctx
from fraudwatch.sim.dialogs import ILLEGAL, CallSpec
from fraudwatch.sim.model import DESK_UAS, SOFT_UAS
from fraudwatch.sim.sink import call_id

SUSPEND_AFTER = 10  # consecutive failures before the switch suspends an endpoint for a source
SUSPEND_SECONDS = 300
VICTIM_SEEN_MS = 3 * 3_600_000  # a brute-force victim has been registered this long: an account the attacker knows


def _attacker_port(rng: random.Random) -> int:
    return rng.choice((5060, 5060, 5070, 5080, rng.randint(1024, 65000)))


def _flood_request(ctx: Ctx, rng: random.Random, t: int, ip: str, port: int, ua: str, p403: float) -> int:
    """One unsolicited REGISTER: challenged (401), or refused (403 and an [AUTH] FAIL) when it carried a
    digest for a user that does not exist or a wrong password."""
    sink, user = ctx.sink, ctx.guess_user(rng)
    cid = call_id(rng, "scanner", ip)
    dialogs.request(sink, t, "REGISTER", ip, port, cid, ua, user=user)
    t += rng.randint(1, 3)
    if rng.random() < p403:
        detail = rng.choice(("user not exist", "password error"))
        dialogs.auth_fail(sink, t, user, ip, port, "REGISTER", detail)
        dialogs.response(sink, t + 1, 403, "REGISTER", ip, port, cid, user=user, detail=detail)
        return t + 1
    dialogs.response(sink, t, 401, "REGISTER", ip, port, cid, user=user)
    return t


def register_flood_single(ctx: Ctx, rng: random.Random, t0: int) -> None:
    sink = ctx.sink
    ip, port = ctx.pool.single(), _attacker_port(rng)
    ua = rng.choice(("friendly-scanner", "sipcli/v1.8", "VaxSIPUserAgent/3.1", rng.choice(DESK_UAS)))
    n, duration = rng.randint(1200, 2500), rng.randint(180, 420) * 1000
    inc = sink.open("register_flood_single")
    inc.ips = [ip]
    with sink.within(inc):
        t, last = t0, t0
        for _ in range(n):
            last = _flood_request(ctx, rng, t, ip, port, ua, 0.15)
            t += int(rng.expovariate(n / duration)) + 1
        tk = t0 + rng.randint(1500, 3000)
        while tk < last - 1000:  # the rate-limit chain logs (itself rate-limited) while the flood lasts
            sink.kern(tk, kernel.udp_sip(rng, "SIP-RATELIMIT: ", ip, port))
            tk += rng.randint(1000, 4000)
    inc.notes = (f"{n} REGISTERs for guessed users in {duration // 60000} min from one address, UA {ua}; "
                 f"mostly 401, ~15% 403 with [AUTH] FAIL; kern.log SIP-RATELIMIT")


def register_flood_distributed(ctx: Ctx, rng: random.Random, t0: int) -> None:
    sink = ctx.sink
    bots = rng.randint(200, 350)
    window = rng.randint(10, 25) * 60_000
    uas = rng.sample((*DESK_UAS, "", "Cisco-SIPGateway/IOS-12.x", "PolycomSoundPointIP-SPIP_430-UA/3.2.3"), 2)
    inc = sink.open("register_flood_distributed")
    total = 0
    with sink.within(inc):
        for _ in range(bots):
            ip = ctx.pool.botnet_v4() if rng.random() < 0.15 else ctx.pool.botnet_v6()
            port, ua = _attacker_port(rng), rng.choice(uas)
            inc.ips.append(ip)
            t = t0 + rng.randint(0, window - 30_000)
            first = t
            for _ in range(rng.randint(2, 8)):
                t = _flood_request(ctx, rng, t, ip, port, ua, 0.10) + rng.randint(50, 3000)
                total += 1
            if rng.random() < 0.1:
                sink.kern(first + rng.randint(1, t - first - 1), kernel.udp_sip(rng, "SIP-RATELIMIT: ", ip, port))
    n6 = sum(":" in ip for ip in inc.ips)
    inc.notes = (f"botnet of {bots} addresses ({n6} IPv6 in 2001:db8:bad::/48, {bots - n6} IPv4) sending "
                 f"{total} REGISTERs in {window // 60000} min, 2-8 each; 401/403")


def _victim(ctx: Ctx, rng: random.Random, t0: int) -> tuple[str, str]:
    """A phone the attacker knows is real: one registered for the last few hours (from the log's start), when
    there is one; else any phone."""
    since = t0 - VICTIM_SEEN_MS
    phones = ctx.phones()
    seen = [ep for ep in phones
            if since >= ctx.model.start_ms and ctx.presence.online_throughout(ep.username, since, t0)]
    ep = rng.choice(seen or phones)
    return ep.username, ep.ua


def _guessing(ctx: Ctx, rng: random.Random, t: int, user: str, ip: str, port: int, ua: str,
              state: dict[str, int]) -> int:
    """One password guess; after SUSPEND_AFTER straight failures the switch suspends the user for this source
    and refuses without checking until the suspension ends."""
    sink = ctx.sink
    if t < state.get("suspended_until", 0):
        return dialogs.register_fail(sink, rng, t, user, ip, port, ua, challenge=False,
                                     detail="endpoint suspended", log_fail=False, style="scanner")
    t = dialogs.register_fail(sink, rng, t, user, ip, port, ua, style="scanner")
    state["failures"] = state.get("failures", 0) + 1
    if state["failures"] >= SUSPEND_AFTER:
        t += 1
        dialogs.auth_suspend(sink, t, user, ip, port, SUSPEND_SECONDS)
        state["failures"], state["suspended_until"] = 0, t + SUSPEND_SECONDS * 1000
    return t


def bruteforce_fast(ctx: Ctx, rng: random.Random, t0: int) -> None:
    sink = ctx.sink
    ip, port = ctx.pool.single(), _attacker_port(rng)
    user, phone_ua = _victim(ctx, rng, t0)
    ua = rng.choice(("friendly-scanner", "sipcli/v1.8", phone_ua))
    attempts, duration = rng.randint(150, 400), rng.randint(5, 15) * 60_000
    inc = sink.open("bruteforce_fast")
    inc.ips, inc.accounts = [ip], [user]
    state: dict[str, int] = {}
    with sink.within(inc):
        t = t0
        for _ in range(attempts):
            t = _guessing(ctx, rng, t, user, ip, port, ua, state)
            t += int(rng.expovariate(attempts / duration)) + 5
    inc.notes = (f"{attempts} password guesses for user {user} in ~{duration // 60000} min, UA {ua}; "
                 f"401 then 403 + [AUTH] FAIL, [AUTH] SUSPEND every {SUSPEND_AFTER} failures")


def bruteforce_slow(ctx: Ctx, rng: random.Random, t0: int) -> None:
    sink = ctx.sink
    ip, port = ctx.pool.single(), _attacker_port(rng)
    user, _ = _victim(ctx, rng, t0)
    ua = rng.choice((*DESK_UAS, *SOFT_UAS))
    hours = rng.uniform(3.0, 6.0)
    end = t0 + int(hours * 3_600_000)
    inc = sink.open("bruteforce_slow")
    inc.ips, inc.accounts = [ip], [user]
    n = 0
    with sink.within(inc):
        t = t0
        while t < end:
            t = dialogs.register_fail(sink, rng, t, user, ip, port, ua, style="desk")
            n += 1
            t += rng.randint(120_000, 360_000)
    inc.notes = (f"{n} password guesses for user {user} over {hours:.1f} h, one every 2-6 min (below the "
                 f"suspend threshold), spoofed phone UA {ua}")


def credential_stuffing(ctx: Ctx, rng: random.Random, t0: int) -> None:
    sink = ctx.sink
    ip, port = ctx.pool.single(), _attacker_port(rng)
    ua = rng.choice(("sipcli/v1.8", "VaxSIPUserAgent/3.1", rng.choice(SOFT_UAS)))
    phones = [ep.username for ep in ctx.phones()]
    users = rng.sample(phones, min(len(phones), rng.randint(20, 40))) + rng.sample(GUESSES, rng.randint(5, 10))
    rng.shuffle(users)
    inc = sink.open("credential_stuffing")
    inc.ips, inc.accounts = [ip], list(users)
    n = 0
    with sink.within(inc):
        t = t0
        for user in users:
            for _ in range(rng.randint(1, 3)):
                t = dialogs.register_fail(sink, rng, t, user, ip, port, ua, style="scanner")
                t += rng.randint(1000, 8000)
                n += 1
    inc.notes = f"{n} logins for {len(users)} different users (leaked list) from one address, UA {ua}; all 403"


_TOLL_TESTS = ("00972592{r}", "900441632{r}", "011972595{r}", "0046769{r}", "9011441{r}", "00{r}")
_ODD_USERS = ("1' or '1'='1", '100"; DROP TABLE e_cdr;--', "<script>alert(1)</script>", "..\\..\\etc\\passwd")


def scanner(ctx: Ctx, rng: random.Random, t0: int) -> None:
    """A sipvicious-style run: svmap OPTIONS, svwar extension sweep, then toll-test INVITEs that the switch
    refuses as illegal calls (VOS3000 writes those to the CDRs with endreason -9)."""
    sink = ctx.sink
    ip, port = ctx.pool.single(), _attacker_port(rng)
    ua = rng.choice(SCANNER_UAS)
    inc = sink.open("scanner")
    inc.ips = [ip]
    with sink.within(inc):
        t = t0
        n_opt = rng.randint(1, 4)
        for i in range(n_opt):
            cid = call_id(rng, "scanner", ip)
            probe_ua = f'{ua}" user="admin' if i == 0 else ua  # a header-injection attempt in the User-Agent
            dialogs.request(sink, t, "OPTIONS", ip, port, cid, probe_ua, user="100")
            dialogs.response(sink, t + 1, 200, "OPTIONS", ip, port, cid)
            t += rng.randint(200, 2000)
        first_ext = rng.choice((100, 1000, 2000, 6000))
        n_ext = rng.randint(150, 500)
        method = rng.choice(("REGISTER", "REGISTER", "INVITE"))
        for k in range(n_ext):
            user = rng.choice(_ODD_USERS) if k == n_ext // 2 else str(first_ext + k)
            cid = call_id(rng, "scanner", ip)
            dialogs.request(sink, t, method, ip, port, cid, ua, user=user)
            status = 401 if method == "REGISTER" else 407
            dialogs.response(sink, t + rng.randint(1, 3), status, method, ip, port, cid, user=user)
            t += rng.randint(8, 60)
        n_inv = rng.randint(3, 10)
        for _ in range(n_inv):
            t += rng.randint(500, 5000)
            number = rng.choice(_TOLL_TESTS).format(r=rng.randint(100000, 999999))
            spec = CallSpec(ts=t, ip=ip, port=port, user=str(first_ext), ua=ua, style="scanner",
                            caller=str(first_ext), dialed=number, callee=number, dest=None, account="",
                            account_name="", agent="", calllevel=0, gateway="", challenge=0,
                            ring_ms=rng.randint(5, 40), hold_s=0, status=403, enddirection=ILLEGAL[0],
                            endreason=ILLEGAL[1])
            cdr = dialogs.emit_call(sink, rng, spec)
            t = cdr.stoptime if cdr else t
        first, last = inc.first_ms or t0, inc.last_ms or t
        tk = first + 1000
        while tk < last - 1000:  # the UA string-match chain drops (and logs) part of the scan
            prefix = "SIP-DROP: " if rng.random() < 0.7 else "SIP-RATELIMIT: "
            sink.kern(tk, kernel.udp_sip(rng, prefix, ip, port))
            tk += rng.randint(300, 4000)
    inc.notes = (f"{ua}: {n_opt} OPTIONS, {n_ext} {method} probes of extensions {first_ext}-{first_ext + n_ext - 1},"
                 f" {n_inv} toll-test INVITEs refused as illegal calls (CDR endreason -9); kern.log SIP-DROP")
