"""The sentry's own bans (fraudwatch.enforce.early): never more than the enforcer would ban, put right by the
enforcer afterwards; and nftables' library in process (fraudwatch.enforce.backends.nft), in a namespace this test
makes."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import ipaddress
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fraudwatch.config import Config
from fraudwatch.detect.runners.early import Decision
from fraudwatch.enforce import Enforcer, FirewallConfig
from fraudwatch.enforce.backends.base import FirewallError, Runner
from fraudwatch.enforce.backends.dryrun import DryRunBackend
from fraudwatch.enforce.early import SentryFirewall
from fraudwatch.enforce.targets import parse_target
from tests.enforce.helpers import T0, store_con
from tests.enforce.netns import require_root_and, sh

TRUSTED = (ipaddress.ip_network("198.51.100.0/24"),)
HOUR = 3600


def _cfg(**firewall: object) -> Config:
    fw = FirewallConfig(backend="nftables", allow_host_addresses=False, ttl_warning=HOUR, ttl_critical=24 * HOUR,
                        **firewall)  # type: ignore[arg-type]
    return Config(path=None, trusted_networks=TRUSTED, firewall=fw)


def _decision(key: str, rule: str = "auth-failures-ip", severity: str = "critical") -> Decision:
    return Decision(rule, key, severity, 15.0, T0, "password guessing")


def _sentry(cfg: Config) -> tuple[SentryFirewall, DryRunBackend]:
    backend = DryRunBackend(cfg.firewall, Runner())
    return SentryFirewall(cfg, backend), backend


def test_the_sentry_bans_only_what_the_enforcer_would() -> None:
    cfg = _cfg(allow=(ipaddress.ip_network("192.0.2.200/32"),), report_only=("trial-rule",), ipv6_prefix=64,
               kernel_timeout_max=6 * HOUR)
    sentry, backend = _sentry(cfg)
    decisions = [_decision("192.0.2.9"), _decision("192.0.2.9", rule="scanner-user-agent", severity="warning"),
                 _decision("198.51.100.7"),  # trusted
                 _decision("192.0.2.200"),  # [firewall] allow
                 _decision("127.0.0.1"),  # special-purpose
                 _decision("192.0.2.10", rule="trial-rule"),  # on trial
                 dataclasses.replace(_decision("192.0.2.11"), report_only=True),
                 _decision("2001:db8::5"),  # aggregated to its /64: a network, the enforcer's alone
                 _decision("not-an-address"),
                 dataclasses.replace(_decision("192.0.2.12"), key_type="account")]
    out = sentry.apply(decisions)
    assert [d.applied for d in out] == [True, True] + [False] * 8
    assert [dataclasses.replace(d, applied=False) for d in out] == decisions
    # one element for the address, for the longer of its decisions' first-level times, capped for the kernel
    assert backend.state == {parse_target("192.0.2.9"): float(6 * HOUR)}
    assert sentry.applied == 1


def test_the_sentry_never_adds_a_recent_customer_and_the_enforcer_waits_for_the_alert(tmp_path: Path) -> None:
    sentry, backend = _sentry(_cfg())
    sentry.customers = {"192.0.2.40"}
    out = sentry.apply([_decision("192.0.2.40"), _decision("192.0.2.41")])
    assert [d.applied for d in out] == [False, True] and sentry.held == 1
    assert backend.state == {parse_target("192.0.2.41"): float(24 * HOUR)}
    enf = Enforcer(store_con(tmp_path / "s.duckdb"), _cfg().firewall, TRUSTED, backend=backend, host_addresses=[])
    enf.add_customers(["192.0.2.40"])
    done = enf.on_early(out, T0)
    assert done[0].startswith("not banned early: 192.0.2.40 registered or called OK within 1d")
    assert done[1].startswith("would ban 192.0.2.41")
    assert parse_target("192.0.2.40") not in backend.state
    off, _ = _sentry(_cfg(ban_evidence=False))  # the switch turns the check off here too
    off.customers = {"192.0.2.40"}
    assert [d.applied for d in off.apply([_decision("192.0.2.40")])] == [True]


def test_a_batch_the_kernel_refuses_is_left_to_the_watcher() -> None:
    sentry, backend = _sentry(_cfg())

    def refuse(*args: object) -> None:
        raise FirewallError("nft failed: Error: Could not process rule: No such file or directory")

    backend.apply = refuse  # type: ignore[method-assign]
    decisions = [_decision("192.0.2.9")]
    assert sentry.apply(decisions) == decisions  # nothing marked: the enforcer bans it as before


def test_the_enforcer_puts_right_what_the_sentry_added(tmp_path: Path) -> None:
    """Banned here: the ban's own timeout; already banned: that ban's timeout again (adding reset it); not banned
    after all: out of the kernel."""
    cfg = _cfg(escalation_factor=4.0)
    backend = DryRunBackend(cfg.firewall, Runner())
    e = Enforcer(store_con(tmp_path / "s.duckdb"), cfg.firewall, TRUSTED, backend=backend, host_addresses=[])
    e.start(T0)
    e.ban("192.0.2.7", T0, ttl=7 * 24 * HOUR)  # already banned for a week
    sentry = SentryFirewall(cfg, backend)
    e.refused.clear()
    decided = sentry.apply([_decision("192.0.2.9"), _decision("192.0.2.7")])
    assert backend.state[parse_target("192.0.2.7")] == 24 * HOUR  # the sentry's add reset the week
    # a decision the enforcer refuses though the sentry did not (the watcher learnt a new admin address)
    e.allowlist = e.allowlist.build(TRUSTED, (ipaddress.ip_network("192.0.2.8/32"),), ())
    extra = sentry.apply([_decision("192.0.2.8")])
    assert parse_target("192.0.2.8") in backend.state
    done = e.on_early([*decided, *extra], T0)
    assert done[0] == "would ban 192.0.2.9 until 2026-11-27 12:00 UTC (level 1) (dry run)"
    assert done[1].startswith("already a dry-run ban: 192.0.2.7")
    assert done[2].startswith("not banned: allowlisted network 192.0.2.8/32")
    assert backend.state == {parse_target("192.0.2.9"): 24 * HOUR, parse_target("192.0.2.7"): 7 * 24 * HOUR}
    later = T0 + dt.timedelta(seconds=1)
    assert e.reconcile(later).removed == 0 and e.reconcile(later).added == 0


LIBRARY = r"""
import sys
from fraudwatch.enforce.backends.base import Entry, FirewallError, Runner
from fraudwatch.config.firewall import FirewallConfig
from fraudwatch.enforce.backends.nft import NftablesBackend
from fraudwatch.enforce.targets import parse_target
b = NftablesBackend(FirewallConfig(backend="nftables", table=sys.argv[1]), Runner(), in_process=True)
assert b.lib is not None, "libnftables not loaded"
b.setup()
b.apply([Entry(parse_target("192.0.2.9"), 600), Entry(parse_target("2001:db8::9"), 60)], [], ())
b.apply([Entry(parse_target("192.0.2.9"), 900)], [], {parse_target("192.0.2.9")})  # renewed: delete and add
try:
    b.apply([], [parse_target("192.0.2.77")], ())  # not there: the kernel's error, as nft would give it
except FirewallError as exc:
    print("error:", exc)
print(sorted(f"{n.text} {int(t or 0)}" for n, t in b.list().items()))
"""


def test_nftables_library_in_process_inside_a_namespace(tmp_path: Path) -> None:
    require_root_and("nft", "ip")
    ns = f"fwtL{uuid.uuid4().hex[:6]}"
    if sh("ip", "netns", "add", ns, check=False).returncode != 0:
        pytest.skip("cannot create a network namespace")
    try:
        root = Path(__file__).resolve().parents[2]
        proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", LIBRARY, "fwlib"], cwd=root,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.splitlines()
        assert lines[0].startswith("error: nft failed:") and "No such file or directory" in lines[0], lines
        listed = dict(item.split() for item in ast.literal_eval(lines[1]))
        assert set(listed) == {"192.0.2.9", "2001:db8::9"}
        assert 800 < int(listed["192.0.2.9"]) <= 900, listed  # renewed to 900 s, less the seconds gone
        # in the namespace, and nowhere else
        assert "192.0.2.9" in sh("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "fwlib").stdout
        assert sh("nft", "list", "table", "inet", "fwlib", check=False).returncode != 0
    finally:
        sh("ip", "netns", "del", ns, check=False)
