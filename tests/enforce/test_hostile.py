"""Hostile input never reaches a firewall command: it is refused, or canonicalised by `ipaddress` first.

Every command each backend would run is recorded (nothing is executed) and checked line by line against the
grammar our batches are written in.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest

from fraudwatch.enforce import BanRefused, Enforcer, FirewallConfig
from fraudwatch.enforce.backends import BACKENDS, DRY_RUN
from fraudwatch.enforce.backends.base import Backend
from fraudwatch.enforce.targets import TargetError, parse_target, render
from tests.enforce.helpers import T0, RecordingRunner, alert, store_con

HOSTILE = [
    "192.0.2.1; nft flush ruleset",
    "192.0.2.1 && reboot",
    "$(reboot)",
    "`id`",
    "192.0.2.1|rm -rf /",  # only the part before '|' is the address: refused below as key, accepted by split
    "192.0.2.1\nadd rule inet fraudwatch input accept",
    "192.0.2.1 }\nflush ruleset\nadd element inet fraudwatch fraudwatch4 { 192.0.2.2",
    "192.0.2.1\r\n",
    " 192.0.2.1",
    "192.0.2.1 timeout 0s",
    "256.1.1.1",
    "192.0.2.999",
    "1.2.3",
    "192.0.2.01",
    "0x7f.0.0.1",
    "2130706433",
    "fe80::1%eth0",
    "2001:db8::1%$(reboot)",
    "2001:db8::1%25eth0",
    "[2001:db8::1]",
    "2001:db8:::1",
    "192.0.2.0/33",
    "192.0.2.7/24",
    "192.0.2.0/24/24",
    "192.0.2.0/-1",
    "::ffff:192.0.2.0/120",
    "0.0.0.0/0",
    "::/0",
    "",
    "\x00192.0.2.1",
    "１９２.0.2.1",  # full-width digits
    "192.0.2.1" + " " * 100,
    "a" * 10_000,
]

ADDR = r"[0-9a-f.:]+(?:/[0-9]{1,3})?"
NFT_LINE = re.compile(
    rf"^(?:add element inet fraudwatch fraudwatch[46](?:net)? \{{ {ADDR} timeout [0-9]+s(?:, {ADDR} timeout "
    rf"[0-9]+s)* \}}|delete element inet fraudwatch fraudwatch[46](?:net)? \{{ {ADDR}(?:, {ADDR})* \}})$")
IPSET_LINE = re.compile(rf"^(?:add fraudwatch[46] {ADDR} timeout [0-9]+|del fraudwatch[46] {ADDR})$")
IPT_LINE = re.compile(rf"^(?:\*filter|COMMIT|:FRAUDWATCH - \[0:0\]|-A FRAUDWATCH -s {ADDR}"
                      r"(?: -p (?:udp|tcp) -m multiport --dports [0-9,]+)? -j DROP)$")


@pytest.mark.parametrize("text", [t for t in HOSTILE if "|" not in t])  # 'ip|user' keys are split first
def test_parse_target_refuses_hostile_text(text: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(text)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


@pytest.mark.parametrize(("text", "canonical"), [
    ("::ffff:192.0.2.9", "192.0.2.9"),
    ("::FFFF:c000:0209", "192.0.2.9"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
    ("2001:db8::1:0:0:1", "2001:db8::1:0:0:1"),
    ("198.51.100.0/24", "198.51.100.0/24"),
])
def test_accepted_forms_are_canonicalised(text: str, canonical: str) -> None:
    assert render(parse_target(text)) == canonical


def backends(runner: RecordingRunner) -> list[Backend]:
    cfg = FirewallConfig()
    return [cls(cfg, runner) for name, cls in BACKENDS.items() if name != DRY_RUN]


@pytest.mark.parametrize("kind", [name for name in BACKENDS if name != DRY_RUN])
def test_nothing_hostile_reaches_a_command(kind: str, tmp_path: Path) -> None:
    runner = RecordingRunner()
    backend = {b.name: b for b in backends(runner)}[kind]
    e = Enforcer(store_con(tmp_path / "s.duckdb"), backend.cfg, [ipaddress.ip_network("198.51.100.0/24")],
                 backend=backend, host_addresses=[])
    e.start(T0)
    setup_calls = len(runner.log)
    alerts = [alert(i, text) for i, text in enumerate(HOSTILE, 1)]
    alerts.append(alert(900, "::ffff:192.0.2.9"))  # mapped: becomes 192.0.2.9
    done = e.on_alerts(alerts, T0)
    for text in HOSTILE:
        with pytest.raises(BanRefused):
            e.ban(text, T0)
    banned = {k: v for k, v in done.items() if v.startswith("banned")}
    # the only bans: the mapped address, and the '|' composite key whose first field is a clean address
    assert sorted(banned.values()) == sorted([
        "banned 192.0.2.1 until 2026-11-26 13:00 UTC (level 1)",
        "banned 192.0.2.9 until 2026-11-26 13:00 UTC (level 1)"])
    assert all(not v.startswith("banned") for k, v in done.items() if k not in banned)
    grammar = {"nftables": NFT_LINE, "ipset": IPSET_LINE, "iptables": IPT_LINE}[kind]
    batches = [(argv, stdin) for argv, stdin in runner.log[setup_calls:] if stdin]
    assert batches, "nothing was applied"
    for argv, stdin in batches:
        assert all(re.fullmatch(r"[A-Za-z0-9_./-]+", a) for a in argv), argv
        for line in (stdin or "").splitlines():
            assert grammar.match(line), f"unexpected line in a {kind} batch: {line!r}"
    text = "\n".join(stdin or "" for _, stdin in batches)
    for needle in ("reboot", "flush ruleset", "rm -rf", "$(", "`", "%", "eth0", "accept", "\r"):
        assert needle not in text


def test_refusals_are_one_safe_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    e = Enforcer(store_con(tmp_path / "s.duckdb"), FirewallConfig(), [], host_addresses=[])
    e.on_alerts([alert(1, "192.0.2.1\nadd rule inet x y accept")], T0)
    assert caplog.records and all("\n" not in r.getMessage() for r in caplog.records)
