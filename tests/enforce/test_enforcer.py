"""Decisions and state: TTLs, escalation, report-only, the allowlist, IPv6 /64, reconcile (dry-run backend)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from fraudwatch.config.firewall import RuleTTL
from fraudwatch.detect.runners.early import Decision
from fraudwatch.enforce import BanRefused, Enforcer, FirewallConfig, NotBanned, SetFullError
from fraudwatch.enforce.backends.base import Runner
from fraudwatch.enforce.backends.dryrun import DryRunBackend
from fraudwatch.enforce.backends.ipset import IpsetBackend
from fraudwatch.enforce.backends.nft import NftablesBackend
from fraudwatch.enforce.targets import parse_target
from tests.enforce.helpers import T0, RecordingRunner, alert, store_con

TRUSTED = [ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_network("2001:db8:5::7/128")]
HOUR = dt.timedelta(hours=1)


def make(tmp_path: Path, **kw: object) -> Enforcer:
    cfg = FirewallConfig(**kw)  # type: ignore[arg-type]
    return Enforcer(store_con(tmp_path / "s.duckdb"), cfg, TRUSTED,
                    host_addresses=[ipaddress.ip_network("203.0.113.250/32")])


def kernel(e: Enforcer) -> set[str]:
    return {str(n) for n in e.backend.list()}


def test_ttl_by_severity_and_rule(tmp_path: Path) -> None:
    e = make(tmp_path, ttl_warning=3600, ttl_critical=86400, rule_ttl={"scanner": RuleTTL(600, 7200)})
    done = e.on_alerts([alert(1, "192.0.2.1"), alert(2, "192.0.2.2", severity="critical"),
                        alert(3, "192.0.2.3", rule="scanner"), alert(4, "192.0.2.4", rule="scanner",
                                                                     severity="critical")], T0)
    assert done[1] == "would ban 192.0.2.1 until 2026-11-26 13:00 UTC (level 1) (dry run)"
    assert done[2] == "would ban 192.0.2.2 until 2026-11-27 12:00 UTC (level 1) (dry run)"
    assert done[3] == "would ban 192.0.2.3 until 2026-11-26 12:10 UTC (level 1) (dry run)"
    assert done[4] == "would ban 192.0.2.4 until 2026-11-26 14:00 UTC (level 1) (dry run)"
    assert kernel(e) == {"192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"}
    rows = e.con.execute("SELECT network, family, source, rule, alert_id, level, backend FROM bans "
                         "ORDER BY id").fetchall()
    assert rows[0] == ("192.0.2.1", 4, "rule", "sip-bruteforce", 1, 1, "dry-run")


def test_only_ban_ip_alerts_act(tmp_path: Path) -> None:
    e = make(tmp_path)
    done = e.on_alerts([alert(1, "192.0.2.1", action="alert"), alert(2, "1001", action="lock_account"),
                        alert(3, "1001", key_type="account")], T0)
    assert done == {3: "not banned: the key is an account, not an address"}
    assert kernel(e) == set()


def test_escalation_for_repeat_offenders_is_capped(tmp_path: Path) -> None:
    e = make(tmp_path, ttl_warning=3600, escalation_factor=4.0, ttl_max=10 * 3600)
    now = T0
    levels = []
    for i in range(4):
        done = e.on_alerts([alert(i + 1, "192.0.2.9")], now)
        levels.append(done[i + 1])
        ban = e.con.execute("SELECT expires_at - created_at FROM bans ORDER BY id DESC LIMIT 1").fetchall()[0][0]
        now = now + ban + dt.timedelta(seconds=1)
        e.tick(now)  # expires it
    assert [ln.split("(")[1] for ln in levels] == ["level 1) ", "level 2) ", "level 3) ", "level 4) "]
    spans = [r[0] for r in e.con.execute("SELECT expires_at - created_at FROM bans ORDER BY id").fetchall()]
    assert spans == [HOUR, 4 * HOUR, 10 * HOUR, 10 * HOUR]


def test_repeat_alert_while_banned_extends_or_reports(tmp_path: Path) -> None:
    e = make(tmp_path, ttl_warning=3600, ttl_critical=86400)
    e.on_alerts([alert(1, "192.0.2.1")], T0)
    done = e.on_alerts([alert(1, "192.0.2.1"), alert(2, "192.0.2.1|other-user")], T0 + HOUR / 2)
    assert done[1] == "would extend ban #1 on 192.0.2.1 until 2026-11-26 13:30 UTC (dry run)"
    assert done[2].startswith("already a dry-run ban: 192.0.2.1 until 2026-11-26 13:30 UTC (ban #1)")
    done = e.on_alerts([alert(1, "192.0.2.1", severity="critical")], T0 + HOUR / 2)
    assert done[1].startswith("would extend ban #1 on 192.0.2.1 until 2026-11-27 12:30")
    assert e.con.execute("SELECT count(*) FROM bans").fetchall()[0][0] == 1


def test_report_only_by_rule_and_by_alert(tmp_path: Path) -> None:
    e = make(tmp_path, report_only=("new-rule",))
    done = e.on_alerts([alert(1, "192.0.2.1", rule="new-rule"), alert(2, "192.0.2.2", report_only=True)], T0)
    assert done[1] == "report-only: would ban 192.0.2.1 for 1h (level 1)"
    assert done[2] == "report-only: would ban 192.0.2.2 for 1h (level 1)"
    assert kernel(e) == set()
    assert e.con.execute("SELECT count(*) FROM bans").fetchall()[0][0] == 0


@pytest.mark.parametrize(("key", "why"), [
    ("198.51.100.7", "trusted network 198.51.100.0/24"),
    ("::ffff:198.51.100.7", "trusted network 198.51.100.0/24"),
    ("192.0.2.200", "allowlisted network 192.0.2.200/32 ([firewall] allow)"),
    ("203.0.113.250", "this host's own address 203.0.113.250"),
    ("127.0.0.1", "special-purpose network 127.0.0.0/8"),
    ("::1", "special-purpose network ::1/128"),
    ("169.254.1.1", "special-purpose network 169.254.0.0/16"),
    ("fe80::1", "special-purpose network fe80::/10"),
    ("0.0.0.0", "special-purpose network 0.0.0.0/8"),
    ("::", "special-purpose network ::/128"),
    ("224.0.0.5", "special-purpose network 224.0.0.0/4"),
    ("ff02::1", "special-purpose network ff00::/8"),
    ("255.255.255.255", "special-purpose network 255.255.255.255/32"),
])
def test_allowlist_always_wins(tmp_path: Path, key: str, why: str) -> None:
    e = make(tmp_path, allow=(ipaddress.ip_network("192.0.2.200/32"),))
    done = e.on_alerts([alert(1, key)], T0)
    assert done[1] == f"not banned: {why}"
    assert kernel(e) == set()
    assert e.refused[-1] == (key, f"not banned: {why}")
    with pytest.raises(BanRefused):
        e.ban(key, T0)


def test_cli_network_ban_refused_when_it_overlaps_the_allowlist(tmp_path: Path) -> None:
    e = make(tmp_path)
    with pytest.raises(BanRefused, match=r"198\.51\.0\.0/16 overlaps the allowlist \(trusted network"):
        e.ban("198.51.0.0/16", T0)
    with pytest.raises(BanRefused, match="too broad"):
        e.ban("10.0.0.0/8", T0)


def test_ipv6_aggregation_to_64_with_fallback(tmp_path: Path) -> None:
    e = make(tmp_path, ipv6_prefix=64)
    done = e.on_alerts([alert(1, "2001:db8:1:2::abcd"), alert(2, "2001:db8:1:2::1"),
                        alert(3, "2001:db8:5::99")], T0)
    assert done[1].startswith("would ban 2001:db8:1:2::/64 ")
    assert done[2].startswith("already a dry-run ban: 2001:db8:1:2::/64")
    assert done[3].startswith("would ban 2001:db8:5::99 ")  # its /64 holds trusted 2001:db8:5::7
    assert kernel(e) == {"2001:db8:1:2::/64", "2001:db8:5::99"}


def test_network_ban_supersedes_bans_inside_it(tmp_path: Path) -> None:
    e = make(tmp_path)
    e.on_alerts([alert(1, "192.0.2.7"), alert(2, "192.0.2.8")], T0)
    msg = e.ban("192.0.2.0/24", T0, ttl=600, reason="botnet")
    assert msg.startswith("would ban 192.0.2.0/24 until 2026-11-26 12:10 UTC (ban #3) (replaces 2 ban(s)")
    assert kernel(e) == {"192.0.2.0/24"}
    assert e.on_alerts([alert(3, "192.0.2.9")], T0)[3].startswith("already a dry-run ban: 192.0.2.0/24")
    with pytest.raises(NotBanned, match=r"inside ban #3 on 192\.0\.2\.0/24"):
        e.unban("192.0.2.9", T0)
    assert e.unban("192.0.2.0/24", T0) == "ended dry-run ban #3 on 192.0.2.0/24 (dry run: no firewall held it)"
    with pytest.raises(NotBanned):
        e.unban("192.0.2.0/24", T0)
    assert kernel(e) == set()


def test_reconcile_restores_removes_stale_and_expires(tmp_path: Path) -> None:
    e = make(tmp_path, ttl_warning=3600)
    e.start(T0)
    e.on_alerts([alert(1, "192.0.2.1"), alert(2, "192.0.2.2")], T0)
    e.ban("192.0.2.3", T0, ttl=60)
    backend = e.backend
    assert isinstance(backend, DryRunBackend)
    backend.state.pop(parse_target("192.0.2.1"))  # lost from the kernel
    backend.state[parse_target("192.0.2.99")] = 500.0  # nobody's ban
    report = e.reconcile(T0 + dt.timedelta(seconds=61))
    # removed: .99 (nobody's) and .3 (expired; the dry-run "kernel" keeps no time, a real one lets it lapse)
    assert (report.added, report.removed, report.expired, report.active) == (1, 2, 1, 2)
    assert kernel(e) == {"192.0.2.1", "192.0.2.2"}
    # a new enforcer on the same store (a restart) with an empty kernel restores both
    e2 = Enforcer(e.con, e.cfg, TRUSTED, host_addresses=[])
    report = e2.start(T0 + dt.timedelta(seconds=62))
    assert report.added == 2 and kernel(e2) == {"192.0.2.1", "192.0.2.2"}


def test_kernel_timeouts_are_capped_and_renewed(tmp_path: Path) -> None:
    e = make(tmp_path, ttl_warning=86400, kernel_timeout_max=3600, reconcile_interval=60)
    e.start(T0)
    e.on_alerts([alert(1, "192.0.2.1")], T0)
    assert e.backend.list() == {parse_target("192.0.2.1"): 3600.0}
    assert isinstance(e.backend, DryRunBackend)
    e.backend.state[parse_target("192.0.2.1")] = 100.0  # kernel entry close to its timeout
    report = e.reconcile(T0 + HOUR - dt.timedelta(seconds=100))
    assert report.renewed == 1
    assert e.backend.list() == {parse_target("192.0.2.1"): 3600.0}


def test_tick_is_cheap_and_reconciles_when_due(tmp_path: Path) -> None:
    e = make(tmp_path, reconcile_interval=3600)
    assert e.tick(T0) is not None  # first tick reconciles
    assert e.tick(T0) is None


def test_stop_keeps_bans_unless_configured(tmp_path: Path) -> None:
    e = make(tmp_path)
    e.on_alerts([alert(1, "192.0.2.1")], T0)
    e.stop(T0)
    assert kernel(e) == {"192.0.2.1"}
    e2 = Enforcer(e.con, FirewallConfig(unban_on_stop=True), TRUSTED, host_addresses=[])
    e2.start(T0)
    e2.stop(T0)
    assert kernel(e2) == set()
    assert e.con.execute("SELECT count(*) FROM bans WHERE removed_at IS NULL").fetchall()[0][0] == 1


def test_flush_ends_every_ban(tmp_path: Path) -> None:
    e = make(tmp_path)
    e.on_alerts([alert(1, "192.0.2.1"), alert(2, "2001:db8::1")], T0)
    assert e.flush(T0) == 2
    assert kernel(e) == set()
    assert e.con.execute("SELECT DISTINCT removed_reason FROM bans").fetchall() == [("flush",)]


def test_one_kernel_batch_for_many_alerts(tmp_path: Path) -> None:
    runner = RecordingRunner()
    cfg = FirewallConfig(backend="nftables")
    e = Enforcer(store_con(tmp_path / "s.duckdb"), cfg, TRUSTED, backend=NftablesBackend(cfg, runner),
                 host_addresses=[])
    e.start(T0)
    runner.log.clear()
    alerts = [alert(i, f"192.0.2.{i}") for i in range(1, 201)] + [alert(300, "2001:db8::5")]
    done = e.on_alerts(alerts, T0)
    assert sum(v.startswith("banned") for v in done.values()) == 201
    assert [a for a, _ in runner.log] == [("nft", "-f", "-")]


def test_a_full_set_evicts_the_soonest_expiring_lowest_level_ban_never_a_manual_one(tmp_path: Path) -> None:
    """Refusing at maxelem let forged addresses crowd out real attackers: now the set makes room (and says so)."""
    cfg = FirewallConfig(backend="ipset", maxelem=3, full_at=100)
    e = Enforcer(store_con(tmp_path / "s.duckdb"), cfg, TRUSTED, backend=IpsetBackend(cfg, RecordingRunner()),
                 host_addresses=[])
    e.ban("192.0.2.100", T0, ttl=60)  # by hand, soonest to expire: never evicted
    e.on_alerts([alert(1, "192.0.2.1", severity="critical"), alert(2, "192.0.2.2")], T0)
    done = e.on_alerts([alert(3, "192.0.2.3"), alert(4, "2001:db8::3")], T0 + dt.timedelta(seconds=1))
    assert done[3].startswith("banned 192.0.2.3")
    assert done[4].startswith("banned 2001:db8::3")
    active = {r["network"] for r in e.listing(T0 + dt.timedelta(seconds=2))}
    assert active == {"192.0.2.100", "192.0.2.1", "192.0.2.3", "2001:db8::3"}  # the 1 h warning ban went
    gone = [r for r in e.listing(T0, include_history=True) if r["network"] == "192.0.2.2"]
    assert gone[0]["removed_reason"] == "evicted: the set was nearly full"
    assert any("full_policy = evict" in why and "evicted ban #3 on 192.0.2.2" in why for _, why in e.refused)
    e.flush(T0)
    for i in range(3):
        e.ban(f"192.0.2.{200 + i}", T0)
    done = e.on_alerts([alert(9, "192.0.2.9")], T0)
    assert done[9] == ("not banned: the IPv4 set is full (3 entries, [firewall] maxelem) and nothing could be "
                       "evicted or aggregated")
    with pytest.raises(BanRefused, match="full"):
        e.ban("192.0.2.4", T0)


def test_a_nearly_full_set_aggregates_to_a_prefix_but_never_over_a_customer(tmp_path: Path) -> None:
    cfg = FirewallConfig(backend="nftables", maxelem=4, full_at=75, full_policy="aggregate")
    runner = RecordingRunner()
    e = Enforcer(store_con(tmp_path / "s.duckdb"), cfg, TRUSTED, backend=NftablesBackend(cfg, runner),
                 host_addresses=[])
    e.customers = frozenset({"203.0.113.7"})
    e.on_alerts([alert(1, "192.0.2.1"), alert(2, "192.0.2.2"), alert(3, "203.0.113.1"), alert(4, "203.0.113.2")],
                T0)
    active = {r["network"] for r in e.listing(T0)}
    assert active == {"192.0.2.0/24", "203.0.113.1", "203.0.113.2"}, active  # not 203.0.113.0/24: a customer
    assert "add element inet fraudwatch fraudwatch4net { 192.0.2.0/24 timeout 3600s }" in runner.text()
    assert any("aggregated 2 bans into 192.0.2.0/24" in why for _, why in e.refused)


class FullRunner(Runner):
    def run(self, argv, stdin=None, check=True):  # type: ignore[no-untyped-def]
        import subprocess

        if "restore" in argv:
            return super().run(["sh", "-c", "echo 'ipset v7.17: Error in line 1: Hash is full, cannot add more "
                                "elements' >&2; exit 1"], None, check)
        return subprocess.CompletedProcess(list(argv), 0, "", "")


def test_ipset_hash_full_is_detected(tmp_path: Path) -> None:
    cfg = FirewallConfig(backend="ipset")
    backend = IpsetBackend(cfg, FullRunner())
    with pytest.raises(SetFullError, match="Hash is full"):
        backend.apply([], [parse_target("192.0.2.1")], ())
    e = Enforcer(store_con(tmp_path / "s.duckdb"), cfg, TRUSTED, backend=backend, host_addresses=[])
    done = e.on_alerts([alert(1, "192.0.2.1")], T0)
    assert "firewall error" in done[1] and "Hash is full" in done[1]


def test_reconcile_interval_stretches_with_its_cost_but_keeps_renewals_in_time(tmp_path: Path) -> None:
    e = make(tmp_path, reconcile_interval=60, kernel_timeout_max=7 * 86400)
    assert e.reconcile_interval == 60
    e._last_cost = 4.0  # a reconcile of 100k kernel entries on a busy host
    assert e.reconcile_interval == 200
    e2 = make(tmp_path / "b", reconcile_interval=1, kernel_timeout_max=40)
    e2._last_cost = 4.0
    assert e2.reconcile_interval == 10  # a quarter of the kernel timeout


def test_nftables_setup_replaces_our_chain_when_its_priority_changed() -> None:
    from fraudwatch.enforce import FirewallError

    class FailOnce(RecordingRunner):
        """The first `nft -f -` fails as the kernel does when a base chain's priority changes."""

        def run(self, argv, stdin=None, check=True):  # type: ignore[no-untyped-def]
            if not self.log:
                self.log.append((tuple(argv), stdin))
                raise FirewallError("nft failed: Error: Could not process rule: Operation not supported")
            return super().run(argv, stdin, check)

    runner = FailOnce()
    NftablesBackend(FirewallConfig(backend="nftables", priority=-100), runner).setup()
    assert len(runner.log) == 2
    second = runner.log[1][1] or ""
    assert "flush chain inet fraudwatch input\ndelete chain inet fraudwatch input\nadd chain" in second
    assert "priority -100;" in second


def test_early_decisions_ban_at_once_and_their_alert_is_linked(tmp_path: Path) -> None:
    from fraudwatch.detect.runners.early import Decision

    e = make(tmp_path, ttl_critical=86400)
    decide = [Decision("sip-bruteforce", "192.0.2.9", "critical", 15.0, T0, "brute force"),
              Decision("sip-bruteforce", "198.51.100.9", "critical", 15.0, T0, "brute force")]
    done = e.on_early(decide, T0)  # 198.51.100.0/24 is trusted here
    assert done[0] == "would ban 192.0.2.9 until 2026-11-27 12:00 UTC (level 1) (dry run)"
    assert done[1] == "not banned: trusted network 198.51.100.0/24"
    assert kernel(e) == {"192.0.2.9"}
    rows = e.con.execute("SELECT source, rule, alert_id, severity FROM bans").fetchall()
    assert rows == [("early", "sip-bruteforce", None, "critical")]
    # the rules' alert comes 2 s later: the same ban, now with its alert, a little longer, said so
    later = T0 + dt.timedelta(seconds=2)
    out = e.on_alerts([alert(7, "192.0.2.9", severity="critical")], later)
    assert out[7] == ("would ban 192.0.2.9 until 2026-11-27 12:00 UTC (level 1; ban #1, decided early on the log's "
                      "newest lines, 2.0 s before this alert) (dry run)")
    assert e.con.execute("SELECT count(*), max(alert_id), max(expires_at) FROM bans").fetchall()[0] == \
        (1, 7, T0 + dt.timedelta(seconds=86402))
    # another rule's alert for the address is not this ban's alert
    out = e.on_alerts([alert(8, "192.0.2.9", severity="critical", rule="scanner")], later)
    assert out[8].startswith("already a dry-run ban") or out[8].startswith("extended")
    assert e.con.execute("SELECT alert_id FROM bans").fetchall() == [(7,)]


def test_a_busy_store_never_holds_a_ban_back_and_its_bans_are_written_after(tmp_path: Path) -> None:
    """Under a flood the ingest holds the store's commit for hundreds of milliseconds: decisions reach the kernel
    meanwhile (early ones return without waiting), and the store gets them, in order, once it is free."""
    import threading
    import time

    from fraudwatch.detect.runners.early import Decision

    e = make(tmp_path, ttl_critical=86400)
    e.on_alerts([alert(1, "192.0.2.1")], T0)  # loaded: the store is read at start, not on a decision
    busy, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with e._store():  # a write that takes its time (a commit waiting for the ingest's)
            busy.set()
            release.wait(10)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert busy.wait(5)
    t0 = time.monotonic()
    done = e.on_early([Decision("sip-bruteforce", "192.0.2.9", "critical", 15.0, T0, "brute force")], T0)
    assert time.monotonic() - t0 < 2  # did not wait for the store
    assert done == ["would ban 192.0.2.9 until 2026-11-27 12:00 UTC (level 1) (dry run)"]
    assert kernel(e) == {"192.0.2.1", "192.0.2.9"}
    # the rules' alert for it comes while the store is still busy (from another thread: it waits to write)
    linked: list[dict[int, str]] = []
    acting = threading.Thread(target=lambda: linked.append(
        e.on_alerts([alert(7, "192.0.2.9", severity="critical")], T0 + dt.timedelta(seconds=1))))
    acting.start()
    acting.join(0.5)
    assert acting.is_alive()  # the acting thread waits for the store; the ban did not
    release.set()
    writer.join(5)
    acting.join(5)
    assert linked and linked[0][7].startswith("would ban 192.0.2.9")
    rows = e.con.execute("SELECT id, network, source, alert_id FROM bans ORDER BY id").fetchall()
    assert rows == [(1, "192.0.2.1", "rule", 1), (2, "192.0.2.9", "early", 7)]


def test_a_listing_waits_for_the_store_rather_than_share_its_connection(tmp_path: Path) -> None:
    """`bans list` over the control socket runs on the watcher's loop while the early-ban thread writes: one
    DuckDB connection refuses a second thread's call while it runs one (CI once lost a ban's record, and every
    ban after it, that way). The listing goes through the store's lock, and sees the writes left behind."""
    import threading

    from fraudwatch.enforce import ops

    e = make(tmp_path)
    e.on_alerts([alert(1, "192.0.2.1")], T0)
    busy, release = threading.Event(), threading.Event()

    def slow_write() -> None:
        with e._store():
            busy.set()
            release.wait(10)

    writer = threading.Thread(target=slow_write)
    writer.start()
    assert busy.wait(5)
    e.on_early([_decision("192.0.2.9")], T0)  # behind: the store is busy
    listed: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: listed.append(ops.apply(e, ops.LIST, {}, T0)))
    reader.start()
    reader.join(0.3)
    assert reader.is_alive()  # waits for the store, does not call into the connection the writer holds
    release.set()
    writer.join(5)
    reader.join(5)
    assert listed and listed[0]["ok"], listed
    assert [r["network"] for r in listed[0]["rows"]] == ["192.0.2.1", "192.0.2.9"]


def _decision(ip: str) -> Decision:
    return Decision("sip-bruteforce", ip, "critical", 15.0, T0, "brute force")


def test_a_ban_the_store_could_not_take_is_lifted_at_the_next_reconcile(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The store stays the desired state: a ban that reached the kernel but not the store does not stay."""
    from fraudwatch.enforce import state

    e = make(tmp_path)
    e.on_alerts([alert(1, "192.0.2.1")], T0)
    original = state.insert

    def full(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    monkeypatch.setattr(state, "insert", full)
    with pytest.raises(OSError):
        e.on_alerts([alert(2, "192.0.2.2")], T0)
    assert kernel(e) == {"192.0.2.1", "192.0.2.2"}
    monkeypatch.setattr(state, "insert", original)
    e.tick(T0 + dt.timedelta(seconds=1))  # the failed write made it reconcile
    assert kernel(e) == {"192.0.2.1"}
    assert e.con.execute("SELECT network FROM bans").fetchall() == [("192.0.2.1",)]
    # and the next ban gets an id of its own
    assert e.on_alerts([alert(3, "192.0.2.3")], T0 + dt.timedelta(seconds=2))[3].startswith("would ban")
    assert [r[0] for r in e.con.execute("SELECT id FROM bans ORDER BY id").fetchall()] == [1, 3]
