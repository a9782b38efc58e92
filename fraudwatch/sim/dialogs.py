"""SIP exchanges rendered into the three log streams and the CDRs, shared by normal traffic and the attacks.

Each function writes one exchange with plausible millisecond gaps between its lines and returns the time of
its last line, so callers can chain exchanges without overlapping them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from fraudwatch.sim.model import Destination
from fraudwatch.sim.sink import Cdr, Sink, call_id, hostport, q

REASONS = {
    200: "OK", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
    407: "Proxy Authentication Required", 408: "Request Timeout", 480: "Temporarily Unavailable",
    486: "Busy Here", 487: "Request Terminated", 503: "Service Unavailable",
}  # fmt: skip

# enddirection / endreason written for each way a call ends. VOS3000's endreason table is undocumented
# (research/vos3000-formats.md §1.5); the simulator uses -7 caller hung up, -8 callee hung up, -9 illegal
# call (the value community tools query for attacker IPs), and the SIP status for calls that fail.
CALLER_HANGUP = (0, -7)
CALLEE_HANGUP = (1, -8)
ILLEGAL = (2, -9)


def _level(status: int) -> str:
    if status >= 500:
        return "ERROR"
    return "WARN" if status == 403 else "INFO"


def request_line(method: str, ip: str, port: int, cid: str, ua: str, *, user: str | None = None,
                 caller: str | None = None, callee: str | None = None) -> str:
    parts = [f"RECV {method} from {hostport(ip, port)}"]
    if user is not None:
        parts.append(f'user="{q(user)}"')
    if caller is not None:
        parts.append(f'caller="{q(caller)}"')
    if callee is not None:
        parts.append(f'callee="{q(callee)}"')
    # The User-Agent is written raw and last: the grammar takes everything up to the final quote.
    parts.append(f'callid="{q(cid)}" ua="{ua}"')
    return " ".join(parts)


def request(sink: Sink, ts: int, method: str, ip: str, port: int, cid: str, ua: str, *, user: str | None = None,
            caller: str | None = None, callee: str | None = None) -> None:
    sink.sip(ts, "INFO", request_line(method, ip, port, cid, ua, user=user, caller=caller, callee=callee))


def response_line(status: int, method: str, ip: str, port: int, cid: str, *, user: str | None = None,
                  expires: int | None = None, detail: str | None = None) -> str:
    parts = [f"SEND {status} {REASONS[status]} to {hostport(ip, port)} method={method}"]
    if user is not None:
        parts.append(f'user="{q(user)}"')
    parts.append(f'callid="{q(cid)}"')
    if expires is not None:
        parts.append(f"expires={expires}")
    if detail is not None:
        parts.append(f'reason="{q(detail)}"')
    return " ".join(parts)


def response(sink: Sink, ts: int, status: int, method: str, ip: str, port: int, cid: str, *,
             user: str | None = None, expires: int | None = None, detail: str | None = None) -> None:
    sink.sip(ts, _level(status), response_line(status, method, ip, port, cid, user=user, expires=expires,
                                               detail=detail))


def reg_online(sink: Sink, ts: int, user: str, ip: str, port: int, expires: int, ua: str) -> None:
    sink.mbx(ts, "INFO", f'[REG] ONLINE e164="{q(user)}" from={hostport(ip, port)} expires={expires} ua="{ua}"')


def reg_offline(sink: Sink, ts: int, user: str, ip: str, port: int, reason: str) -> None:
    sink.mbx(ts, "INFO", f'[REG] OFFLINE e164="{q(user)}" from={hostport(ip, port)} reason="{q(reason)}"')


def auth_fail(sink: Sink, ts: int, user: str, ip: str, port: int, method: str, reason: str) -> None:
    sink.mbx(ts, "WARN", f'[AUTH] FAIL e164="{q(user)}" from={hostport(ip, port)} method={method} '
                         f'reason="{q(reason)}"')


def auth_suspend(sink: Sink, ts: int, user: str, ip: str, port: int, seconds: int) -> None:
    sink.mbx(ts, "WARN", f'[AUTH] SUSPEND e164="{q(user)}" from={hostport(ip, port)} seconds={seconds}')


def register_ok(sink: Sink, rng: random.Random, ts: int, user: str, ip: str, port: int, ua: str, expires: int,
                *, challenge: bool, online: bool, style: str = "desk", cid: str | None = None) -> int:
    """REGISTER (-> 401 -> REGISTER) -> 200, and [REG] ONLINE when the endpoint was not registered. A user agent
    keeps one Call-ID for its refreshes (RFC 3261 10.2): pass it as ``cid``."""
    cid = cid or call_id(rng, style, ip)
    request(sink, ts, "REGISTER", ip, port, cid, ua, user=user)
    if challenge:
        ts += rng.randint(1, 3)
        response(sink, ts, 401, "REGISTER", ip, port, cid, user=user)
        ts += rng.randint(15, 160)
        request(sink, ts, "REGISTER", ip, port, cid, ua, user=user)
    ts += rng.randint(2, 12)
    response(sink, ts, 200, "REGISTER", ip, port, cid, user=user, expires=expires)
    if online:
        ts += rng.randint(1, 5)
        reg_online(sink, ts, user, ip, port, expires, ua)
    return ts


def register_fail(sink: Sink, rng: random.Random, ts: int, user: str, ip: str, port: int, ua: str, *,
                  challenge: bool = True, detail: str = "password error", log_fail: bool = True,
                  style: str = "desk") -> int:
    """REGISTER (-> 401 -> REGISTER with a wrong digest) -> 403, and the core's [AUTH] FAIL."""
    cid = call_id(rng, style, ip)
    request(sink, ts, "REGISTER", ip, port, cid, ua, user=user)
    if challenge:
        ts += rng.randint(1, 3)
        response(sink, ts, 401, "REGISTER", ip, port, cid, user=user)
        ts += rng.randint(10, 90)
        request(sink, ts, "REGISTER", ip, port, cid, ua, user=user)
    ts += rng.randint(2, 15)
    if log_fail:
        auth_fail(sink, ts, user, ip, port, "REGISTER", detail)
        ts += 1
    response(sink, ts, 403, "REGISTER", ip, port, cid, user=user, detail=detail)
    return ts


def unregister(sink: Sink, rng: random.Random, ts: int, user: str, ip: str, port: int, ua: str,
               style: str = "soft", cid: str | None = None) -> int:
    cid = cid or call_id(rng, style, ip)
    request(sink, ts, "REGISTER", ip, port, cid, ua, user=user)
    ts += rng.randint(2, 12)
    response(sink, ts, 200, "REGISTER", ip, port, cid, user=user, expires=0)
    ts += rng.randint(1, 5)
    reg_offline(sink, ts, user, ip, port, "unregister")
    return ts


@dataclass(frozen=True, slots=True)
class CallSpec:
    """Everything about one call attempt except its timing details, which :func:`emit_call` draws."""

    ts: int  # first INVITE received (ms)
    ip: str
    port: int
    user: str | None  # digest user on the INVITE (None for IP-authenticated trunks)
    ua: str
    style: str  # call-id shape
    caller: str
    dialed: str  # callee as the caller sent it
    callee: str  # callee normalised to E.164 digits (as in mbx.log and e_cdr.calleee164)
    dest: Destination | None  # None: no route
    account: str
    account_name: str
    agent: str
    calllevel: int
    gateway: str
    challenge: int  # 0, 401 or 407
    ring_ms: int
    hold_s: int  # > 0: answered
    status: int  # final status when unanswered
    enddirection: int
    endreason: int


def _fee(rate_e4: int, seconds: int) -> int:
    return (rate_e4 * seconds + 30) // 60


def emit_call(sink: Sink, rng: random.Random, spec: CallSpec, logged: bool = True) -> Cdr | None:
    """Write one call to sipproxy.log, mbx.log ([CALL] START/END) and the CDRs. A call that would end after the
    simulated period is dropped whole (returns None), so every CDR has both its log lines. Not ``logged``: the
    CDR only (a call that came in through a path whose logs fraudwatch does not read)."""
    ip, port, cid, user = spec.ip, spec.port, call_id(rng, spec.style, spec.ip), spec.user
    ts = spec.ts
    lines: list[tuple[str, int, str, str]] = []  # (stream, ts, level, body) -- committed only if it fits

    def sip_req(t: int, method: str, numbers: bool = False) -> None:
        caller, callee = (spec.caller, spec.dialed) if numbers else (None, None)
        lines.append(("sip", t, "INFO", request_line(method, ip, port, cid, spec.ua, user=user, caller=caller,
                                                     callee=callee)))

    def sip_resp(t: int, status: int, method: str, detail: str | None = None) -> None:
        lines.append(("sip", t, _level(status), response_line(status, method, ip, port, cid, user=user,
                                                              detail=detail)))

    sip_req(ts, "INVITE", numbers=True)
    if spec.challenge:
        ts += rng.randint(1, 3)
        sip_resp(ts, spec.challenge, "INVITE")
        ts += rng.randint(20, 150)
        sip_req(ts, "INVITE", numbers=True)
    t_start = ts + rng.randint(3, 25)
    ident = (f'callid="{q(cid)}" caller="{q(spec.caller)}" callee="{q(spec.callee)}" '
             f'account="{q(spec.account)}" from={hostport(ip, port)}')
    gw = f' gateway="{q(spec.gateway)}"' if spec.gateway else ""
    lines.append(("mbx", t_start, "INFO", f"[CALL] START {ident}{gw}"))
    # the rate-deck prefix that priced the call (e_cdr.callerareacode, GetCdr feePrefix)
    prefix = spec.callee[: len(str(spec.dest.country_code)) + 2] if spec.dest else ""
    if spec.dest is not None and rng.random() < 0.1:
        lines.append(("mbx", t_start + 1, "DEBUG", f"[CALL] route select prefix={prefix} gateway={spec.dest.vendor}"))
    if spec.hold_s > 0:
        t_answer = t_start + spec.ring_ms
        sip_resp(t_answer, 200, "INVITE")
        stop = t_answer + spec.hold_s * 1000 + rng.randint(0, 990)
        if spec.enddirection == 0:
            sip_req(stop, "BYE")
            sip_resp(stop + 1, 200, "BYE")
        t_end = stop + 2
        started = t_answer
    else:
        stop = t_start + spec.ring_ms
        if spec.status == 487:
            sip_req(stop, "CANCEL")
            sip_resp(stop + 1, 200, "CANCEL")
            sip_resp(stop + 2, 487, "INVITE")
        else:
            sip_resp(stop, spec.status, "INVITE", "illegal call" if spec.endreason == ILLEGAL[1] else None)
        t_end = stop + 3
        started = t_start
    if t_end >= sink.end_ms:
        return None
    lines.append(("mbx", t_end, "INFO", f"[CALL] END {ident} holdtime={spec.hold_s} endreason={spec.endreason} "
                                        f"enddirection={spec.enddirection}"))
    for stream, t, level, body in lines if logged else ():
        (sink.sip if stream == "sip" else sink.mbx)(t, level, body)
    dest = spec.dest
    feetime = 0
    if dest is not None and spec.hold_s > 0:
        feetime = -(-spec.hold_s // dest.increment) * dest.increment
    routed = dest is not None and spec.status not in (404, 503)
    row = Cdr(
        starttime=started, stoptime=t_end, holdtime=spec.hold_s, feetime=feetime,
        fee_e4=_fee(dest.rate_e4, feetime) if dest else 0,
        customeraccount=spec.account, customername=spec.account_name, callere164=spec.caller,
        calleee164=spec.callee, calleraccesse164=spec.caller, calleeaccesse164=spec.dialed, callerip=ip,
        calleeip=dest.vendor_ip if dest and routed else "", callergatewayid=spec.gateway,
        calleegatewayid=dest.vendor if dest and routed else "", callertogatewaye164=spec.caller if routed else "",
        calleetogatewaye164=spec.callee if routed else "", callerareacode=prefix,
        calllevel=spec.calllevel, enddirection=spec.enddirection, endreason=spec.endreason,
        agentaccount=spec.agent, agentfee_e4=_fee(dest.cost_e4, feetime) if dest else 0,
        callercallid=cid, calleecallid=call_id(rng, "switch", "198.18.0.10") if routed else "",
    )
    sink.cdr(row)
    return row
