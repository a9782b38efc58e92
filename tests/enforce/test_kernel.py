"""Real packets through real kernel objects, one test per backend, inside namespaces the test creates.

A banned source's UDP datagrams to 5060 are dropped and a trusted source's pass; an expired ban lifts; a restart
(a new Enforcer on the same store) re-applies active bans after the kernel state was wiped; the operator's own
nftables table and iptables chain come through untouched.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from pathlib import Path

import pytest

from fraudwatch.enforce import Enforcer, FirewallConfig
from fraudwatch.enforce.backends import BACKENDS, DRY_RUN
from fraudwatch.enforce.targets import parse_target
from tests.enforce.helpers import alert, store_con
from tests.enforce.netns import NetPair, netpair, require_root_and

TOOLS = {"nftables": ("nft",), "ipset": ("ipset", "iptables", "ip6tables"), "iptables": ("iptables", "ip6tables")}
TRUSTED = [ipaddress.ip_network("198.51.100.0/24")]

OPERATOR_NFT = """table inet operator {
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport 9999 counter accept comment "operator rule"
  }
}
"""


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_operator_rules(p: NetPair) -> None:
    p.in_b("nft", "-f", "-", stdin=OPERATOR_NFT)
    p.in_b("iptables", "-w", "-N", "OPERATOR")
    p.in_b("iptables", "-w", "-A", "OPERATOR", "-p", "udp", "--dport", "9999", "-j", "ACCEPT")
    p.in_b("iptables", "-w", "-A", "INPUT", "-j", "OPERATOR")


def operator_snapshot(p: NetPair) -> tuple[str, str, list[str]]:
    nft = p.in_b("nft", "-s", "list", "table", "inet", "operator").stdout  # -s: without counters
    chain = p.in_b("iptables", "-w", "-S", "OPERATOR").stdout
    inp = [ln for ln in p.in_b("iptables", "-w", "-S", "INPUT").stdout.splitlines() if "FRAUDWATCH" not in ln]
    return nft, chain, inp


def wipe_kernel(p: NetPair, backend: str) -> None:
    """What a reboot or `nft flush ruleset` by someone else would leave: none of our entries."""
    if backend == "nftables":
        p.in_b("nft", "delete", "table", "inet", "fraudwatch")
    elif backend == "ipset":
        p.in_b("ipset", "flush", "fraudwatch4")
        p.in_b("ipset", "flush", "fraudwatch6")
    else:
        p.in_b("iptables", "-w", "-F", "FRAUDWATCH")
        p.in_b("ip6tables", "-w", "-F", "FRAUDWATCH")


def our_rule_count(p: NetPair, backend: str) -> int:
    """nftables: the drop rules in our chain; ipset: INPUT jumps + set rules (both families); iptables: jumps."""
    if backend == "nftables":
        return p.in_b("nft", "list", "chain", "inet", "fraudwatch", "input").stdout.count("drop")
    count = 0
    for tool in ("iptables", "ip6tables"):
        lines = p.in_b(tool, "-w", "-S").stdout.splitlines()
        count += sum(ln == "-A INPUT -j FRAUDWATCH" for ln in lines)
        count += sum(ln.startswith("-A FRAUDWATCH ") and "--match-set" in ln for ln in lines)
    return count


def wait_until(cond, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / 0.2) + 1):
        if cond():
            return True
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return bool(cond())


KERNEL_BACKENDS = [name for name in BACKENDS if name != DRY_RUN]


def test_every_kernel_backend_is_tested_here() -> None:
    assert set(TOOLS) == set(KERNEL_BACKENDS)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_backend_drops_banned_passes_trusted_expires_and_restores(backend: str, tmp_path: Path) -> None:
    require_root_and(*TOOLS[backend])
    with netpair() as p:
        add_operator_rules(p)
        before = operator_snapshot(p)
        p.start_listener()
        assert p.reaches("192.0.2.2") and p.reaches("198.51.100.2") and p.reaches("2001:db8::2")

        cfg = FirewallConfig(backend=backend, ttl_warning=3600, reconcile_interval=3600, maxelem=1024)
        con = store_con(tmp_path / "store.duckdb")
        enf = Enforcer(con, cfg, TRUSTED, command_prefix=p.prefix_b)
        enf.start(now())
        done = enf.on_alerts([alert(1, "192.0.2.2|1001"), alert(2, "198.51.100.2"), alert(3, "2001:db8::2"),
                              alert(4, "192.0.2.1", severity="critical")], now())
        assert done[1].startswith("banned 192.0.2.2 until ")
        assert done[2] == "not banned: trusted network 198.51.100.0/24"
        assert done[3].startswith("banned 2001:db8::2 ")
        assert done[4] == "not banned: this host's own address 192.0.2.1"  # read from the namespace
        assert "banned 192.0.2.3" in enf.ban("192.0.2.3", now(), ttl=3)

        assert not p.reaches("192.0.2.2"), "banned IPv4 source passed"
        assert not p.reaches("192.0.2.3", wait=0.5)
        assert not p.reaches("2001:db8::2"), "banned IPv6 source passed"
        assert p.reaches("198.51.100.2"), "trusted source was dropped"
        assert p.reaches("192.0.2.2", port=9999), "scope sip-ports dropped another port"

        # restart: the kernel lost everything, a new enforcer on the same store puts the active bans back
        wipe_kernel(p, backend)
        assert p.reaches("192.0.2.2")
        enf2 = Enforcer(con, cfg, TRUSTED, command_prefix=p.prefix_b)
        report = enf2.start(now())
        assert report.added >= 2 and not report.errors, report
        enf2.backend.setup()  # setup is idempotent: still one set of our rules, one jump
        assert our_rule_count(p, backend) == {"nftables": 4, "ipset": 6, "iptables": 2}[backend]
        assert not p.reaches("192.0.2.2"), "ban not restored after restart"
        assert not p.reaches("2001:db8::2"), "IPv6 ban not restored after restart"

        # expiry: the 3 s ban lifts (by kernel timeout, or by the enforcer's tick for iptables)
        def lifted() -> bool:
            enf2.tick(now())
            return p.reaches("192.0.2.3", wait=0.3)

        assert wait_until(lifted, 8), "expired ban still drops"
        assert not p.reaches("192.0.2.2"), "the long ban lifted too"
        rows = con.execute("SELECT network, removed_reason FROM bans WHERE network = '192.0.2.3'").fetchall()
        assert rows == [("192.0.2.3", "expired")]

        # stopping keeps bans (unban_on_stop = false); the operator's objects were never touched
        enf2.stop(now())
        assert not p.reaches("192.0.2.2"), "stop unbanned"
        assert operator_snapshot(p) == before
        assert p.reaches("192.0.2.2", port=9999)

        # removal through the CLI path, then our objects go away entirely and the operator's stay
        assert enf2.unban("192.0.2.2", now()).startswith("unbanned 192.0.2.2")
        assert p.reaches("192.0.2.2")
        enf2.backend.teardown()
        assert operator_snapshot(p) == before
        con.close()


def test_nftables_renews_entries_before_a_capped_kernel_timeout(tmp_path: Path) -> None:
    """A ban longer than kernel_timeout_max stays in the kernel: reconcile renews the element in time."""
    require_root_and("nft")
    with netpair() as p:
        p.start_listener()
        cfg = FirewallConfig(backend="nftables", ttl_warning=3600, kernel_timeout_max=3, reconcile_interval=1)
        con = store_con(tmp_path / "store.duckdb")
        enf = Enforcer(con, cfg, TRUSTED, command_prefix=p.prefix_b)
        enf.start(now())
        enf.on_alerts([alert(1, "192.0.2.2")], now())
        kernel = enf.backend.list()
        assert 0 < (kernel[parse_target("192.0.2.2")] or 0) <= 3
        renewed = 0
        t_end = time.monotonic() + 5
        for _ in range(30):
            if time.monotonic() > t_end:
                break
            report = enf.tick(now())
            renewed += report.renewed if report else 0
            assert not p.reaches("192.0.2.2", wait=0.2), "ban fell out of the kernel between renewals"
        assert renewed >= 1
        enf.backend.teardown()
        con.close()


def test_ipset_full_is_detected_by_the_kernel(tmp_path: Path) -> None:
    """maxelem is real: the enforcer makes room before it, and the kernel's own "Hash is full" is recognised."""
    require_root_and("ipset", "iptables", "ip6tables")
    from fraudwatch.enforce import SetFullError
    from fraudwatch.enforce.backends.base import Entry

    with netpair() as p:
        cfg = FirewallConfig(backend="ipset", maxelem=2)
        con = store_con(tmp_path / "store.duckdb")
        enf = Enforcer(con, cfg, TRUSTED, command_prefix=p.prefix_b)
        enf.start(now())
        done = enf.on_alerts([alert(1, "192.0.2.2"), alert(2, "192.0.2.3"), alert(3, "192.0.2.4")], now())
        assert done[3].startswith("banned 192.0.2.4")  # the soonest-expiring first ban made room
        with pytest.raises(SetFullError, match="full"):
            enf.backend.apply([Entry(parse_target("192.0.2.5"), 60)], [], ())
        assert len(enf.backend.list()) == 2
        enf.backend.teardown()
        con.close()


def test_ipset_resizes_in_place_when_maxelem_changes(tmp_path: Path) -> None:
    require_root_and("ipset", "iptables", "ip6tables")
    from fraudwatch.enforce.backends.ipset import IpsetBackend

    with netpair() as p:
        p.start_listener()
        con = store_con(tmp_path / "store.duckdb")
        small = FirewallConfig(backend="ipset", maxelem=4)
        enf = Enforcer(con, small, TRUSTED, command_prefix=p.prefix_b)
        enf.start(now())
        enf.on_alerts([alert(1, "192.0.2.2"), alert(2, "2001:db8::2")], now())
        big = FirewallConfig(backend="ipset", maxelem=100_000)
        enf2 = Enforcer(con, big, TRUSTED, command_prefix=p.prefix_b)
        report = enf2.start(now())
        assert report.added == 0 and not report.errors  # the elements came along, with their time left
        assert "maxelem 100000" in p.in_b("ipset", "list", "-t", "fraudwatch4").stdout
        assert "maxelem 100000" in p.in_b("ipset", "list", "-t", "fraudwatch6").stdout
        assert not p.reaches("192.0.2.2") and not p.reaches("2001:db8::2") and p.reaches("198.51.100.2")
        assert isinstance(enf2.backend, IpsetBackend)
        assert "fraudwatch4_resize" not in p.in_b("ipset", "list", "-n").stdout
        enf2.backend.teardown()
        con.close()


@pytest.mark.parametrize("backend", ["nftables", "ipset"])
def test_a_full_kernel_set_evicts_and_the_newest_attacker_is_dropped(backend: str, tmp_path: Path) -> None:
    """The set is bounded in the kernel (nftables `size`, ipset `maxelem`), and at its bound a new ban evicts the
    soonest-expiring lowest-level one in the same batch: forged addresses cannot crowd out a real attacker."""
    require_root_and(*TOOLS[backend])
    with netpair() as p:
        p.start_listener()
        con = store_con(tmp_path / "store.duckdb")
        cfg = FirewallConfig(backend=backend, maxelem=3, full_at=100, ttl_warning=600, ttl_critical=3600)
        enf = Enforcer(con, cfg, TRUSTED, command_prefix=p.prefix_b)
        enf.start(now())
        forged = [alert(i, f"203.0.113.{10 + i}") for i in range(1, 4)]  # what forged lines would fill it with
        enf.on_alerts(forged, now())
        if backend == "nftables":
            assert "size 3" in p.in_b("nft", "list", "set", "inet", "fraudwatch", "fraudwatch4").stdout
        else:
            assert "maxelem 3" in p.in_b("ipset", "list", "-t", "fraudwatch4").stdout
        from fraudwatch.enforce import SetFullError
        from fraudwatch.enforce.backends.base import Entry

        with pytest.raises(SetFullError, match="full"):  # the kernel itself refuses a fourth
            enf.backend.apply([Entry(parse_target("203.0.113.99"), 60)], [], ())
        done = enf.on_alerts([alert(9, "192.0.2.2", severity="critical")], now())
        assert done[9].startswith("banned 192.0.2.2"), done[9]
        kernel = {n.text for n in enf.backend.list()}
        assert kernel == {"203.0.113.12", "203.0.113.13", "192.0.2.2"}, kernel
        assert not p.reaches("192.0.2.2")
        assert any("evicted ban #1 on 203.0.113.11" in why for _, why in enf.refused)
        if backend == "nftables":  # a changed maxelem resizes the sets in place, their elements kept
            bigger = Enforcer(con, FirewallConfig(backend=backend, maxelem=5), TRUSTED, command_prefix=p.prefix_b)
            assert not bigger.start(now()).errors
            assert "size 5" in p.in_b("nft", "list", "set", "inet", "fraudwatch", "fraudwatch4").stdout
            assert {n.text for n in bigger.backend.list()} == kernel
        enf.backend.teardown()
        con.close()
