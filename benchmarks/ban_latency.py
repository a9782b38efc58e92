"""Time to ban: from the last triggering log line written to the address being in the kernel's nftables set.

    sudo .venv/bin/python benchmarks/ban_latency.py [--trials 50] [--flood-rate 20000] [--batch-delay-ms 20]
        [--idle-only] [--no-early]

Runs a real `fraudwatch watch` inside a network namespace this script creates (and deletes), with the nftables
backend and the shipped rules, early bans on (its sentry process; `--no-early`: off, the watcher's rules alone).
It waits for the sentry to be ready. Each trial appends 15 `403 Forbidden` answers to REGISTERs for one user from
one new address (the `auth-failures-ip` rule's critical level, whose action is a ban; one user, so that no other
rule decides before the 15th line) to sipproxy.log, stamped with the current time; the clock starts when the
15th line has been written and stops when `nft monitor`, running in the same namespace, reports the element
added to our set. First idle, then under a background flood of the simulator's REGISTER-flood lines at
`--flood-rate` lines/s. Prints p50/p99/max per phase over `--trials` trials, after one more trial per phase
reported apart (the first ban after start pays for code paths run for the first time), and at the end of the
flood how far the watcher was behind the log and how busy the sentry was.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudwatch.sim.flood import write_sipproxy_flood  # noqa: E402
from fraudwatch.watch.control import watcher_call  # noqa: E402
from fraudwatch.watch.stats import read_status  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def _line(ip: str, n: int, tag: str) -> bytes:
    now = dt.datetime.now(dt.UTC)
    return (f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d} [WARN] SEND 403 Forbidden to {ip}:5060 "
            f'method=REGISTER user="1001" callid="{tag}-{n}@bench" reason="password error"\n').encode()


class Monitor:
    """`nft monitor` in the namespace: the time each added element was reported."""

    def __init__(self, ns: str) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, "nft", "monitor", "elements"],
                                     stdout=subprocess.PIPE, text=True)
        self.seen: queue.Queue[tuple[float, str]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.seen.put((time.monotonic(), line))

    def wait_for(self, ip: str, timeout: float) -> float | None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                t, line = self.seen.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                return None
            if line.startswith("add element") and f" {ip} " in line.replace("{", " ").replace("}", " ") \
                    .replace(",", " "):
                return t
        return None

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--flood-rate", type=int, default=20000)
    ap.add_argument("--batch-delay-ms", type=int, default=20)
    ap.add_argument("--idle-only", action="store_true", help="skip the flood phase")
    ap.add_argument("--no-early", action="store_true", help="early bans off: the watcher's rules alone")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("nft"):
        raise SystemExit("needs root and nft (network namespaces)")
    ns = f"fwbanlat{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="fw-banlat-"))
    log = work / "sipproxy.log"
    log.touch()
    (work / "fraudwatch.toml").write_text(
        '[store]\npath = "store.duckdb"\n[[sources]]\npath = "sipproxy.log"\nformat = "vos3000-sipproxy"\n'
        f'[firewall]\nbackend = "nftables"\n[watch]\nbatch_delay_ms = {args.batch_delay_ms}\n'
        f'early_bans = {"false" if args.no_early else "true"}\n', encoding="utf-8")
    pool = work / "pool.log"
    flood_lines = args.flood_rate * 200
    write_sipproxy_flood(pool, flood_lines, seed=5)
    flood = pool.read_bytes().splitlines(keepends=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    watcher = None
    monitor = None
    try:
        monitor = Monitor(ns)
        watcher = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "fraudwatch", "--config",
                                    str(work / "fraudwatch.toml"), "watch"], cwd=work,
                                   stderr=(work / "watch.log").open("wb"))
        store = work / "store.duckdb"
        deadline = time.monotonic() + 60
        while watcher_call(store, "ping") is None:
            if watcher.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"watcher did not start: {(work / 'watch.log').read_text()}")
            time.sleep(0.1)
        while time.monotonic() < deadline:  # early bans: their process has loaded its rules (or is off)
            status = read_status(store)
            if status is not None and (status.get("early_bans") is None or status["early_bans"].get("rules")):
                break
            time.sleep(0.1)
        results: dict[str, list[float]] = {}
        first: dict[str, float] = {}
        notes: dict[str, str] = {}
        stop_flood = threading.Event()

        def flood_writer() -> None:
            per_tick, i, t0, tick = args.flood_rate // 100, 0, time.monotonic(), 0
            with log.open("ab", buffering=0) as f:
                while not stop_flood.is_set() and i + per_tick <= len(flood):
                    f.write(b"".join(flood[i:i + per_tick]))
                    i += per_tick
                    tick += 1
                    ahead = t0 + tick / 100 - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)

        phases = (("idle", "198.51.100."),) if args.idle_only else (("idle", "198.51.100."), ("flood", "203.0.113."))
        for phase, prefix in phases:
            flooder = None
            if phase == "flood":
                flooder = threading.Thread(target=flood_writer, daemon=True)
                flooder.start()
                time.sleep(5)  # let the flood reach a steady state (its own bans included)
            times: list[float] = []
            for trial in range(args.trials + 1):  # trial 0: the first ban after start, reported apart
                ip = f"{prefix}{trial + 1}"
                with log.open("ab", buffering=0) as f:
                    for n in range(14):
                        f.write(_line(ip, n, f"{phase}{trial}"))
                    time.sleep(0.05)
                    f.write(_line(ip, 14, f"{phase}{trial}"))
                    written = time.monotonic()
                got = monitor.wait_for(ip, 10.0)
                took = (got - written) if got is not None else float("inf")
                if trial == 0:
                    first[phase] = took
                else:
                    times.append(took)
                time.sleep(0.2)
            if flooder is not None:
                status = read_status(store) or {}
                lag = sum(max(0, f.get("size", 0) - f.get("offset", 0)) for f in status.get("files", []))
                early = status.get("early_bans") or {}
                sentry = f"busy {early['busy']:.0%}, peak RSS {early['peak_rss_mb']} MiB" if "busy" in early \
                    else "not running"
                if early.get("skipped_bytes"):
                    sentry += f", skipped {early['skipped_bytes'] / 1e6:.1f} MB"
                notes[phase] = (f"  at the end of the flood: the watcher {lag / 1e6:.1f} MB behind the log; "
                                f"the sentry {sentry}")
                stop_flood.set()
                flooder.join(10)
            results[phase] = times
        for phase, times in results.items():
            done = [t for t in times if t != float("inf")]
            label = f"{phase} ({args.flood_rate} lines/s flood)" if phase == "flood" else phase
            print(f"time to ban, {label}: "
                  f"{len(done)}/{len(times)} banned within 10 s; p50 {_pct(done, 0.5) * 1000:.0f} ms, "
                  f"p99 {_pct(done, 0.99) * 1000:.0f} ms, max {max(done) * 1000:.0f} ms "
                  f"(batch_delay_ms = {args.batch_delay_ms}, early bans {'off' if args.no_early else 'on'}); "
                  f"the phase's first ban {first[phase] * 1000:.0f} ms")
            print(f"  per trial, ms: {' '.join(f'{t * 1000:.0f}' for t in times)}")
            if phase in notes:
                print(notes[phase])
    finally:
        if watcher is not None:
            watcher.terminate()
            watcher.wait(30)
        if monitor is not None:
            monitor.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
