"""Fixed cost of detection per call on the small batches the live watcher feeds it: `Engine.process` +
`AlertBook.apply` on sip_events batches of 15, 200 and 3000 rows, median and p90 ms per call (after warm-up),
and the polars lazy collects per call.

    .venv/bin/python benchmarks/detect_small.py [--lines 60000] [--sizes 15,200,3000] [--calls 200] [--keep DIR]
        [--frames]

It writes a sipproxy flood (fraudwatch.sim.flood), ingests it once into a store (not timed; kept in --keep DIR
and reused when present), reads the rows in the watcher's order (ts, id) and feeds them to a fresh
engine and alert book (as LiveDetection holds) in consecutive batches of each size, timing the rules alone.
`--frames` uses the replay's frame detectors instead of the watcher's incremental ones, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_store(folder: Path, lines: int) -> Path:
    from fraudwatch.formats.registry import load_formats
    from fraudwatch.ingest import Ingestor
    from fraudwatch.sim.flood import write_sipproxy_flood
    from fraudwatch.store.db import Store

    db = folder / f"small-{lines}.duckdb"
    if db.exists():
        return db
    log = folder / f"sipproxy-{lines}.log"
    write_sipproxy_flood(log, lines, seed=3)
    store = Store(db)
    Ingestor(store, load_formats()).ingest(log.absolute(), "vos3000-sipproxy")
    store.close()
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=60000)
    ap.add_argument("--sizes", default="15,200,3000")
    ap.add_argument("--calls", type=int, default=200, help="timed calls per size (fewer for big batches)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--keep", type=Path, default=None, help="folder for the flood and its store (reused)")
    ap.add_argument("--frames", action="store_true", help="the replay's frame detectors, not the watcher's")
    args = ap.parse_args()

    import duckdb
    import polars as pl

    from fraudwatch.detect.base import Context
    from fraudwatch.detect.decide import AlertBook
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.engine import Engine
    from fraudwatch.netaddr import parse_networks
    from fraudwatch.rulesdir import shipped_rules_dir

    folder = args.keep or Path(tempfile.mkdtemp(prefix="fw-detect-small-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = build_store(folder, args.lines)
    con = duckdb.connect(str(db), read_only=True)
    rows = con.sql("SELECT * FROM sip_events ORDER BY ts, id").pl()
    con.close()
    rules = list(load_rules().rules.values())
    ctx = Context(shipped_rules_dir() / "lists")
    trusted = parse_networks(["203.0.113.0/25"])

    # eager DataFrame operations run as lazy plans collected by `_collect_eager` (polars 1.x/2.x); lazy ones by
    # `collect`: count both (a method missing in another polars version is simply not counted)
    collects = [0]
    originals = {name: getattr(pl.LazyFrame, name) for name in ("collect", "_collect_eager")
                 if hasattr(pl.LazyFrame, name)}

    def counting(method: Any) -> Any:
        def wrapper(self: pl.LazyFrame, *a: Any, **k: Any) -> Any:
            collects[0] += 1
            return method(self, *a, **k)
        return wrapper

    for name, method in originals.items():
        setattr(pl.LazyFrame, name, counting(method))
    print(f"{rows.height} sip_events rows, {len(rules)} rules")
    print(f"{'rows/call':>9} {'calls':>6} {'median ms':>10} {'p90 ms':>8} {'engine ms':>10} {'book ms':>8} "
          f"{'collects':>9} {'alerts':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        calls = min(args.calls, rows.height // size - args.warmup)
        engine = Engine(rules, ctx, trusted, stream=not args.frames)  # what LiveDetection holds
        book = AlertBook({r.common.id: r for r in rules}, trusted)
        totals, engines, books, counts = [], [], [], []
        alerts: set[int] = set()
        for i in range(calls + args.warmup):
            batch = rows.slice(i * size, size)
            before = collects[0]
            t0 = time.perf_counter()
            matches = engine.process("sip_events", batch)
            t1 = time.perf_counter()
            changed = book.apply(matches)
            t2 = time.perf_counter()
            alerts.update(a.id for a in changed)
            if i >= args.warmup:
                totals.append((t2 - t0) * 1000)
                engines.append((t1 - t0) * 1000)
                books.append((t2 - t1) * 1000)
                counts.append(collects[0] - before)
        p90 = statistics.quantiles(totals, n=10)[-1] if len(totals) >= 2 else totals[0]
        print(f"{size:>9} {calls:>6} {statistics.median(totals):>10.1f} {p90:>8.1f} {statistics.median(engines):>10.1f}"
              f" {statistics.median(books):>8.2f} {statistics.median(counts):>9.0f} {len(alerts):>7}")
    for name, method in originals.items():
        setattr(pl.LazyFrame, name, method)


if __name__ == "__main__":
    main()
