"""Scale of enforcement: 100,000 bans applied from empty, and restored after a restart, inside a namespace.

    sudo .venv/bin/python benchmarks/ban_bench.py [--count 100000] [--backend nftables|ipset|iptables]

Creates a network namespace and a temporary store, then times:
  apply    Enforcer.on_alerts with COUNT ban_ip alerts (parse, allowlist, escalation lookup, one kernel batch and
           the store insert behind it), from an empty firewall; also printed: when the kernel batch ended;
  restore  after the kernel's sets were wiped, a new Enforcer on the same store: Enforcer.start (setup, list the
           kernel, re-apply every active ban);
  steady   a reconcile with nothing to do (lists COUNT kernel entries and compares).
Each is checked against the kernel's own listing. Printed per phase: wall time, CPU time (this process and
the firewall tools it ran) and the wall time spent inside the firewall tool. The namespace is deleted at the
end whatever happens.
Addresses: 10.0.0.0/8 (IPv4, 90%) and 2001:db8::/32 (IPv6, 10%); nothing leaves the namespace.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fraudwatch.detect.decide import Alert
from fraudwatch.enforce import Enforcer, FirewallConfig
from fraudwatch.store.db import Store


def alerts(count: int, now: dt.datetime) -> list[Alert]:
    v6 = count // 10
    base4, base6 = int(ipaddress.IPv4Address("10.0.0.1")), int(ipaddress.IPv6Address("2001:db8::1"))
    keys = [str(ipaddress.IPv4Address(base4 + i)) for i in range(count - v6)]
    keys += [str(ipaddress.IPv6Address(base6 + (i << 16))) for i in range(v6)]
    return [Alert(id=i + 1, rule="sip-bruteforce", severity="warning", key_type="ip", key=k, first_seen=now,
                  last_seen=now, detected_at=now, count=10, value=10.0, action="ban_ip", trusted=False,
                  report_only=False, description="benchmark") for i, k in enumerate(keys)]


class Clock:
    """Time spent inside firewall commands (the rest of a phase is fraudwatch's own Python and DuckDB)."""

    def __init__(self, enf: Enforcer) -> None:
        self.seconds = 0.0
        self.done_at = 0.0  # when the last firewall command ended (perf_counter)
        run = enf.backend.runner.run

        def timed(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return run(*a, **k)
            finally:
                self.done_at = time.perf_counter()
                self.seconds += self.done_at - t0

        enf.backend.runner.run = timed  # type: ignore[method-assign]

    def take(self) -> float:
        s, self.seconds = self.seconds, 0.0
        return s


def cpu() -> float:
    """CPU seconds of this process and its finished children (nft, ipset): a figure the other loads on a
    shared machine disturb far less than wall time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def wipe(prefix: list[str], cfg: FirewallConfig) -> None:
    if cfg.backend == "nftables":
        argv = [["nft", "-f", "-"]]
        stdin = "".join(f"flush set inet {cfg.table} {cfg.set}{s}\n" for s in ("4", "4net", "6", "6net"))
    elif cfg.backend == "ipset":
        argv, stdin = [["ipset", "flush", f"{cfg.set}4"], ["ipset", "flush", f"{cfg.set}6"]], ""
    else:
        argv, stdin = [["iptables", "-F", cfg.chain], ["ip6tables", "-F", cfg.chain]], ""
    for a in argv:
        subprocess.run([*prefix, *a], input=stdin, text=True, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--backend", default="nftables", choices=["nftables", "ipset", "iptables"])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("ban_bench: needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    ns = f"fwbench{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    prefix = ["ip", "netns", "exec", ns]
    cfg = FirewallConfig(backend=args.backend, ttl_warning=3600, maxelem=max(65536, args.count * 2),
                         reconcile_interval=3600)
    try:
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "bench.duckdb") as store:
            now = dt.datetime.now(dt.UTC)
            batch = alerts(args.count, now)
            enf = Enforcer(store.con, cfg, [], command_prefix=prefix)
            enf.start(now)
            # a watcher has long since made its first pyarrow compute call, which imports pandas (0.3 s): not
            # part of a ban batch
            pc.add(pa.array([0]), 0)
            clock = Clock(enf)
            t0, c0 = time.perf_counter(), cpu()
            done = enf.on_alerts(batch, now)
            apply_s, apply_c = time.perf_counter() - t0, cpu() - c0
            enforced = clock.done_at - t0  # the kernel batch's end: the store's record is written behind it
            apply_k = clock.take()
            banned = sum(v.startswith("banned") for v in done.values())
            in_kernel = len(enf.backend.list())
            assert banned == in_kernel == args.count, (banned, in_kernel)

            wipe(prefix, cfg)
            assert len(enf.backend.list()) == 0
            enf2 = Enforcer(store.con, cfg, [], command_prefix=prefix)
            clock = Clock(enf2)
            t0, c0 = time.perf_counter(), cpu()
            report = enf2.start(now)
            restore_s, restore_c = time.perf_counter() - t0, cpu() - c0
            restore_k = clock.take()
            assert report.added == args.count and not report.errors, report
            assert len(enf2.backend.list()) == args.count

            clock.take()
            t0, c0 = time.perf_counter(), cpu()
            steady = enf2.reconcile(now)
            steady_s, steady_c = time.perf_counter() - t0, cpu() - c0
            steady_k = clock.take()
            assert steady.added == steady.removed == 0, steady
        print(f"backend {args.backend}, {args.count:,} bans ({args.count - args.count // 10:,} IPv4, "
              f"{args.count // 10:,} IPv6), namespace {ns}")
        tool = {"nftables": "nft", "ipset": "ipset/iptables", "iptables": "iptables"}[args.backend]
        print(f"{'':40s} {'wall':>8s} {'cpu':>8s} {'in ' + tool:>10s}")
        for label, total, used, kernel in (
                ("apply from empty (on_alerts, one batch)", apply_s, apply_c, apply_k),
                ("restore after restart (start)", restore_s, restore_c, restore_k),
                ("steady reconcile (nothing to do)", steady_s, steady_c, steady_k)):
            print(f"{label:40s} {total:6.2f} s {used:6.2f} s {kernel:8.2f} s   {args.count / total:>9,.0f} bans/s")
        print(f"apply: every ban in the kernel after {enforced:.2f} s; the rest is their record in the store, "
              "written behind the kernel")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
