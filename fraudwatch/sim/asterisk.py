"""A fast writer of Asterisk `full` log files for the benchmark against fail2ban-regex.

Like :mod:`fraudwatch.sim.flood` this models nothing: it writes lines in Asterisk's own log layout
(``[Nov  1 00:00:00] LEVEL[thread] file.c:line function: message``), a share of them security failures that both
fraudwatch's ``asterisk`` format and fail2ban's stock ``asterisk`` filter read (chan_sip registrations refused, PJSIP
requests refused, res_security_log InvalidPassword / ChallengeResponseFailed / InvalidAccountID, calls to an unknown
extension), the rest ordinary traffic: dialplan and channel chatter, peers registering and qualifying, the security
channel's ChallengeSent and SuccessfulAuth, retransmission warnings, DTMF. Attackers come from 203.0.113.0/24 and
192.0.2.0/24, the switch's own phones from 198.51.100.0/24, the switch is 198.51.100.1. Time starts at
2026-11-01 00:00:00 (UTC, the logger's local time) and advances about 0.2 s a line.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SWITCH = "198.51.100.1"

# The failures, and their weights among failures: each is a line fail2ban's asterisk filter matches and fraudwatch
# reads as auth_failure / invalid_user / acl_reject (all but `noexten`, which fraudwatch keeps as a `request` whose
# detail says "extension not found").
FAILURE_WEIGHTS = {
    "reg_wrong_password": 25,  # chan_sip: Registration from ... failed for ... - Wrong password  # nosec B105 # a count of simulated lines, not a password
    "reg_no_peer": 15,  # chan_sip: ... - No matching peer found
    "sec_invalid_password": 10,  # res_security_log, chan_sip's Service="SIP"  # nosec B105 # a count of simulated lines, not a password
    "sec_challenge_failed": 15,  # res_security_log, PJSIP
    "sec_invalid_account": 15,  # res_security_log, PJSIP
    "pjsip_auth_failed": 10,  # res_pjsip: Request 'INVITE' from ... failed for ... - Failed to authenticate
    "noexten": 10,  # chan_sip: Call from '' (...) to extension '...' rejected because extension not found
}
# Ordinary lines and their weights among them; none is a failure for either tool.
ORDINARY_WEIGHTS = {
    "exec": 30,  # VERBOSE pbx.c: Executing [...] Dial(...)
    "registered": 10,  # VERBOSE chan_sip: Registered SIP '1001' at ...
    "ringing": 12,  # VERBOSE app_dial.c: SIP/1002-... is ringing
    "answered": 8,  # VERBOSE app_dial.c: ... answered ...
    "spawn": 6,  # VERBOSE pbx.c: Spawn extension ... exited non-zero
    "reachable": 8,  # NOTICE chan_sip.c: Peer '1001' is now Reachable.
    "challenge_sent": 8,  # SECURITY ChallengeSent (fraudwatch: auth_challenge, out)
    "successful_auth": 8,  # SECURITY SuccessfulAuth (fraudwatch: request)
    "retransmit": 4,  # WARNING chan_sip.c: Retransmission timeout reached ...
    "dtmf": 6,  # DTMF channel.c: DTMF end '5' received ...
}
FAILURE_KINDS = frozenset(FAILURE_WEIGHTS)


def _attackers(rng: random.Random) -> list[str]:
    return [f"203.0.113.{i}" for i in rng.sample(range(2, 255), 60)] + [
        f"192.0.2.{i}" for i in rng.sample(range(2, 255), 40)]


def _iso(t_ms: int) -> str:
    """EventTV as Asterisk 12+ writes it: 2026-11-01T00:00:00.123+0000."""
    when = START + dt.timedelta(milliseconds=t_ms)
    return f"{when:%Y-%m-%dT%H:%M:%S}.{t_ms % 1000:03d}+0000"


def _security(event: str, severity: str, service: str, version: int, account: str, session: str,
              remote: str, port: int, tail: str) -> str:
    return (f'SECURITY[{3000 + port % 7}] res_security_log.c:114 security_event_stasis_cb: SecurityEvent="{event}",'
            f'EventTV="{{tv}}",Severity="{severity}",Service="{service}",EventVersion="{version}",'
            f'AccountID="{account}",SessionID="{session}",LocalAddress="IPV4/UDP/{SWITCH}/5060",'
            f'RemoteAddress="IPV4/UDP/{remote}/{port}"{tail}')


def _line(rng: random.Random, kind: str, attackers: list[str], serial: int) -> str:
    """One line's message after the `[stamp] `; `{tv}` is left for the EventTV of SECURITY lines."""
    bad = rng.choice(attackers)
    port = rng.choice((5060, 5060, 5070, rng.randint(1024, 65000)))
    phone = f"198.51.100.{rng.randint(10, 250)}"
    ext = str(rng.randint(1001, 1099))
    guess = rng.choice((ext, str(rng.randint(100, 99999)), "admin", "100", "1000", "test"))
    thread = 1000 + serial % 97
    call = f"C-{serial % 0x10000:08x}"
    sid = f"{rng.getrandbits(64):016x}-{serial}"
    if kind == "reg_wrong_password":
        return (f"NOTICE[{thread}] chan_sip.c:28468 handle_request_register: Registration from "
                f"'<sip:{guess}@{SWITCH}>' failed for '{bad}:{port}' - Wrong password")
    if kind == "reg_no_peer":
        return (f"NOTICE[{thread}] chan_sip.c:28468 handle_request_register: Registration from "
                f"'\"{guess}\"<sip:{guess}@{SWITCH}>' failed for '{bad}:{port}' - No matching peer found")
    if kind == "sec_invalid_password":
        return _security("InvalidPassword", "Error", "SIP", 2, guess, f"0x{rng.getrandbits(40):x}", bad, port,
                         f',Challenge="{sid[:8]}",ReceivedChallenge="{sid[:8]}",ReceivedHash="{sid}"')
    if kind == "sec_challenge_failed":
        return _security("ChallengeResponseFailed", "Error", "PJSIP", 1, guess, sid, bad, port,
                         f',Challenge="1793491200/{sid[:16]}",Response="{sid[-16:]}",ExpectedResponse=""')
    if kind == "sec_invalid_account":
        return _security("InvalidAccountID", "Error", "PJSIP", 1, guess, sid, bad, port, "")
    if kind == "pjsip_auth_failed":
        return (f"NOTICE[{thread}] res_pjsip/pjsip_distributor.c:676 log_failed_request: Request 'INVITE' from "
                f"'\"{guess}\" <sip:{guess}@{SWITCH}>' failed for '{bad}:{port}' (callid: {sid}) - "
                f"Failed to authenticate")
    if kind == "noexten":
        return (f"NOTICE[{thread}][{call}] chan_sip.c:26293 handle_request_invite: Call from '' ({bad}:{port}) to "
                f"extension '00972{rng.randint(10**8, 10**9 - 1)}' rejected because extension not found in context "
                f"'public'.")
    callee = str(rng.randint(1001, 1099))
    chan = f"SIP/{ext}-{serial % 0x10000000:08x}"
    if kind == "exec":
        return (f"VERBOSE[{thread}][{call}] pbx.c:2962 pbx_extension_helper:     -- Executing "
                f"[{callee}@from-internal:1] Dial(\"{chan}\", \"SIP/{callee},30,tT\") in new stack")
    if kind == "registered":
        return (f"VERBOSE[{thread}] chan_sip.c:24164 parse_register_contact:     -- Registered SIP '{ext}' at "
                f"{phone}:5060")
    if kind == "ringing":
        return (f"VERBOSE[{thread}][{call}] app_dial.c:1221 wait_for_answer:     -- SIP/{callee}-{serial:08x} "
                f"is ringing")
    if kind == "answered":
        return (f"VERBOSE[{thread}][{call}] app_dial.c:1164 wait_for_answer:     -- SIP/{callee}-{serial:08x} "
                f"answered {chan}")
    if kind == "spawn":
        return (f"VERBOSE[{thread}][{call}] pbx.c:6268 __ast_pbx_run:   == Spawn extension (from-internal, "
                f"{callee}, 1) exited non-zero on '{chan}'")
    if kind == "reachable":
        return (f"NOTICE[{thread}] chan_sip.c:24616 handle_response_peerpoke: Peer '{ext}' is now Reachable. "
                f"({rng.randint(2, 90)}ms / 2000ms)")
    if kind == "challenge_sent":
        return _security("ChallengeSent", "Informational", "PJSIP", 1, ext, sid, phone, 5060,
                         f',Challenge="1793491200/{sid[:16]}"')
    if kind == "successful_auth":
        return _security("SuccessfulAuth", "Informational", "PJSIP", 1, ext, sid, phone, 5060,
                         ',UsingPassword="1"')
    if kind == "retransmit":
        return (f"WARNING[{thread}] chan_sip.c:4175 retrans_pkt: Retransmission timeout reached on transmission "
                f"{sid}@{phone} for seqno 102 (Critical Response) -- See https://wiki.asterisk.org/wiki/display/AST/"
                f"SIP+Retransmissions")
    digit = rng.choice("0123456789*#")
    return f"DTMF[{thread}][{call}] channel.c:4064 __ast_read: DTMF end '{digit}' received on {chan}"


def write_asterisk_log(path: Path, lines: int, seed: int = 1, failure_share: float = 0.10) -> dict[str, int]:
    """Write ``lines`` Asterisk log lines to ``path`` (deterministic for ``seed``); return the count of each kind.

    Each line is a failure with probability ``failure_share`` (one of FAILURE_WEIGHTS, by weight), otherwise one of
    ORDINARY_WEIGHTS.
    """
    rng = random.Random(f"fraudwatch.sim.asterisk:{seed}")  # noqa: S311  # nosec B311 # simulation, seeded for repeatable data: not cryptography
    attackers = _attackers(rng)
    fail_kinds, fail_w = list(FAILURE_WEIGHTS), list(FAILURE_WEIGHTS.values())
    ok_kinds, ok_w = list(ORDINARY_WEIGHTS), list(ORDINARY_WEIGHTS.values())
    counts = dict.fromkeys([*fail_kinds, *ok_kinds], 0)
    t_ms, second, stamp = 0, -1, ""
    out: list[str] = []
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for serial in range(lines):
            if rng.random() < failure_share:
                kind = rng.choices(fail_kinds, fail_w)[0]
            else:
                kind = rng.choices(ok_kinds, ok_w)[0]
            counts[kind] += 1
            t_ms += rng.randrange(430)
            if t_ms // 1000 != second:
                second = t_ms // 1000
                stamp = f"{START + dt.timedelta(seconds=second):%b %e %H:%M:%S}"
            msg = _line(rng, kind, attackers, serial)
            if msg.startswith("SECURITY"):
                msg = msg.replace("{tv}", _iso(t_ms), 1)
            out.append(f"[{stamp}] {msg}\n")
            if len(out) >= 50_000:
                fh.write("".join(out))
                out.clear()
        fh.write("".join(out))
    return counts
