"""What the early-ban sentry costs per log line: its tail (read, capture, type) and its gates, at a tick's size.

    .venv/bin/python benchmarks/sentry_cost.py [--lines-per-tick 400,1000,5000] [--ticks 60] [--keep DIR]

Writes the simulator's REGISTER-flood lines (fraudwatch.sim.flood, the ban-latency benchmark's flood) and
appends them to a log file `--lines-per-tick` at a time; after each append the sentry's own `LogTail.poll` and
`EarlyBans.process` run on what was added, as in `fraudwatch.watch.sentry`, with the shipped rules. Prints, per
size, the microseconds per line and milliseconds per tick of each part, after 5 warm-up ticks. One process, one
thread: the figures are the sentry's own cost, without the watcher competing for the CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fraudwatch.config import IngestConfig, SourceConfig  # noqa: E402
from fraudwatch.detect.base import Context  # noqa: E402
from fraudwatch.detect.ruleset import load_rules  # noqa: E402
from fraudwatch.detect.runners.early import LINE_SOURCES, EarlyBans  # noqa: E402
from fraudwatch.formats.registry import load_formats  # noqa: E402
from fraudwatch.rulesdir import shipped_rules_dir  # noqa: E402
from fraudwatch.sim.flood import write_sipproxy_flood  # noqa: E402
from fraudwatch.watch.tail import LogTail  # noqa: E402

WARMUP = 5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines-per-tick", default="400,1000,5000")
    ap.add_argument("--ticks", type=int, default=60)
    ap.add_argument("--keep", type=Path, help="folder for the flood pool (reused)")
    args = ap.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="fw-sentry-cost-"))
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.lines_per_tick.split(",")]
    pool = folder / "pool.log"
    need = max(sizes) * (args.ticks + WARMUP)
    if not pool.exists() or pool.stat().st_size < need * 100:
        write_sipproxy_flood(pool, need, seed=5)
    lines = pool.read_bytes().splitlines(keepends=True)
    rules = list(load_rules().rules.values())
    formats = load_formats()
    print(f"{'lines/tick':>10} {'tail us/line':>13} {'gates us/line':>14} {'tail ms/tick':>13} {'gates ms/tick':>14}")
    for size in sizes:
        early = EarlyBans(rules, Context(shipped_rules_dir() / "lists"))
        log = folder / f"tail-{size}.log"
        log.write_bytes(b"")
        tail = LogTail([SourceConfig(log, "vos3000-sipproxy")], formats, IngestConfig(),
                       {s: early.columns(s) for s in LINE_SOURCES if early.gates[s]})
        tail.poll()
        tail_s = gates_s = 0.0
        with log.open("ab") as f:
            for i in range(args.ticks + WARMUP):
                f.write(b"".join(lines[i * size:(i + 1) * size]))
                f.flush()
                t0 = time.perf_counter()
                frames = tail.poll()
                t1 = time.perf_counter()
                for table, frame in frames.items():
                    early.process(table, frame)
                t2 = time.perf_counter()
                if i >= WARMUP:
                    tail_s += t1 - t0
                    gates_s += t2 - t1
        n = args.ticks * size
        print(f"{size:>10} {tail_s / n * 1e6:>13.1f} {gates_s / n * 1e6:>14.1f} {tail_s / args.ticks * 1000:>13.1f} "
              f"{gates_s / args.ticks * 1000:>14.1f}")
        log.unlink()


if __name__ == "__main__":
    main()
