"""The incident book's cost on a botnet: N alerts from N addresses of one rule family, each naming the same
usernames, applied in batches as the watcher would; prints the time and the incidents (one campaign).

    .venv/bin/python benchmarks/incident_book.py [--alerts 20000] [--batch 200]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from fraudwatch.detect.decide import Alert
    from fraudwatch.detect.incidents import IncidentBook
    from fraudwatch.detect.ruleset import load_rules

    p = argparse.ArgumentParser()
    p.add_argument("--alerts", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=200)
    args = p.parse_args()
    rules = {k: r.common for k, r in load_rules([]).rules.items()}
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    base = int(ipaddress.ip_address("2001:db8:bad::1"))
    alerts = []
    for i in range(args.alerts):
        ip = str(ipaddress.ip_address(base + (i << 64)))
        t = t0 + dt.timedelta(seconds=i * 0.1)
        alerts.append(Alert(i + 1, "credential-stuffing-ip", "warning", "ip", ip, t, t + dt.timedelta(seconds=30),
                            t, 5, 5.0, "alert", False, False, "",
                            {"username": [str(1000 + i % 50), "admin"],
                             "links": {"ips": [ip], "accounts": ["admin"]}}))
    book = IncidentBook(rules)
    start = time.perf_counter()
    for k in range(0, len(alerts), args.batch):
        book.apply(alerts[k:k + args.batch])
    took = time.perf_counter() - start
    print(f"{len(alerts):,} alerts in batches of {args.batch}: {took:.2f} s "
          f"({took / len(alerts) * 1e6:.0f} µs an alert), {len(book.incidents())} incident(s)")


if __name__ == "__main__":
    main()
