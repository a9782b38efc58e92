"""The simulator: deterministic output, every line in its format's grammar, consistent CDRs, honest labels."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
from collections import defaultdict
from pathlib import Path

import iptocc
import phonenumbers
import pytest
import yaml

from fraudwatch.config import load_config
from fraudwatch.netaddr import parse_ip
from fraudwatch.sim import KIND_NAMES, SimResult, simulate
from fraudwatch.sim.flood import write_sipproxy_flood

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ROOT / "rules" / "formats"
TOKEN = re.compile(r"<([A-Z][A-Z0-9_]*)>")
KERN = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) (?P<time>\d\d:\d\d:\d\d) vos3000 kernel: \[ *(?P<up>\d+\.\d{6})\] "
    r"(?P<msg>.+)")
NETFILTER = re.compile(r"(?P<prefix>[A-Z-]+: )?IN=\w+ OUT= MAC=[0-9a-f:]+ SRC=(?P<src>[0-9a-f.:]+) DST=\S+ LEN=\d+ "
                       r".*PROTO=(?P<proto>UDP|TCP) SPT=\d+ DPT=(?P<dpt>\d+)")
CDR_REQUIRED = ("flowno", "starttime", "stoptime", "holdtime", "feetime", "fee", "customeraccount", "customername",
                "callere164", "calleee164", "calleraccesse164", "calleeaccesse164", "callerip", "calleeip",
                "callergatewayid", "calleegatewayid", "callertogatewaye164", "calleetogatewaye164",
                "callerareacode", "calllevel", "enddirection", "endreason", "agentaccount", "agentfee",
                "callercallid", "calleecallid")


def _expand(regex: str, define: dict[str, str]) -> str:
    for _ in range(10):
        regex, n = TOKEN.subn(lambda m: define[m.group(1)], regex)
        if n == 0:
            return regex
    raise AssertionError("token expansion does not terminate")


class Grammar:
    """A vos3000 line format from rules/formats, applied the way the format files say: prefix + regex, full
    match; an ignore rule with its own prefix uses that one."""

    def __init__(self, name: str) -> None:
        doc = yaml.safe_load((FORMATS / f"{name}.yaml").read_text(encoding="utf-8"))
        define = doc.get("define") or {}

        def compiled(rule: dict[str, str]) -> list[re.Pattern[str]]:
            prefixes = rule.get("prefix", doc.get("prefix", ""))
            body = _expand(rule["regex"], define)
            return [re.compile(_expand(p, define) + body) for p in ([prefixes] if isinstance(prefixes, str)
                                                                   else prefixes)]

        self.patterns = [(p["name"], compiled(p)) for p in doc["patterns"]]
        self.ignores = [(i["name"], compiled(i)) for i in doc.get("ignore") or []]

    def classify(self, line: str) -> tuple[str, re.Match[str]] | None:
        for kind, rules in (("", self.patterns), ("ignore:", self.ignores)):
            for name, regexes in rules:
                for rx in regexes:
                    m = rx.fullmatch(line)
                    if m:
                        return kind + name, m
        return None


SAMPLE = ROOT / "data-samples" / "vos3000-3d"


@pytest.fixture(scope="module", params=["fresh", "committed-sample"])
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SimResult:
    """A freshly simulated folder, and the committed data-samples/vos3000-3d (same checks for both)."""
    if request.param == "fresh":
        return simulate(tmp_path_factory.mktemp("sim") / "switch", days=2, accounts=40, seed=11)
    if not SAMPLE.is_dir():
        pytest.skip("data-samples/vos3000-3d is missing")
    files = {str(p.relative_to(SAMPLE)): p.read_text(encoding="utf-8").count("\n")
             for p in sorted(SAMPLE.rglob("*")) if p.is_file() and ".duckdb" not in p.name}
    with (SAMPLE / "labels.csv").open(encoding="utf-8") as fh:
        incidents = sum(1 for _ in csv.DictReader(fh))
    return SimResult(out_dir=SAMPLE, files=files, incidents=incidents)


def _lines(res: SimResult, name: str) -> list[str]:
    return (res.out_dir / name).read_text(encoding="utf-8").splitlines()


def _ms(text: str) -> int:
    return int(dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC).timestamp() * 1000)


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = simulate(tmp_path / "a", days=2, accounts=12, seed=5)
    b = simulate(tmp_path / "b", days=2, accounts=12, seed=5)
    c = simulate(tmp_path / "c", days=2, accounts=12, seed=6)
    assert a.files == b.files
    assert _digests(a.out_dir) == _digests(b.out_dir)
    da, dc = _digests(a.out_dir), _digests(c.out_dir)
    assert da.keys() == dc.keys()
    assert da["sipproxy.log"] != dc["sipproxy.log"] and da["mbx.log"] != dc["mbx.log"]


def test_result_lists_every_file_with_its_line_count(sim: SimResult) -> None:
    on_disk = {str(p.relative_to(sim.out_dir)) for p in sim.out_dir.rglob("*")
               if p.is_file() and ".duckdb" not in p.name}
    assert on_disk == set(sim.files)
    for rel, count in sim.files.items():
        assert (sim.out_dir / rel).read_text(encoding="utf-8").count("\n") == count, rel
    assert {"sipproxy.log", "mbx.log", "kern.log", "customers.csv", "labels.csv", "fraudwatch.toml",
            "cdr/e_cdr_20261101.csv", "cdr/e_cdr_20261102.csv"} <= set(sim.files)
    assert (sim.out_dir / "fraudwatch.toml").stat().st_size > 0
    assert 'format = "linux-netfilter"' in (sim.out_dir / "fraudwatch.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize(("log", "fmt"), [("sipproxy.log", "vos3000-sipproxy"), ("mbx.log", "vos3000-mbx")])
def test_every_log_line_is_in_the_format_grammar(sim: SimResult, log: str, fmt: str) -> None:
    grammar = Grammar(fmt)
    seen: dict[str, int] = defaultdict(int)
    previous = ""
    for line in _lines(sim, log):
        found = grammar.classify(line)
        assert found is not None, f"{log}: no pattern or ignore rule matches {line!r}"
        seen[found[0]] += 1
        assert line[:23] >= previous, f"{log} is not in time order at {line!r}"
        previous = line[:23]
    expected = {p for p, _ in grammar.patterns} | {"ignore:" + n for n, _ in grammar.ignores}
    assert set(seen) == expected, f"{log}: rules never used: {expected - set(seen)}"


def test_kern_log_is_netfilter_syslog_with_a_steady_uptime(sim: SimResult) -> None:
    lines = _lines(sim, "kern.log")
    grammar = Grammar("linux-netfilter") if (FORMATS / "linux-netfilter.yaml").exists() else None
    uptimes = []
    prefixes: set[str] = set()
    for line in lines:
        m = KERN.fullmatch(line)
        assert m, line
        if grammar is not None:
            found = grammar.classify(line)
            assert found is not None, line
            assert found[0] == ("kernel-syslog" if "SRC=" in line else "ignore:not-netfilter"), line
        uptimes.append(float(m["up"]))
        nf = NETFILTER.match(m["msg"])
        if nf:
            prefixes.add(nf["prefix"] or "")
    assert uptimes == sorted(uptimes)
    assert {"SIP-RATELIMIT: ", "SIP-DROP: ", "FW-DROP: "} <= prefixes
    assert any("SRC=2001:0db8:0bad:" in line for line in lines)  # the kernel prints IPv6 fully expanded


def _cdrs(res: SimResult) -> list[dict[str, str]]:
    rows = []
    for rel in sorted(r for r in res.files if r.startswith("cdr/")):
        with (res.out_dir / rel).open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            assert reader.fieldnames is not None and set(CDR_REQUIRED) <= set(reader.fieldnames)
            day = rel[len("cdr/e_cdr_"):-len(".csv")]
            for row in reader:
                stop = dt.datetime.fromtimestamp(int(row["stoptime"]) / 1000, dt.UTC)
                assert stop.strftime("%Y%m%d") == day
                rows.append(row)
    return rows


def _labels(res: SimResult) -> list[dict[str, str]]:
    with (res.out_dir / "labels.csv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _cdr_only(res: SimResult) -> set[tuple[str, str]]:
    """(account, caller address) of the trunk takeovers: their calls are in the CDRs only."""
    return {(r["accounts"], r["ips"]) for r in _labels(res) if r["kind"] == "cdr_takeover"}


def test_cdrs_are_well_formed_and_match_the_call_lines(sim: SimResult) -> None:
    rows = _cdrs(sim)
    flownos = [int(r["flowno"]) for r in rows]
    assert len(set(flownos)) == len(flownos) and flownos == sorted(flownos)
    hidden = _cdr_only(sim)
    assert hidden, "no trunk takeover to check"
    rows = [r for r in rows if (r["customeraccount"], r["callerip"]) not in hidden]
    ends: dict[str, dict[str, str]] = {}
    starts: set[str] = set()
    rx = Grammar("vos3000-mbx")
    for line in _lines(sim, "mbx.log"):
        found = rx.classify(line)
        assert found is not None
        if found[0] == "call-end":
            ends[found[1]["call_id"]] = {**found[1].groupdict(), "ms": str(_ms(found[1]["ts"]))}
        elif found[0] == "call-start":
            starts.add(found[1]["call_id"])
    assert len(ends) == len(rows) == len(starts)
    answered = 0
    for r in rows:
        assert re.fullmatch(r"\d+\.\d{4}", r["fee"]) and re.fullmatch(r"\d+\.\d{4}", r["agentfee"])
        assert int(r["starttime"]) <= int(r["stoptime"])
        end = ends[r["callercallid"]]
        assert end["ms"] == r["stoptime"]
        assert (end["account"], end["caller"], end["callee"], end["src_ip"], end["duration"]) == (
            r["customeraccount"], r["callere164"], r["calleee164"], r["callerip"], r["holdtime"])
        assert (end["end_reason"], end["end_direction"]) == (r["endreason"], r["enddirection"])
        if r["holdtime"] == "0":
            assert r["fee"] == "0.0000" and r["feetime"] == "0"
        else:
            answered += 1
            assert int(r["feetime"]) >= int(r["holdtime"]) and float(r["fee"]) > 0
        if r["customeraccount"]:  # routed calls go to numbers phonenumbers accepts
            assert phonenumbers.is_valid_number(phonenumbers.parse("+" + r["calleee164"])), r["calleee164"]
    assert 0.5 < answered / len(rows) < 0.75


def test_labels_cover_every_kind_and_bracket_their_events(sim: SimResult) -> None:
    with (sim.out_dir / "labels.csv").open(encoding="utf-8", newline="") as fh:
        labels = list(csv.DictReader(fh))
    assert [r["incident_id"] for r in labels] == [f"INC-{i:03d}" for i in range(1, len(labels) + 1)]
    assert len(labels) == sim.incidents
    assert {r["kind"] for r in labels} == set(KIND_NAMES)
    sip = [(_ms(line[:23]), line) for line in _lines(sim, "sipproxy.log")]
    mbx = [(_ms(line[:23]), line) for line in _lines(sim, "mbx.log")]
    days = sorted(r[len("cdr/e_cdr_"):-len(".csv")] for r in sim.files if r.startswith("cdr/"))
    first = dt.datetime.strptime(days[0], "%Y%m%d").replace(tzinfo=dt.UTC)
    period = (int(first.timestamp() * 1000), int(first.timestamp() * 1000) + len(days) * 86_400_000)
    for r in labels:
        start, end = dt.datetime.fromisoformat(r["start"]), dt.datetime.fromisoformat(r["end"])
        assert start.tzinfo is not None and end.tzinfo is not None and start <= end
        lo, hi = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        assert period[0] <= lo <= hi < period[1]
        if r["kind"] == "cdr_takeover":
            continue  # in the CDRs only: test_a_trunk_takeover_is_in_the_cdrs_only_from_an_address_abroad
        window = [line for ts, line in sip + mbx if lo <= ts <= hi]
        assert window, r["incident_id"]
        # the label starts and ends on an event of the incident: a log line exactly at each end
        # (kern.log lines count at their whole second, so allow those as the bracketing event)
        assert any(ts == lo for ts, _ in sip + mbx) or lo % 1000 == 0, r
        assert any(ts == hi for ts, _ in sip + mbx) or hi % 1000 == 0, r
        for ip in filter(None, r["ips"].split(";")):
            shown = f"[{ip}]:" if ":" in ip else f"{ip}:"
            assert any(shown in line for line in window), (r["incident_id"], ip)
        for account in filter(None, r["accounts"].split(";")):
            assert any(f'"{account}"' in line for line in window), (r["incident_id"], account)
    switchwide = [r for r in labels if r["kind"] in ("registration_drop", "registration_spike")]
    assert all(r["ips"] == "" and r["accounts"] == "" for r in switchwide)


def test_a_trunk_takeover_is_in_the_cdrs_only_from_an_address_abroad(sim: SimResult) -> None:
    """The CDR-only takeover (issue 23): a caller address with a country, never seen in the logs, for an account
    that called from home for a day before, to ordinary destinations; the label brackets its CDRs."""
    logs = "\n".join(_lines(sim, "sipproxy.log") + _lines(sim, "mbx.log"))
    cdrs = _cdrs(sim)
    takeovers = [r for r in _labels(sim) if r["kind"] == "cdr_takeover"]
    assert takeovers
    for label in takeovers:
        account, ip = label["accounts"], label["ips"]
        assert f"{ip}:" not in logs
        assert iptocc.country_code([ip]) != [None]
        theirs = [r for r in cdrs if r["customeraccount"] == account and r["callerip"] == ip]
        home = [r for r in cdrs if r["customeraccount"] == account and r["callerip"] != ip]
        assert len(theirs) >= 2 and home
        start, end = (int(dt.datetime.fromisoformat(label[k]).timestamp() * 1000) for k in ("start", "end"))
        assert min(int(r["starttime"]) for r in theirs) == start and max(int(r["stoptime"]) for r in theirs) == end
        assert min(int(r["stoptime"]) for r in home) <= start - 86_400_000
        assert all(not r["calleee164"].startswith(("37", "53", "252", "232", "224", "881")) for r in theirs)


def test_a_hosted_pbx_inside_the_trusted_network_pumps_short_premium_calls(sim: SimResult) -> None:
    """The trusted-homed account (issue 23): its PBX's address is inside the config's trusted network, and the
    incident is many short answered calls from it to premium-rate ranges."""
    trusted = load_config(sim.out_dir / "fraudwatch.toml").trusted_networks
    cdrs = _cdrs(sim)
    pumping = [r for r in _labels(sim) if r["kind"] == "trusted_pbx_pumping"]
    assert pumping
    for label in pumping:
        assert label["ips"] == ""  # nothing to ban
        start, end = (int(dt.datetime.fromisoformat(label[k]).timestamp() * 1000) for k in ("start", "end"))
        calls = [r for r in cdrs if r["customeraccount"] == label["accounts"]
                 and start <= int(r["starttime"]) and int(r["stoptime"]) <= end]
        answered = [r for r in calls if r["holdtime"] != "0"]
        assert len(answered) >= 30 and all(int(r["holdtime"]) <= 180 for r in answered)
        assert all(r["calleee164"].startswith(("371", "370")) for r in calls)
        sources = {parse_ip(r["callerip"]) for r in calls}
        assert all(a is not None and any(a in n for n in trusted) for a in sources), sources


def test_only_the_breached_account_spends_past_its_credit(sim: SimResult) -> None:
    with (sim.out_dir / "customers.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["account", "name", "money", "limitmoney"]
        customers = {r["account"]: float(r["money"]) + float(r["limitmoney"]) for r in reader}
    spend: dict[str, float] = defaultdict(float)
    for r in _cdrs(sim):
        if r["customeraccount"]:
            spend[r["customeraccount"]] += float(r["fee"])
    with (sim.out_dir / "labels.csv").open(encoding="utf-8", newline="") as fh:
        breached = {r["accounts"] for r in csv.DictReader(fh) if r["kind"] == "credit_limit_breach"}
    over = {a for a, s in spend.items() if s > customers[a]}
    assert over == breached


def test_flood_writer_is_grammatical_and_deterministic(tmp_path: Path) -> None:
    path = tmp_path / "flood.log"
    assert write_sipproxy_flood(path, 100_001, seed=3) == 100_001
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 100_001
    grammar = Grammar("vos3000-sipproxy")
    for line in lines[::97]:
        assert grammar.classify(line) is not None, line
    assert lines[0][:23] <= lines[-1][:23]
    again = tmp_path / "again.log"
    write_sipproxy_flood(again, 100_001, seed=3)
    assert again.read_bytes() == path.read_bytes()
