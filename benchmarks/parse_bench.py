"""The parse stage alone: `LineParser.parse` on backfill-sized chunks of the flood's sipproxy.log.

    .venv/bin/python benchmarks/parse_bench.py [LOG] [--chunk-bytes 33554432] [--chunks 3] [--repeat 5]

LOG defaults to /tmp/pbench/sipproxy.log (`benchmarks/ingest_bench.py --keep /tmp/pbench` writes it). The first
`--chunks` chunks of `--chunk-bytes` (the ingest's default chunk) are read with the ingest's own reader and parsed
`--repeat` times on one connection; printed per chunk: process CPU seconds and wall seconds, the median of the
runs, and the lines/s that makes. Every chunk's `conv` must come out the same in every run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from fraudwatch.formats.engine import LineParser, prepare_connection
from fraudwatch.formats.registry import load_formats
from fraudwatch.formats.spec import LineFormat
from fraudwatch.sources.lines import to_batch
from fraudwatch.sources.reader import read_chunks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path, nargs="?", default=Path("/tmp/pbench/sipproxy.log"))
    ap.add_argument("--chunk-bytes", type=int, default=32 << 20)
    ap.add_argument("--chunks", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    fmt = load_formats()["vos3000-sipproxy"]
    assert isinstance(fmt, LineFormat)
    batches = []
    for chunk in read_chunks(args.log, 0, 1, args.chunk_bytes, 64 << 10, 4096):
        batches.append(to_batch(chunk).table)
        if len(batches) == args.chunks:
            break
    con = duckdb.connect()
    prepare_connection(con)
    parser = LineParser(fmt, "UTC", args.log.stat().st_mtime)
    parser.parse(con, batches[0].slice(0, 1000))  # warm: imports, first compile
    cpu: list[list[float]] = [[] for _ in batches]
    wall: list[list[float]] = [[] for _ in batches]
    first: list[pa.Table] = []
    for run in range(args.repeat):
        for i, batch in enumerate(batches):
            c0, t0 = time.process_time(), time.perf_counter()
            conv = parser.parse(con, batch).conv
            cpu[i].append(time.process_time() - c0)
            wall[i].append(time.perf_counter() - t0)
            if run == 0:
                first.append(conv)
            elif not conv.equals(first[i]):
                raise SystemExit(f"chunk {i}: a different conv in run {run + 1}")
    total_cpu = total_wall = 0.0
    for i, batch in enumerate(batches):
        n = batch.num_rows
        c, w = statistics.median(cpu[i]), statistics.median(wall[i])
        total_cpu, total_wall = total_cpu + c, total_wall + w
        print(f"chunk {i}: {n:,} lines  CPU {c:6.3f} s  wall {w:6.3f} s  = {n / w:>10,.0f} lines/s "
              f"(median of {args.repeat})")
    n = sum(b.num_rows for b in batches)
    print(f"all:     {n:,} lines  CPU {total_cpu:6.3f} s  wall {total_wall:6.3f} s  = {n / total_wall:>10,.0f} lines/s")


if __name__ == "__main__":
    main()
