"""Peak memory of ingesting the CSV bombs of issue 22: a `.csv.gz` holding one 400 MB line after its header, and
one whose header line is 400 MB.

    .venv/bin/python benchmarks/csv_bombs.py [--mb 400] [--keep DIR]

Builds both bombs in a temporary folder (gzip level 1: a few MB on disk each), then ingests each with
`fraudwatch ingest --format vos3000-cdr` in a fresh process of its own and prints that process's peak RSS
(`ru_maxrss` of the child), its exit code and its summary line. The over-long line must be kept in `rejects` and
the rows around it stored; the long header must be a clear error; neither process may go past 400 MB.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = b"flowno,starttime,stoptime,calleee164,callerip,fee,customeraccount\n"
LIMIT_MB = 400


def _row(i: int) -> bytes:
    return f"{i},{1763607600000 + i * 1000},{1763607662000 + i * 1000},0044,198.51.100.7,0.5,10001\n".encode()


def build(folder: Path, mb: int) -> tuple[Path, Path]:
    block = b"9" * (1 << 20)
    line = folder / "e_cdr_long_line.csv.gz"
    if not line.exists():
        with gzip.open(line, "wb", compresslevel=1) as f:
            f.write(HEADER + _row(1))
            for _ in range(mb):
                f.write(block)
            f.write(b"\n" + _row(2))
    header = folder / "e_cdr_long_header.csv.gz"
    if not header.exists():
        with gzip.open(header, "wb", compresslevel=1) as f:
            f.write(HEADER.rstrip(b"\n"))
            cols = b",x" * (1 << 19)
            for _ in range(mb):
                f.write(cols)
            f.write(b"\n" + _row(1))
    return line, header


def ingest(path: Path, folder: Path) -> tuple[int, float, str, float]:
    """Exit code, peak RSS in MB, the JSON summary (or stderr), seconds: one fresh process per bomb."""
    db = folder / f"{path.stem}.duckdb"
    argv = [sys.executable, "-m", "fraudwatch", "--db", str(db), "ingest", "--format", "vos3000-cdr", "--json",
            str(path)]
    t0 = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:  # ru_maxrss of children is the largest so far: a smaller one does not show
        raise SystemExit("run the bombs largest first, or one per process (--only)")
    out = proc.stdout.strip() or proc.stderr.strip()
    return proc.returncode, peak / 1024, out, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=400, help="size of the long line / header in MB")
    ap.add_argument("--keep", type=Path, help="folder for the bombs (reused)")
    ap.add_argument("--only", choices=["line", "header"], help="one bomb (each in a run of its own)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        line, header = build(folder, args.mb)
        if args.only is None:  # each in a benchmark process of its own: RUSAGE_CHILDREN keeps the largest
            failed = 0
            for which in ("line", "header"):
                got = subprocess.run([sys.executable, __file__, "--mb", str(args.mb), "--keep", str(folder),
                                      "--only", which], check=False, timeout=900)
                failed |= got.returncode
            raise SystemExit(failed)
        path = line if args.only == "line" else header
        code, peak, out, seconds = ingest(path, folder)
        try:
            summary = json.loads(out)["files"][0]
            said = {k: summary[k] for k in ("lines", "parsed", "rejected", "reject_reasons", "error")}
        except (ValueError, KeyError, IndexError):
            said = out[:300]
        ok = peak < LIMIT_MB
        print(f"{path.name} ({path.stat().st_size / 1e6:.1f} MB on disk, {args.mb} MB {args.only}): exit {code}, "
              f"peak RSS {peak:.0f} MB ({'under' if ok else 'OVER'} {LIMIT_MB} MB), {seconds:.1f}s: {said}")
        raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
