"""Property tests over every shipped line format: text in a field the peer writes (user, From display name,
User-Agent, Call-ID, digest values, peer and user names) never turns a failure line into a reject, and never moves
the source address the line is read with. The one exception is stated: Asterisk text that forges a complete second
address, where the socket's cannot be told, leaves the event stored with no address — never with another one.

Each property runs a modest number of generated examples (the lines go through the real ingest SQL, in batches:
one `trial` per example would be slow), biased towards the characters the patterns use as separators.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import trial

FORMATS = load_formats()
REF = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces of the separators and field names the patterns rely on, and a few forged addresses.
PIECES = ['"', "'", ",", "=", "(", ")", "[", "]", "@", ":", " ", "\\", "<", ">", ";", "\t", "%", "",
          '",', "' ", '="IPV', '",RemoteAddress="IPV4/UDP/198.51.100.254/5060"', "RemoteAddress=", ' - ',
          "' failed for '198.51.100.254:5060' - Wrong password", " for '", ") to ", "] from ip 198.51.100.254",
          " from 198.51.100.254", "(from 198.51.100.254)", "sip:1@198.51.100.254", "Негодяй", "\u202e"]
# Any text a line can hold (no line breaks, no NUL: line decoding is another part's).
CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u2028\u2029\x85")
PEER_TEXT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(CHARS, max_size=6)), max_size=6).map("".join)


def results(name: str, lines: list[str]) -> list[tuple[bool, object]]:
    fmt = FORMATS[name]
    assert isinstance(fmt, LineFormat)
    return [(r.matched, r.fields.get("src_ip")) for r in trial(fmt, lines, ref_time=REF)]


def vos_quote(text: str) -> str:
    """The VOS3000 formats assume the switch escapes `\\` and `"` in the values it quotes."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


# (format, line template with {a} {b} {c} for peer text, the address the line must be read with, whether a forged
# complete address may make the line ambiguous, a function preparing the peer's text)
Case = tuple[str, str, str, bool, Callable[[str], str]]
SAME: Callable[[str], str] = str
CASES: dict[str, Case] = {
    "asterisk-challenge-response": (
        "asterisk", '[Nov 20 03:14:09] SECURITY[77]: res_security_log.c:114 security_event_stasis_cb: '
        'SecurityEvent="ChallengeResponseFailed",EventTV="2026-11-20T03:14:09.000+0000",Severity="Error",'
        'Service="PJSIP",EventVersion="1",AccountID="{a}",SessionID="{b}",LocalAddress="IPV4/UDP/198.51.100.1/5060",'
        'RemoteAddress="IPV4/UDP/203.0.113.66/5062",Challenge="1/ab",Response="{c}",ExpectedResponse=""',
        "203.0.113.66", True, SAME),
    "asterisk-invalid-account": (
        "asterisk", '[2026-11-20 03:14:09] SECURITY[77] res_security_log.c: SecurityEvent="InvalidAccountID",'
        'EventTV="2026-11-20T03:14:09.000+0000",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="{a}",'
        'SessionID="{b}{c}",LocalAddress="IPV6/UDP/2001:db8::1/5060",RemoteAddress="IPV6/UDP/2001:db8::66/5062"',
        "2001:db8::66", False, SAME),
    "asterisk-legacy-invalid-password": (
        "asterisk", '[Jul  6 09:09:25] SECURITY[3308] res_security_log.c: SecurityEvent="InvalidPassword",'
        'EventTV="1373098165-824497",Severity="Error",Service="SIP",EventVersion="2",AccountID="{a}",'
        'SessionID="0x88aab6c",LocalAddress="IPV4/UDP/198.51.100.180/5060",RemoteAddress="IPV4/UDP/203.0.113.106/5084",'
        'Challenge="41d26de5",ReceivedChallenge="{b}",ReceivedHash="{c}"', "203.0.113.106", True, SAME),
    "asterisk-registration": (
        "asterisk", "Nov  4 18:30:40 pbx1 asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in handle_request_register: "
        "Registration from '\"{a}\" <sip:{b}@x>{c}' failed for '192.0.2.100:36998' - Wrong password",
        "192.0.2.100", False, SAME),
    "asterisk-request": (
        "asterisk", "[May 23 10:18:16] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request 'INVITE' from "
        "'\"{a}\" <sip:1000@10.0.0.1>' failed for '192.0.2.8:48336' (callid: {b}{c}) - Failed to authenticate",
        "192.0.2.8", True, SAME),
    "asterisk-iax2": (
        "asterisk", "[2012-02-13 17:53:59] NOTICE[1638] chan_iax2.c: Host 192.0.2.20 failed to authenticate as "
        "'{a}{b}{c}'", "192.0.2.20", False, SAME),
    "asterisk-iax2-peer": (
        "asterisk",
        "[Feb 13 17:39:20] NOTICE[1638] chan_iax2.c: No registration for peer '{a}{b}{c}' (from 192.0.2.22)",
        "192.0.2.22", False, SAME),
    "asterisk-ami": (
        "asterisk", "[Jun  9 00:01:02] NOTICE[22382] manager.c: 192.0.2.23 tried to authenticate with nonexistent "
        "user '{a}{b}{c}'", "192.0.2.23", False, SAME),
    "freeswitch-auth-failure": (
        "freeswitch", "2023-03-06 15:13:32.685002 96.83% [WARNING] sofia_reg.c:3223 SIP auth failure (REGISTER) on "
        "sofia profile 'internal' for [{a}{b}@{c}] from ip 203.0.113.30", "203.0.113.30", False, SAME),
    "freeswitch-unknown-user": (
        "freeswitch", "08-03 07:56:53.026292 [WARN] [SOFIA] [sofia_reg.c:4130] Can't find user [{a}@{b}{c}] from "
        "2001:db8::31", "2001:db8::31", False, SAME),
    "vos3000-sipproxy-403": (
        "vos3000-sipproxy", '2026-11-20 03:14:07.190 [WARN] SEND 403 Forbidden to 198.51.100.8:5060 method=REGISTER '
        'user="{a}" callid="{b}" reason="{c}"', "198.51.100.8", False, vos_quote),
    "vos3000-sipproxy-request": (
        "vos3000-sipproxy", '2026-11-20 03:14:07.123 [INFO] RECV REGISTER from 198.51.100.7:5060 user="{a}" '
        'callid="{b}" ua="{c}"', "198.51.100.7", False, vos_quote),
    "vos3000-mbx-auth-fail": (
        "vos3000-mbx", '2026-11-20 03:20:00.500 [WARN] [AUTH] FAIL e164="{a}{b}" from=203.0.113.77:5071 '
        'method=REGISTER reason="{c}"', "203.0.113.77", False, vos_quote),
}


@pytest.mark.parametrize("case", sorted(CASES))
@SETTINGS
@given(st.lists(st.tuples(PEER_TEXT, PEER_TEXT, PEER_TEXT), min_size=1, max_size=8))
def test_peer_text_never_rejects_a_failure_nor_moves_its_address(case: str,
                                                                  texts: list[tuple[str, str, str]]) -> None:
    name, template, ip, may_be_ambiguous, prep = CASES[case]
    lines = [template.format(a=prep(a), b=prep(b), c=prep(c)) for a, b, c in texts]
    for line, (matched, src_ip) in zip(lines, results(name, lines), strict=True):
        assert matched, f"rejected: {line!r}"
        if src_ip is None and may_be_ambiguous:
            assert line.count('="IPV') > 2 or line.count(" for '") > 1, f"no address, yet not ambiguous: {line!r}"
            continue
        assert src_ip == ip, f"read with {src_ip!r}, not {ip!r}: {line!r}"


# The netfilter LOG line has no free text from the packet: what the sender controls are the numbers (ports, TTL,
# lengths, IDs, flags). None of them may change the address read or make the line a reject.
NETFILTER = ("Nov 20 03:14:08 pbx1 kernel: [ 1203.842973] fw in reject IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:"
             "43:21:08:00 SRC=192.0.2.44 DST=198.51.100.1 LEN={len} TOS=0x{tos:02X} PREC=0x00 TTL={ttl} ID={id} DF "
             "PROTO={proto} SPT={spt} DPT={dpt} WINDOW={win} RES=0x00 {flags}URGP=0")


@SETTINGS
@given(st.lists(st.fixed_dictionaries({
    "len": st.integers(0, 65535), "tos": st.integers(0, 255), "ttl": st.integers(0, 255), "id": st.integers(0, 65535),
    "proto": st.sampled_from(["TCP", "UDP", "47", "132"]), "spt": st.integers(0, 65535), "dpt": st.integers(0, 65535),
    "win": st.integers(0, 65535),
    "flags": st.lists(st.sampled_from(["CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN"]), unique=True,
                      max_size=8).map(lambda f: "".join(x + " " for x in f)),
}), min_size=1, max_size=8))
def test_packet_fields_never_reject_a_netfilter_line_nor_move_its_address(values: list[dict[str, object]]) -> None:
    lines = [NETFILTER.format(**v) for v in values]
    for line, (matched, src_ip) in zip(lines, results("linux-netfilter", lines), strict=True):
        assert matched, f"rejected: {line!r}"
        assert src_ip == "192.0.2.44", line
