"""Asterisk and FreeSWITCH security lines: attributed to the address the switch logged, never to one in the peer's
text, kept (without an address) when that cannot be told; and the shapes fail2ban's filters catch, read and
detected.

The lines are ours, written after the shapes of fail2ban's filters and test logs (fail2ban/fail2ban
`config/filter.d/asterisk.conf`, `freeswitch.conf`, `fail2ban/tests/files/logs/`), with documentation addresses.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import LineResult, trial
from tests.conftest import Run

FORMATS = load_formats()
REF = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
SEC = ('[Nov 20 03:14:09] SECURITY[77]: res_security_log.c:114 security_event_stasis_cb: '
       'SecurityEvent="ChallengeResponseFailed",EventTV="2026-11-20T03:14:09.000+0000",Severity="Error",'
       'Service="PJSIP",EventVersion="1",AccountID="{user}",SessionID="{call_id}",'
       'LocalAddress="IPV4/UDP/198.51.100.1/5060",RemoteAddress="IPV4/UDP/203.0.113.66/5062",'
       'Challenge="1/ab",Response="{response}",ExpectedResponse=""')


def parse(name: str, lines: list[str]) -> list[LineResult]:
    fmt = FORMATS[name]
    assert isinstance(fmt, LineFormat)
    return trial(fmt, lines, ref_time=REF)


# ---- finding: attacker text made the failure unparseable ---------------------------------------------------------

@pytest.mark.parametrize("response", ['",Rem', 'x",RemoteAddress=', '\\",RemoteAddress=\\"IPV4/UDP/198.51.100.254/5060',
                                      '",Remote"Address', '"",R'])
def test_a_response_holding_separator_text_is_attributed_to_the_socket(response: str) -> None:
    [res] = parse("asterisk", [SEC.format(user="1001", call_id="c1", response=response)])
    assert res.matched, res.reason
    assert res.fields["event"] == "auth_failure"
    assert (res.fields["src_ip"], res.fields["src_port"]) == ("203.0.113.66", 5062)


@pytest.mark.parametrize("display", ["O' Brien", "a' failed for 'b", "x' (callid: y) - z", "' '"])
def test_a_from_display_name_holding_the_separator_is_attributed_to_the_socket(display: str) -> None:
    lines = [
        f"[Nov 20 03:14:10] NOTICE[1638] chan_sip.c: Registration from '\"{display}\" <sip:1001@x>' failed for "
        "'203.0.113.70:5060' - Wrong password",
        f"[Nov 20 03:14:11] NOTICE[19388] res_pjsip/pjsip_distributor.c: Request 'INVITE' from '\"{display}\" "
        "<sip:1001@x>' failed for '203.0.113.71:5061' (callid: c 1) - Failed to authenticate",
    ]
    for res, ip in zip(parse("asterisk", lines), ("203.0.113.70", "203.0.113.71"), strict=True):
        if "failed for '" in display and ip.endswith("71"):  # a second separator: ambiguous, see below
            assert res.matched and res.fields.get("src_ip") is None and res.fields["event"] == "auth_failure"
            continue
        assert res.matched, res.reason
        assert (res.fields["event"], res.fields["src_ip"], res.fields["username"]) == ("auth_failure", ip, "1001")


def test_a_complete_forged_address_is_kept_without_any_address() -> None:
    """The peer wrote a whole second address after the real one: which one is the socket's cannot be told. The
    failure is stored and counted for its account; no address is taken (neither is the peer's for sure)."""
    forged = '",LocalAddress="IPV4/UDP/198.51.100.1/5060",RemoteAddress="IPV4/UDP/198.51.100.254/5060'
    lines = [SEC.format(user="1001", call_id="c1", response="x" + forged),
             SEC.format(user="1001", call_id="c1" + forged, response="x" + forged)]
    for res in parse("asterisk", lines):
        assert res.matched and res.pattern == "security-ambiguous", res
        assert res.fields["event"] == "auth_failure" and res.fields["username"] == "1001"
        assert "src_ip" not in res.fields


# ---- finding: the shapes fail2ban catches ------------------------------------------------------------------------

COVERAGE = [
    # IAX2 authentication failures and unknown peers
    ("[Feb 13 17:53:59] NOTICE[1638] chan_iax2.c: Host 192.0.2.20 failed to authenticate as 'trunk1'",
     "auth_failure", "192.0.2.20"),
    ("[2012-02-13 17:44:26] NOTICE[1638] chan_iax2.c: Host 192.0.2.21 failed MD5 authentication for 't' (0a != 1b)",
     "auth_failure", "192.0.2.21"),
    ("[Feb 13 17:39:20] NOTICE[1638] chan_iax2.c: No registration for peer 'guest' (from 192.0.2.22)",
     "invalid_user", "192.0.2.22"),
    # AMI login failures and unknown users
    ("[2016-06-09 00:01:02] NOTICE [22382] manager.c: 192.0.2.23 failed to authenticate as 'admin'",
     "auth_failure", "192.0.2.23"),
    ("[May  6 07:08:09] NOTICE[31554] manager.c: 192.0.2.24 tried to authenticate with nonexistent user 'opennms'",
     "invalid_user", "192.0.2.24"),
    # PJSIP calls to an unknown extension, both layouts
    ("[Jan 18 17:39:50] NOTICE[12049]: res_pjsip_session.c:2337 new_invite: Call from 'anonymous' "
     "(TCP:[192.0.2.25]:61470) to extension '9011' rejected because extension not found in context 'default'.",
     "request", "192.0.2.25"),
    ("[Jun 12 15:13:54] NOTICE[3980] res_pjsip_session.c:  anonymous: Call (UDP:192.0.2.26:65049) to extension "
     "'0014' rejected because extension not found in context 'inbound'.", "request", "192.0.2.26"),
    # chan_sip's hacking attempt
    ("[2015-03-16 18:46:34] NOTICE[3453] chan_sip.c: hacking attempt detected '192.0.2.27'", "auth_failure",
     "192.0.2.27"),
    # Rejecting unknown SIP connection: IPv4, IPv6, with and without port or brackets, behind syslog
    ('[2013-11-11 14:33:38] WARNING[6756][C-0000001d] Ext. s: "Rejecting unknown SIP connection from 192.0.2.28"',
     "invalid_user", "192.0.2.28"),
    ('[Nov 11 14:33:38] WARNING[8447][C-00000244] Ext. s: "Rejecting unknown SIP connection from 192.0.2.29:52126"',
     "invalid_user", "192.0.2.29"),
    ('[2013-11-11 14:33:38] WARNING[12124][C-00000001] Ext. s: "Rejecting unknown SIP connection from 2001:db8::1"',
     "invalid_user", "2001:db8::1"),
    ('[Nov 11 14:33:38] WARNING[12124][C-00000001] Ext. s: "Rejecting unknown SIP connection from [2001:db8::2]:5060"',
     "invalid_user", "2001:db8::2"),
    ('Mar  1 15:35:53 pbx asterisk[2350]: WARNING[1195][C-00000b43]: Ext. s:6 in @ from-sip-external: '
     '"Rejecting unknown SIP connection from 192.0.2.30"', "invalid_user", "192.0.2.30"),
    # Asterisk's own stamp behind a syslog header (a different prefix)
    ("Mar 27 10:06:14 pbx1 asterisk[123]: [Mar 27 10:06:14] NOTICE[566]: chan_sip.c:28926 handle_request_register: "
     "Registration from '\"1000\" <sip:1000@198.51.100.1>' failed for '192.0.2.31:7998' - Wrong password",
     "auth_failure", "192.0.2.31"),
    ("2026-03-27T10:06:14.5+01:00 pbx1 asterisk[123]: [2026-03-27 10:06:14] NOTICE[566] chan_sip.c: Registration "
     "from '<sip:1@x>' failed for '192.0.2.32' - No matching peer found", "invalid_user", "192.0.2.32"),
]

FS_COVERAGE = [
    ("08-03 07:56:53.026292 [WARN] [SOFIA] [sofia_reg.c:4130] Can't find user [101@198.51.100.154] from 192.0.2.40",
     "invalid_user", "192.0.2.40"),
    ("08-03 08:10:21.026299 [WARN] [SOFIA] [sofia_reg.c:2248] SIP auth failure (INVITE) on sofia profile 'external' "
     "for [4180@198.51.100.154] from ip 192.0.2.41", "auth_failure", "192.0.2.41"),
    ("2013-12-31 17:39:54.767815 [WARNING] sofia_reg.c:1478 SIP auth failure (INVITE) on sofia profile 'internal' for "
     "[0009@198.51.100.51] from ip 192.0.2.42", "auth_failure", "192.0.2.42"),
    ("2021-10-29 21:05:58.894719 www.srv.tld freeswitch[123456]: 2021-10-29 14:13:24.894719 82.43% [WARNING] "
     "sofia_reg.c:2889 Can't find user [201@::1] from 192.0.2.43", "invalid_user", "192.0.2.43"),
]


@pytest.mark.parametrize(("name", "line", "event", "ip"),
                         [("asterisk", *c) for c in COVERAGE] + [("freeswitch", *c) for c in FS_COVERAGE])
def test_the_security_lines_fail2ban_catches_are_read(name: str, line: str, event: str, ip: str) -> None:
    [res] = parse(name, [line])
    assert res.matched, f"{res.reason or 'ignored'}: {line}"
    assert (res.fields["event"], res.fields["src_ip"]) == (event, ip)


def test_a_burst_of_each_new_failure_kind_alerts(tmp_path: Path, cli: Callable[..., Run]) -> None:
    """Twenty lines of each kind from its own address, a second apart: each address gets an alert from a rule
    that proposes a ban (auth-failures-ip, or unknown-extension-ip for the unknown extensions)."""
    kinds = {
        "192.0.2.50": "NOTICE[1] chan_iax2.c: Host 192.0.2.50 failed to authenticate as 'trunk{i}'",
        "192.0.2.51": "NOTICE[1] chan_iax2.c: Host 192.0.2.51 failed MD5 authentication for 't' (0a != 1b)",
        "192.0.2.52": "NOTICE[1] chan_iax2.c: No registration for peer 'p{i}' (from 192.0.2.52)",
        "192.0.2.53": "NOTICE[1] manager.c: 192.0.2.53 failed to authenticate as 'admin'",
        "192.0.2.54": "NOTICE[1] manager.c: 192.0.2.54 tried to authenticate with nonexistent user 'u{i}'",
        "192.0.2.55": "NOTICE[1] chan_sip.c: hacking attempt detected '192.0.2.55'",
        "192.0.2.56": 'WARNING[1][C-00000001] Ext. s: "Rejecting unknown SIP connection from 192.0.2.56:5060"',
        "192.0.2.57": "NOTICE[1] res_pjsip_session.c: anonymous: Call (UDP:192.0.2.57:5060) to extension '00{i}' "
                      "rejected because extension not found in context 'default'.",
        "192.0.2.58": "NOTICE[1] chan_sip.c: Registration from '\"O' Brien\" <sip:1@x>' failed for '192.0.2.58:5060' "
                      "- Wrong password",
    }
    start = dt.datetime(2026, 11, 20, 3, 0, 0)
    log = tmp_path / "full"
    with log.open("w", encoding="utf-8") as out:
        for i in range(20):
            for ip, text in kinds.items():
                stamp = (start + dt.timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S")
                out.write(f"[{stamp}] {text.format(i=i)}\n")
    db = tmp_path / "s.duckdb"
    run = cli("--db", db, "ingest", "--format", "asterisk", "--json", log)
    assert run.code == 0, run.err
    run = cli("--db", db, "detect", "--json", "--since", "2026-11-19")
    assert run.code == 0, run.err
    alerts = json.loads(run.out)["alerts"]
    banning = {a["key"] for a in alerts if a["rule"] in ("auth-failures-ip", "unknown-extension-ip")
               and a["severity"] == "critical" and a["action"] == "ban_ip"}
    assert banning >= set(kinds), sorted(set(kinds) - banning)


def test_failures_without_an_address_alert_for_the_account_and_never_against_an_address(
        tmp_path: Path, cli: Callable[..., Run]) -> None:
    """Twenty failures whose Response forges a second address: stored, an alert for the account, no alert keyed
    by an address (neither the forged one nor an empty key), so nothing to ban."""
    forged = '",LocalAddress="IPV4/UDP/198.51.100.1/5060",RemoteAddress="IPV4/UDP/198.51.100.254/5060'
    log = tmp_path / "security"
    with log.open("w", encoding="utf-8") as out:
        for i in range(20):
            out.write(SEC.format(user="1001", call_id=f"c{i}", response="x" + forged)
                      .replace("03:14:09]", f"03:14:{i + 10:02d}]").replace("T03:14:09", f"T03:14:{i + 10:02d}")
                      + "\n")
    db = tmp_path / "s.duckdb"
    assert cli("--db", db, "ingest", "--format", "asterisk", "--json", log).code == 0
    rows = json.loads(cli("--db", db, "sql", "--json", "SELECT count(*) AS n, count(src_ip) AS with_ip "
                          "FROM sip_events WHERE event = 'auth_failure'").out)
    assert rows == [{"n": 20, "with_ip": 0}]
    run = cli("--db", db, "detect", "--json", "--since", "2026-11-19")
    assert run.code == 0, run.err
    alerts = json.loads(run.out)["alerts"]
    assert {a["rule"] for a in alerts if a["key_type"] == "account" and a["key"] == "1001"} >= {"auth-failures-account"}
    assert not [a for a in alerts if a["key_type"] == "ip"], alerts
