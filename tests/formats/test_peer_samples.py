"""Conformance with CrowdSec's hub tests: the same sample logs must give us what CrowdSec's parsers extract.

The samples live outside the project, in ../shared/peer-samples/crowdsec-hub/ (crowdsecurity/hub, commit b03cb59b,
`.tests/`, MIT licence). Each folder has a log, CrowdSec's `config.yaml`, and `parser.assert` / `scenario.assert`:
expression lines such as

    results["s01-parse"]["crowdsecurity/asterisk-logs"][0].Evt.Meta["source_ip"] == "172.17.0.1"

which this test reads (it does not copy values), so it follows the files. Per line, each assertion whose key has a
counterpart column is checked against our parse of the same line (`trial`, i.e. the ingest SQL). Where CrowdSec's
parser fails a line (`Success == false`) the test states what we do instead (OURS_WHERE_CROWDSEC_FAILS). Folders
with an empty parser.assert are checked through scenario.assert: every event CrowdSec put into an overflow must be
one of our parsed lines, in order, with the same source IP, user, time and kind.

Known, deliberate differences (not asserted as equal):
* iptables `length`: CrowdSec's key=value parser keeps the LAST `LEN=` (the UDP length on UDP lines); ours is the
  first, the IP packet's. The test checks ours against the line's first LEN= instead.
* Asterisk time: ours comes from EventTV (year and zone included), so it is compared with CrowdSec's
  `event_timestamp`, not with the bracketed logger stamp.
* Lines CrowdSec drops before parsing (ACCEPT, [UFW AUDIT], ChallengeSent) are kept by us with their action/event.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.formats.trial import LineResult, trial

HUB = Path(__file__).resolve().parents[2].parent / "shared" / "peer-samples" / "crowdsec-hub"
REF = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)  # reference "now" for year inference: fixed, so results are too

FOLDERS = {
    "asterisk-logs": "asterisk",
    "asterisk-syslogs": "asterisk",
    "asterisk-bf": "asterisk",
    "asterisk-user-enum": "asterisk",
    "freeswitch": "freeswitch",
    "freeswitch-bf": "freeswitch",
    "freeswitch-acl-reject": "freeswitch",
    "freeswitch-user-enumeration": "freeswitch",
    "iptables-logs": "linux-netfilter",
    "iptables-scan-multi-port": "linux-netfilter",
    "proxmox-iptables-logs": "linux-netfilter",
}

# (folder, line index) -> what we do with a line CrowdSec's parser fails, and the fields that prove it.
# `None` means we reject it too.
OURS_WHERE_CROWDSEC_FAILS: dict[tuple[str, int], tuple[str, dict[str, Any] | None]] = {
    ("iptables-logs", 2): ("damaged line (XX= instead of IN=, which the kernel always writes): rejected", None),
    ("asterisk-syslogs", 2): ("ChallengeSent: kept as the 401 the switch sent",
                              {"event": "auth_challenge", "direction": "out", "username": "<unknown>",
                               "src_ip": "192.168.100.12", "src_port": 46417, "host": "alba"}),
    ("proxmox-iptables-logs", 1): ("ACCEPT: kept, with its action",
                                   {"action": "ACCEPT", "prefix": "ACCEPT", "src_ip": "10.3.95.34", "dst_port": 8006}),
    ("proxmox-iptables-logs", 4): ("ACCEPT on a bridge port: kept, with its action",
                                   {"action": "ACCEPT", "in_iface": "fwbr101i0", "dst_port": 3306}),
    ("proxmox-iptables-logs", 6): ("guest output chain (tap101i0-OUT): read like the others",
                                   {"action": "REJECT", "src_ip": "10.3.95.200", "dst_ip": "10.3.95.10",
                                    "dst_port": 22}),
    ("proxmox-iptables-logs", 7): ("host output chain: no IN= (pvefw-logger omits it); read",
                                   {"action": "REJECT", "in_iface": None, "out_iface": "vmbr0.94",
                                    "src_ip": "10.3.94.12", "dst_port": 22}),
    ("proxmox-iptables-logs", 8): ("rule without a policy word: read, action LOG",
                                   {"action": "LOG", "prefix": None, "src_ip": "10.3.95.34", "src_port": 51606}),
}

SUB_TYPE = {"user_enumeration": "invalid_user", "acl_reject": "acl_reject", "auth_failure": "auth_failure"}


# ---- reading the assert files ----------------------------------------------------------------------------------

_PARSE = re.compile(
    r'^results\["s01-parse"\]\["(?P<parser>[^"]+)"\]\[(?P<i>\d+)\]\.'
    r'(?:Success == (?P<ok>true|false)'
    r'|Evt\.(?P<kind>Meta|Parsed|Unmarshaled)(?:\["iptables"\])?\["(?P<key>[^"]+)"\](?:\[(?P<cut>\d+):\])?'
    r' == (?P<val>"(?:[^"\\]|\\.)*"|\'[^\']*\'))\s*$')
_COUNT = re.compile(r'^len\(results\["s01-parse"\]\["[^"]+"\]\) == (?P<n>\d+)\s*$')
_EVENT = re.compile(r'^results\[(?P<r>\d+)\]\.Overflow\.Alert\.Events\[(?P<e>\d+)\]\.GetMeta\("(?P<key>[^"]+)"\)'
                    r' == "(?P<val>[^"]*)"\s*$')
_SOURCE = re.compile(r'^results\[(?P<r>\d+)\]\.Overflow\.Sources\["(?P<ip>[^"]+)"\]\.IP == ')


@dataclass
class Claim:
    kind: str  # Meta, Parsed, Unmarshaled, or GetMeta for scenario events
    key: str
    value: str
    cut: int | None = None  # the assertion compares value[cut:] only


def _unquote(text: str) -> str:
    return json.loads(text) if text.startswith('"') else text[1:-1]


@dataclass
class ParserAsserts:
    parser: str = ""  # CrowdSec's s01-parse parser, e.g. crowdsecurity/iptables-logs
    count: int = 0  # how many lines it saw (0: the file has no parser assertions)
    success: dict[int, bool] = field(default_factory=dict)  # line index -> Success, where asserted
    claims: dict[int, list[Claim]] = field(default_factory=dict)  # line index -> Meta/Parsed/Unmarshaled claims


def parser_claims(folder: Path) -> ParserAsserts:
    out = ParserAsserts()
    for line in (folder / "parser.assert").read_text(encoding="utf-8").splitlines():
        if c := _COUNT.match(line):
            out.count = int(c["n"])
        m = _PARSE.match(line)
        if not m:
            continue
        out.parser = m["parser"]
        i = int(m["i"])
        if m["ok"]:
            out.success[i] = m["ok"] == "true"
        else:
            out.claims.setdefault(i, []).append(Claim(m["kind"], m["key"], _unquote(m["val"]),
                                                      int(m["cut"]) if m["cut"] else None))
    return out


def scenario_claims(folder: Path) -> tuple[set[str], list[list[list[Claim]]]]:
    """The overflows' source IPs, and per overflow the ordered events' GetMeta assertions."""
    sources: set[str] = set()
    events: dict[int, dict[int, list[Claim]]] = {}
    for line in (folder / "scenario.assert").read_text(encoding="utf-8").splitlines():
        if m := _SOURCE.match(line):
            sources.add(m["ip"])
        elif m := _EVENT.match(line):
            events.setdefault(int(m["r"]), {}).setdefault(int(m["e"]), []).append(
                Claim("GetMeta", m["key"], m["val"]))
    return sources, [[evs[e] for e in sorted(evs)] for _, evs in sorted(events.items())]


# ---- mapping CrowdSec's keys to our columns ---------------------------------------------------------------------

# A check takes (claim, our row, the raw line, whether our time was year-inferred) and returns (ok, explanation);
# None means the key has no counterpart here and is skipped.
Check = Callable[[Claim, dict[str, Any], str, bool], tuple[bool, str]]


def _field(col: str, conv: Callable[[str], Any] = str) -> Check:
    def check(c: Claim, row: dict[str, Any], raw: str, yearless: bool) -> tuple[bool, str]:
        want = conv(c.value) if c.value != "" else None
        return row.get(col) == want, f"{col} = {row.get(col)!r}, CrowdSec {c.kind}[{c.key}] = {c.value!r}"
    return check


def _time(parse: Callable[[str], dt.datetime]) -> Check:
    """Compare instants; a year-less line (or a sliced assertion) compares everything but the year."""
    def check(c: Claim, row: dict[str, Any], raw: str, yearless: bool) -> tuple[bool, str]:
        ours: dt.datetime | None = row.get("ts")
        if ours is None:
            return False, "no ts"
        text = f"{ours.year:04d}{c.value}" if c.cut == 4 else c.value
        theirs = parse(text)
        if yearless:
            theirs = theirs.replace(year=ours.year)
        return ours == theirs, f"ts = {ours.isoformat()}, CrowdSec {c.key} = {c.value!r}"
    return check


def _first_len(c: Claim, row: dict[str, Any], raw: str, yearless: bool) -> tuple[bool, str]:
    lens = re.findall(r"\bLEN=(\d+)", raw)
    ok = row.get("length") == int(lens[0]) and (len(lens) > 1 or c.value == lens[0])
    return ok, f"length = {row.get('length')!r}: the first LEN= of {lens} (CrowdSec keeps the last: {c.value})"


def _event(c: Claim, row: dict[str, Any], raw: str, yearless: bool) -> tuple[bool, str]:
    return row.get("event") == SUB_TYPE[c.value], f"event = {row.get('event')!r}, CrowdSec sub_type = {c.value!r}"


def _pve_action(c: Claim, row: dict[str, Any], raw: str, yearless: bool) -> tuple[bool, str]:
    col = "action" if c.value in ("DROP", "REJECT", "ACCEPT") else "prefix"
    return row.get(col) == c.value, f"{col} = {row.get(col)!r}, CrowdSec action = {c.value!r}"


def _iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def _naive_utc(text: str) -> dt.datetime:  # FreeSWITCH's stamp; the trial reads it in UTC
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _syslog(text: str) -> dt.datetime:  # "Jun  8 14:34:33": no year; compared without it
    return dt.datetime.strptime(f"2000 {' '.join(text.split())}", "%Y %b %d %H:%M:%S").replace(tzinfo=dt.UTC)


def _clf(text: str) -> dt.datetime:  # "20/Jun/2022:13:09:14 +0200"
    return dt.datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")


_SRC, _USER = _field("src_ip"), _field("username")
CHECKS: dict[str, dict[tuple[str, str], Check]] = {
    "crowdsecurity/asterisk-logs": {
        ("Meta", "source_ip"): _SRC, ("Meta", "target_user"): _USER,
        ("Meta", "session_id"): _field("call_id"), ("Meta", "machine"): _field("host"),
        ("Parsed", "source_ip"): _SRC, ("Parsed", "target_ip"): _field("dst_ip"),
        ("Parsed", "source_port"): _field("src_port", int), ("Parsed", "target_port"): _field("dst_port", int),
        ("Parsed", "username"): _USER, ("Parsed", "asterisk_session_id"): _field("call_id"),
        ("Parsed", "event_timestamp"): _time(_iso),
    },
    "crowdsecurity/freeswitch": {
        ("Meta", "source_ip"): _SRC, ("Meta", "sub_type"): _event,
        ("Parsed", "remote_ip"): _SRC, ("Parsed", "timestamp"): _time(_naive_utc),
    },
    "crowdsecurity/iptables-logs": {
        ("Meta", "source_ip"): _SRC, ("Meta", "machine"): _field("host"),
        ("Parsed", "src_ip"): _SRC, ("Parsed", "dst_ip"): _field("dst_ip"), ("Parsed", "proto"): _field("proto"),
        ("Parsed", "src_port"): _field("src_port", int), ("Parsed", "dst_port"): _field("dst_port", int),
        ("Parsed", "int_eth"): _field("in_iface"), ("Parsed", "length"): _first_len,
        ("Parsed", "timestamp"): _time(_syslog),
        ("Unmarshaled", "IN"): _field("in_iface"), ("Unmarshaled", "OUT"): _field("out_iface"),
        ("Unmarshaled", "SRC"): _SRC, ("Unmarshaled", "DST"): _field("dst_ip"),
        ("Unmarshaled", "SPT"): _field("src_port", int), ("Unmarshaled", "DPT"): _field("dst_port", int),
        ("Unmarshaled", "PROTO"): _field("proto"), ("Unmarshaled", "TTL"): _field("ttl", int),
        ("Unmarshaled", "LEN"): _first_len,
    },
    "aderumier/proxmox-iptables-logs": {
        ("Meta", "source_ip"): _SRC,
        ("Parsed", "src_ip"): _SRC, ("Parsed", "dst_ip"): _field("dst_ip"), ("Parsed", "proto"): _field("proto"),
        ("Parsed", "src_port"): _field("src_port", int), ("Parsed", "dst_port"): _field("dst_port", int),
        ("Parsed", "iface"): _field("in_iface"), ("Parsed", "oface"): _field("out_iface"),
        ("Parsed", "ttl"): _field("ttl", int), ("Parsed", "tcp_flags"): _field("tcp_flags"),
        ("Parsed", "logdate"): _time(_clf), ("Parsed", "action"): _pve_action,
    },
}
# Scenario events carry Meta only (GetMeta); the same meanings, whatever the parser.
SCENARIO_CHECKS: dict[str, Check] = {
    "source_ip": _SRC, "target_user": _USER, "session_id": _field("call_id"), "machine": _field("host"),
    "sub_type": _event, "timestamp": _time(_iso),
}


# ---- the tests ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def peer_formats() -> dict[str, LineFormat]:
    if not HUB.is_dir():
        pytest.skip(f"CrowdSec hub samples not found at {HUB}: they live in ../shared/peer-samples/crowdsec-hub "
                    "beside the project and are not copied into it")
    loaded = load_formats()
    out = {}
    for name in set(FOLDERS.values()):
        fmt = loaded[name]
        assert isinstance(fmt, LineFormat)
        out[name] = fmt
    return out


def _parse_folder(folder: str, fmt: LineFormat) -> tuple[list[str], list[LineResult]]:
    config = yaml.safe_load((HUB / folder / "config.yaml").read_text(encoding="utf-8"))
    lines = (HUB / folder / config["log_file"]).read_text(encoding="utf-8").splitlines()
    lines = [line for line in lines if line.strip()]
    return lines, trial(fmt, lines, tz="UTC", ref_time=REF)


def _yearless(fmt: LineFormat, res: LineResult) -> bool:
    return any(p.name == res.pattern and p.time.infer_year for p in fmt.patterns)


def _verify(checks: dict[Any, Check], key: Any, claim: Claim, row: dict[str, Any], raw: str,
            yearless: bool) -> str | None:
    check = checks.get(key)
    if check is None:
        return None
    ok, why = check(claim, row, raw, yearless)
    return None if ok else why


@pytest.mark.parametrize("folder", sorted(FOLDERS))
def test_crowdsec_hub_sample(folder: str, peer_formats: dict[str, LineFormat]) -> None:
    fmt = peer_formats[FOLDERS[folder]]
    lines, results = _parse_folder(folder, fmt)
    asserts = parser_claims(HUB / folder)
    success, claims = asserts.success, asserts.claims
    problems: list[str] = []

    if asserts.count:  # a parser.assert with per-line results (a line without a Success assertion must parse too)
        assert asserts.count == len(lines), f"{folder}: CrowdSec saw {asserts.count} lines, the log has {len(lines)}"
        checks = CHECKS[asserts.parser]
        for i, (raw, res) in enumerate(zip(lines, results, strict=True)):
            where = f"{folder} line {i + 1}"
            if success.get(i) is False:
                assert (folder, i) in OURS_WHERE_CROWDSEC_FAILS, f"{where}: CrowdSec fails it; say what we do"
                why, want = OURS_WHERE_CROWDSEC_FAILS[(folder, i)]
                if want is None:
                    if res.matched or res.ignored:
                        problems.append(f"{where} ({why}): we accepted it: {res.fields}")
                    continue
                if not res.matched:
                    problems.append(f"{where} ({why}): not parsed: {res.reason}")
                    continue
                problems += [f"{where} ({why}): {k} = {res.fields.get(k)!r}, expected {v!r}"
                             for k, v in want.items() if res.fields.get(k) != v]
                continue
            if not res.matched:
                problems.append(f"{where}: CrowdSec parses it, we do not: {res.reason or 'ignored'}")
                continue
            compared = 0
            for claim in claims.get(i, []):
                if (claim.kind, claim.key) in checks:
                    compared += 1
                why = _verify(checks, (claim.kind, claim.key), claim, res.fields, raw, _yearless(fmt, res))
                if why:
                    problems.append(f"{where}: {why}")
            if claims.get(i) and not compared:
                problems.append(f"{where}: none of CrowdSec's assertions maps to our columns")
    else:  # only scenario.assert: every overflow's events are our lines, in order
        for i, res in enumerate(results):
            if not res.matched:
                problems.append(f"{folder} line {i + 1}: not parsed: {res.reason or 'ignored'}")
        rows = [(raw, res) for raw, res in zip(lines, results, strict=True) if res.matched]
        sources, overflows = scenario_claims(HUB / folder)
        assert overflows, f"{folder}: scenario.assert has no events"
        ours = {res.fields.get("src_ip") for _, res in rows}
        problems += [f"{folder}: CrowdSec bans {ip}, which none of our rows has" for ip in sources - ours]
        for r, events in enumerate(overflows):
            pos = 0
            for e, event in enumerate(events):
                while pos < len(rows) and any(
                        _verify(SCENARIO_CHECKS, c.key, c, rows[pos][1].fields, rows[pos][0],
                                _yearless(fmt, rows[pos][1])) for c in event):
                    pos += 1
                if pos == len(rows):
                    wanted = {c.key: c.value for c in event if c.key in SCENARIO_CHECKS}
                    problems.append(f"{folder}: overflow {r} event {e} {wanted} matches none of our rows in order")
                    break
                pos += 1
    assert not problems, "\n".join(problems)


def test_ufw_audit_and_block_lines_keep_their_action(peer_formats: dict[str, LineFormat]) -> None:
    """CrowdSec filters [UFW AUDIT] lines out before parsing; we keep them, as action LOG, and BLOCK as DROP."""
    _, results = _parse_folder("iptables-scan-multi-port", peer_formats["linux-netfilter"])
    by_prefix: dict[str | None, set[str]] = {}
    for res in results:
        assert res.matched, res.reason
        by_prefix.setdefault(res.fields.get("prefix"), set()).add(res.fields["action"])
    assert by_prefix == {None: {"LOG"}, "[UFW AUDIT]": {"LOG"}, "[UFW BLOCK]": {"DROP"}}


def test_every_crowdsec_failure_we_describe_still_exists(peer_formats: dict[str, LineFormat]) -> None:
    """OURS_WHERE_CROWDSEC_FAILS must not outlive the assert files it explains."""
    for folder, i in OURS_WHERE_CROWDSEC_FAILS:
        failed = parser_claims(HUB / folder).success.get(i) is False
        assert failed, f"{folder} line {i + 1}: CrowdSec no longer fails it; update the table"
