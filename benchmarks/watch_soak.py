"""Soak: a steady flood into a running watcher — does it keep up, stay small, and how fresh is the store?

    .venv/bin/python benchmarks/watch_soak.py [--rate 20000] [--seconds 60] [--keep DIR]

A real `fraudwatch watch` process (shipped rules, live detection on) follows one sipproxy.log. This script
appends the simulator's REGISTER-flood lines to it at `--rate` lines/s for `--seconds` (in 10 ms ticks), and
every 250 ms notes the file size right after a tick and the time; the line is queryable once the watcher's
committed read position (in the same transaction as the rows) reaches that size — polled through the watcher's
control socket every `--poll-ms` (25 ms). Every second it samples the watcher's RSS and its own status (lag
bytes, lines/s).
At the end it checks the stored row count against the lines written and `fraudwatch status` against the store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudwatch.sim.flood import write_sipproxy_flood  # noqa: E402
from fraudwatch.store.db import open_read_only  # noqa: E402
from fraudwatch.watch.control import watcher_call  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--keep", type=Path, help="work in DIR and keep it")
    ap.add_argument("--watch-setting", metavar="KEY=VALUE", default=[], action="append",
                    type=lambda kv: tuple(kv.split("=", 1)),
                    help="a [watch] setting for the watcher (TOML value, e.g. memory_limit='\"256MB\"')")
    ap.add_argument("--poll-ms", type=float, default=25.0,
                    help="how often a pending probe asks the watcher for its read position (each ask is a query on "
                         "the watcher's own connection: asking every 5 ms cost it a tenth of its throughput)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="fw-soak-"))
    (work / "logs").mkdir(parents=True, exist_ok=True)
    pool_path = work / "pool.log"
    total = args.rate * args.seconds
    lines = pool_path.read_bytes().splitlines(keepends=True) if pool_path.exists() else []
    if len(lines) < total:
        write_sipproxy_flood(pool_path, total, seed=3)
        lines = pool_path.read_bytes().splitlines(keepends=True)
    lines = lines[:total]
    log = work / "logs" / "sipproxy.log"
    log.unlink(missing_ok=True)
    log.touch()
    store = work / "store.duckdb"
    for p in work.glob("store.duckdb*"):
        if p.is_file():
            p.unlink()
    (work / "fraudwatch.toml").write_text(
        '[store]\npath = "store.duckdb"\n[[sources]]\npath = "logs/sipproxy.log"\nformat = "vos3000-sipproxy"\n'
        "[watch]\nbatch_delay_ms = 50\n" + "".join(f"{k} = {v}\n" for k, v in args.watch_setting), encoding="utf-8")
    cmd = [sys.executable, "-m", "fraudwatch", "--config", str(work / "fraudwatch.toml"), "watch",
           "--log-level", os.environ.get("SOAK_LOG", "info")]
    proc = subprocess.Popen(cmd, stderr=(work / "watch.log").open("wb"), cwd=work)
    try:
        deadline = time.monotonic() + 60
        while watcher_call(store, "ping") is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"watcher did not start: {(work / 'watch.log').read_text()}")
            time.sleep(0.1)
        ps = psutil.Process(proc.pid)
        probes: list[tuple[int, float]] = []  # (file size after a tick, time written)
        latencies: list[float] = []
        samples: list[dict[str, Any]] = []
        stop = threading.Event()

        def position() -> int:
            got = watcher_call(store, "query", {"sql": "SELECT coalesce(max(byte_offset), 0) FROM positions "
                                                       "WHERE path = ?", "params": [str(log)]})
            return int(got["rows"][0][0]) if got and got.get("ok") else 0

        def poll_probes() -> None:
            while not stop.is_set() or probes:
                if probes:
                    size, written = probes[0]
                    if position() >= size:
                        latencies.append(time.monotonic() - written)
                        probes.pop(0)
                        continue
                time.sleep(args.poll_ms / 1000)
                if stop.is_set() and time.monotonic() > end_by:
                    break

        readers: list[tuple[float, float, float]] = []  # (open + count, open + top-10 group by, data age)

        def reader_check() -> None:
            t = time.monotonic()
            con = open_read_only(store)  # the segments and the snapshot: the watcher holds the store
            con.execute("SELECT count(*) FROM sip_events").fetchall()
            a = time.monotonic() - t
            con.close()
            t = time.monotonic()
            con = open_read_only(store)
            con.execute("SELECT src_ip, count(*) FROM sip_events GROUP BY 1 ORDER BY 2 DESC LIMIT 10").fetchall()
            b = time.monotonic() - t
            (events_as_of,) = con.execute("SELECT events_as_of FROM replica_info").fetchall()[0]
            con.close()
            readers.append((a, b, (dt.datetime.now(dt.UTC) - events_as_of).total_seconds()))

        def sample() -> None:
            while not stop.is_set():
                st = watcher_call(store, "status") or {}
                files = st.get("status", {}).get("files", [])
                samples.append({"t": time.monotonic() - t0, "rss": ps.memory_info().rss,
                                "lag": sum(f["lag_bytes"] for f in files),
                                "rate": sum(f["lines_per_s"] for f in files),
                                "publish": st.get("status", {}).get("publish_seconds")})
                if len(samples) % 5 == 0:
                    reader_check()
                time.sleep(1.0)

        end_by = float("inf")
        poller = threading.Thread(target=poll_probes, daemon=True)
        sampler = threading.Thread(target=sample, daemon=True)
        t0 = time.monotonic()
        poller.start()
        sampler.start()
        per_tick = args.rate // 100
        written = 0
        next_probe = t0
        with log.open("ab", buffering=0) as f:
            for tick in range(args.seconds * 100):
                chunk = b"".join(lines[written:written + per_tick])
                f.write(chunk)
                written += per_tick
                now = time.monotonic()
                if now >= next_probe:
                    probes.append((f.tell(), now))
                    next_probe += 0.25
                ahead = t0 + (tick + 1) / 100 - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        wrote_for = time.monotonic() - t0
        end_by = time.monotonic() + 60
        while probes and time.monotonic() < end_by:
            time.sleep(0.05)
        stop.set()
        poller.join(5)
        sampler.join(5)
        caught_up = time.monotonic() - t0 - wrote_for

        def final_status() -> dict[str, Any]:
            return (watcher_call(store, "status") or {}).get("status", {})

        status = final_status()  # its counters move after each read call: wait for the last one (bounded)
        while (status.get("files") or [{}])[0].get("lines") != written and time.monotonic() < end_by:
            time.sleep(0.2)
            status = final_status()
        stored = watcher_call(store, "query", {"sql": "SELECT count(*) FROM sip_events"}) or {}
        rejects = watcher_call(store, "query", {"sql": "SELECT count(*) FROM rejects"}) or {}
    finally:
        proc.terminate()
        proc.wait(30)
    f_stat = status.get("files", [{}])[0]
    first = [s for s in samples if s["t"] < 10]
    last = [s for s in samples if args.seconds - 10 <= s["t"] < args.seconds]
    rss = [s["rss"] for s in samples]
    print(f"soak: {written:,} lines in {wrote_for:.1f} s = {written / wrote_for:,.0f} lines/s written; "
          f"watcher caught up {caught_up:.1f} s after the writer stopped")
    print(f"  stored rows {stored.get('rows', [[None]])[0][0]:,}, rejects {rejects.get('rows', [[None]])[0][0]}, "
          f"status: lines {f_stat.get('lines'):,}, parsed {f_stat.get('parsed'):,}, ignored {f_stat.get('ignored')}, "
          f"lag {f_stat.get('lag_bytes')} B")
    print(f"  lag (bytes not yet read) mean over the first 10 s {statistics.mean(s['lag'] for s in first):,.0f}, "
          f"over the last 10 s {statistics.mean(s['lag'] for s in last):,.0f}, max {max(s['lag'] for s in samples):,}")
    print(f"  RSS: first 10 s max {max(s['rss'] for s in first) / 2**20:.0f} MiB, last 10 s max "
          f"{max(s['rss'] for s in last) / 2**20:.0f} MiB, peak {max(rss) / 2**20:.0f} MiB")
    print(f"  written -> queryable latency over {len(latencies)} probes: p50 {_pct(latencies, 0.5) * 1000:.0f} ms, "
          f"p99 {_pct(latencies, 0.99) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    pubs = [s["publish"] for s in samples if s.get("publish") is not None]
    if readers:
        print(f"  readers while it runs ({len(readers)} checks, reading the segments): open + count(*) median "
              f"{statistics.median(r[0] for r in readers) * 1000:.0f} ms, open + top-10 GROUP BY median "
              f"{statistics.median(r[1] for r in readers) * 1000:.0f} ms; age of the events they see, median "
              f"{statistics.median(r[2] for r in readers):.1f} s, max {max(r[2] for r in readers):.1f} s; "
              f"a snapshot of the small tables takes median "
              f"{statistics.median(pubs) * 1000 if pubs else float('nan'):.0f} ms")
    print(f"  status lines/s while flooding (median of 1 s samples): "
          f"{statistics.median(s['rate'] for s in samples if 5 < s['t'] < args.seconds):,.0f}")
    if not args.keep:
        for p in sorted(work.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        work.rmdir()
    else:
        print(f"  kept {work}")



if __name__ == "__main__":
    main()
