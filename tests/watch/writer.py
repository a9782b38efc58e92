"""A log writer process for the watcher tests: appends unique lines at a steady rate and rotates the file the
way logrotate does, by rename (create) or by copytruncate. Bounded by its count."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.watch.harness import sip_line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--rate", type=float, default=2000.0, help="lines per second")
    ap.add_argument("--rotate", choices=["none", "rename", "copytruncate"], default="none")
    ap.add_argument("--rotate-every", type=int, default=0, help="lines between rotations")
    ap.add_argument("--tag", default="t")
    args = ap.parse_args()
    path: Path = args.path
    f = path.open("a", encoding="utf-8")
    t0 = time.monotonic()
    generation = 0
    for i in range(args.start, args.start + args.count):
        f.write(sip_line(i, args.tag))
        done = i - args.start + 1
        if done % 50 == 0:
            f.flush()
            ahead = done / args.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        if args.rotate != "none" and args.rotate_every and done % args.rotate_every == 0 and done < args.count:
            f.flush()
            generation += 1
            rotated = path.with_name(f"{path.name}.{generation}")
            if args.rotate == "rename":
                f.close()
                os.rename(path, rotated)
                f = path.open("a", encoding="utf-8")
            else:  # copytruncate: copy, then truncate in place (the writer keeps its descriptor, O_APPEND)
                shutil.copyfile(path, rotated)
                os.truncate(path, 0)
    f.close()


if __name__ == "__main__":
    main()
