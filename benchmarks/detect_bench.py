"""Detection cost alone: replay a store through the shipped rules, with wall time, events/s, alerts and peak RSS,
and optionally the time spent in each rule.

    .venv/bin/python benchmarks/detect_bench.py [--lines 2000000] [--cdrs 1000000] [--keep DIR] [--per-rule]
    .venv/bin/python benchmarks/detect_bench.py --store STORE.duckdb [--per-rule] [--rows-per-step N]

Without --store it builds the same inputs as benchmarks/ingest_bench.py (the sipproxy flood and the e_cdr
CSV), ingests each into a store once (not timed; kept in --keep DIR and reused when present), then replays
each store in a child process, as `ingest --detect` does after its backfill. The replay's figures are what
detection adds to an ingest; compare them with ingest_bench's backfill figures taken in the same conditions.
The child's CPU time (user + system, start-up included) is printed too: on a machine shared with other work
it varies less than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def replay_store(store: Path, per_rule: bool, rows_per_step: int | None = None) -> dict[str, object]:
    """Replay `store` with the shipped rules (alerts not saved); the figures as a dict."""
    import duckdb

    from fraudwatch.detect.base import Context
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners import engine as engine_mod
    from fraudwatch.detect.runners.replay import STEP_ROWS, credit_context, replay
    from fraudwatch.rulesdir import shipped_rules_dir

    rules = list(load_rules().rules.values())
    spent: dict[str, float] = defaultdict(float)
    if per_rule:
        original = engine_mod.Engine.process

        def timed(self: engine_mod.Engine, source: str, events: object) -> list[object]:
            import polars as pl

            assert isinstance(events, pl.DataFrame)
            if not self.detectors.get(source):
                return []
            t0 = time.perf_counter()
            frame = self.enrich(source, events)
            spent[f"(enrich {source})"] += time.perf_counter() - t0
            out: list[object] = []
            for d in self.detectors[source]:
                t0 = time.perf_counter()
                out.extend(d.process(frame))
                spent[d.common.id] += time.perf_counter() - t0
            return out

        engine_mod.Engine.process = timed  # type: ignore[assignment,method-assign]
    con = duckdb.connect(str(store), read_only=True)
    credit, names = credit_context(con)
    t0 = time.perf_counter()
    result = replay(con, rules, Context(shipped_rules_dir() / "lists", credit, names),
                    rows_per_step=rows_per_step or STEP_ROWS)
    elapsed = time.perf_counter() - t0
    con.close()
    if per_rule:
        engine_mod.Engine.process = original  # type: ignore[method-assign]
    return {"seconds": elapsed, "events": sum(result.events.values()), "alerts": len(result.alerts),
            "per_rule": dict(sorted(spent.items(), key=lambda kv: -kv[1]))}


def run_child(store: Path, per_rule: bool, rows_per_step: int | None) -> tuple[dict[str, object], int, float]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        cmd = [sys.executable, __file__, "--child", str(store)] + (["--per-rule"] if per_rule else []) \
            + (["--rows-per-step", str(rows_per_step)] if rows_per_step else [])
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"replay failed: {err.read().decode(errors='replace').strip()}")
        return json.loads(out.read()), usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def build_stores(work: Path, lines: int, cdrs: int) -> list[Path]:
    from benchmarks.ingest_bench import run_ingest, write_cdrs
    from fraudwatch.sim.flood import write_sipproxy_flood

    work.mkdir(parents=True, exist_ok=True)
    out = []
    for name, fmt, write in (("sipproxy.log", "vos3000-sipproxy", lambda p: write_sipproxy_flood(p, lines, seed=1)),
                             ("e_cdr_bench.csv", "vos3000-cdr", lambda p: write_cdrs(p, cdrs))):
        db = work / f"{fmt}.duckdb"
        if not db.exists():
            src = work / name
            if not src.exists():
                write(src)
            run_ingest(db, src, fmt)
        out.append(db)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--cdrs", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, help="build (or reuse) the inputs and stores here")
    ap.add_argument("--store", type=Path, action="append", help="replay this store (repeatable); builds nothing")
    ap.add_argument("--per-rule", action="store_true", help="also print the time spent in each rule")
    ap.add_argument("--rows-per-step", type=int, help="replay step size in events (default: the replay's)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        import fraudwatch.detect.runners.replay  # noqa: F401  (frozen with the rest, as in `fraudwatch detect`)
        from fraudwatch import tuning

        with tuning.gc_for_batch():  # as `fraudwatch detect` and the scoring process of `ingest --detect` do
            print(json.dumps(replay_store(args.child, args.per_rule, args.rows_per_step)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        stores = args.store or build_stores(args.keep or Path(tmp), args.lines, args.cdrs)
        print(f"machine: {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
        for store in stores:
            figures, rss, cpu = run_child(store, args.per_rule, args.rows_per_step)
            seconds, events = float(str(figures["seconds"])), int(str(figures["events"]))
            print(f"replay {store.name:26s} {events:>10,} events in {seconds:6.2f} s = "
                  f"{events / seconds:>10,.0f} events/s; {figures['alerts']:,} alerts; "
                  f"peak RSS {rss / 2**20:,.0f} MiB; CPU {cpu:.1f} s (whole child)")
            per_rule = figures["per_rule"]
            assert isinstance(per_rule, dict)
            for rule, s in per_rule.items():
                print(f"    {rule:34s} {s:6.2f} s")


if __name__ == "__main__":
    main()
