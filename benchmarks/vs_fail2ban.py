"""fraudwatch against fail2ban-regex: the same Asterisk log through both, side by side in one run (issue 21).

    .venv/bin/python benchmarks/vs_fail2ban.py [--lines 400000] [--share 0.10] [--seed 1] [--repeat N]
                                                [--filter /etc/fail2ban/filter.d/asterisk.conf] [--keep DIR]

The log is written first (not timed) by fraudwatch.sim.asterisk: `--lines` lines of an Asterisk `full` log, a
`--share` of them security failures both tools know (chan_sip "Registration from ... failed", PJSIP "Request ...
failed", res_security_log InvalidPassword / ChallengeResponseFailed / InvalidAccountID, calls to an unknown
extension), the rest ordinary traffic. Then, for `--repeat` rounds, alternately:

  (a) `fraudwatch --db STORE ingest --format asterisk --json LOG` into a fresh store;
  (b) `fail2ban-regex LOG FILTER` with Debian's stock asterisk filter (package fail2ban; `make bench-debs`).

Each is timed as a subprocess from its start to its exit (perf_counter), with its peak RSS and CPU time from its
own rusage (os.wait4). Printed per run and as medians: seconds, lines/s, peak RSS, CPU seconds, and the ratio
fail2ban-regex / fraudwatch. Each tool's count of failure lines is printed beside the writer's: fail2ban-regex's
"matched"; fraudwatch's rows in sip_events whose event is auth_failure, invalid_user or acl_reject, plus the calls
to an unknown extension (kept as `request` rows of pattern `unknown-extension`, which fail2ban's filter counts as
failures), read with `fraudwatch --db STORE sql --json` after the timed run.

Exits 2 when fail2ban-regex or the filter is missing (nothing is installed from here). Every child is killed after
`--timeout` seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAUDWATCH = [sys.executable, "-m", "fraudwatch"]
FILTER = Path("/etc/fail2ban/filter.d/asterisk.conf")
TARGET = 12.0  # issue 21: fraudwatch at least 12x faster than fail2ban-regex
MAX_LINES = 20_000_000
FAILURES_SQL = ("SELECT count(*) FILTER (WHERE event IN ('auth_failure', 'invalid_user', 'acl_reject')) AS failures,"
                " count(*) FILTER (WHERE pattern = 'unknown-extension') AS unknown_extension,"
                " count(*) AS stored FROM sip_events")
F2B_LINES = re.compile(r"^Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", re.MULTILINE)


@dataclass(frozen=True)
class Run:
    seconds: float
    rss: int  # bytes
    cpu: float  # user + system seconds
    found: int  # failure lines the tool reported
    stdout: str


def timed(argv: list[str], timeout: float) -> Run:
    """Run argv to its exit: wall time from start to exit, peak RSS and CPU time from its rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS and CPU
        finally:
            killer.cancel()
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        why = f"killed after {timeout:.0f} s" if proc.returncode == -9 else f"exit status {proc.returncode}"
        sys.exit(f"{argv[0]} ... failed ({why}): {stderr.strip()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, 0, stdout)


def run_fraudwatch(log: Path, db: Path, timeout: float) -> tuple[Run, dict[str, int]]:
    for leftover in (db, db.with_name(db.name + ".wal")):
        leftover.unlink(missing_ok=True)
    run = timed([*FRAUDWATCH, "--db", str(db), "ingest", "--format", "asterisk", "--json", str(log)], timeout)
    summary = json.loads(run.stdout)["files"][0]
    if summary.get("error"):
        sys.exit(f"fraudwatch ingest: {summary['error']}")
    query = subprocess.run([*FRAUDWATCH, "--db", str(db), "sql", "--json", FAILURES_SQL], cwd=ROOT, check=True,
                           capture_output=True, text=True, timeout=timeout)
    counts = {k: int(v) for k, v in json.loads(query.stdout)[0].items()}
    counts.update(lines=int(summary["lines"]), parsed=int(summary["parsed"]), ignored=int(summary["ignored"]),
                  rejected=int(summary["rejected"]))
    found = counts["failures"] + counts["unknown_extension"]
    return Run(run.seconds, run.rss, run.cpu, found, ""), counts


def run_fail2ban(f2b: str, log: Path, filt: Path, timeout: float) -> tuple[Run, dict[str, int]]:
    run = timed([f2b, str(log), str(filt)], timeout)
    m = F2B_LINES.search(run.stdout)
    if m is None:
        sys.exit(f"fail2ban-regex: no 'Lines:' summary in its output:\n{run.stdout[-2000:]}")
    counts = dict(zip(("lines", "ignored", "matched", "missed"), map(int, m.groups()), strict=True))
    return Run(run.seconds, run.rss, run.cpu, counts["matched"], ""), counts


def version(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        return f"unknown ({exc})"
    return (done.stdout or done.stderr).strip().splitlines()[0] if (done.stdout or done.stderr).strip() else "?"


def line(name: str, run: Run, lines: int) -> str:
    return (f"{name:26s} {run.seconds:7.2f} s = {lines / run.seconds:>9,.0f} lines/s; peak RSS "
            f"{run.rss / 2**20:5,.0f} MiB; CPU {run.cpu:6.2f} s; failures found {run.found:,}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=400_000)
    ap.add_argument("--share", type=float, default=0.10, help="share of security failure lines (default 0.10)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1, help="rounds of (fraudwatch, fail2ban-regex); medians")
    ap.add_argument("--filter", type=Path, default=FILTER, help=f"fail2ban filter (default {FILTER})")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds before a child is killed (default 900)")
    ap.add_argument("--keep", type=Path, help="write the log and the store here instead of a temp folder")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    if not 1 <= args.lines <= MAX_LINES:
        ap.error(f"--lines must be between 1 and {MAX_LINES:,}")
    if not 0.0 <= args.share <= 1.0:
        ap.error("--share must be between 0 and 1")

    f2b = shutil.which("fail2ban-regex")
    if f2b is None or not args.filter.is_file():
        missing = "fail2ban-regex is not on PATH" if f2b is None else f"{args.filter} does not exist"
        print(f"vs_fail2ban: {missing}; install Debian's fail2ban (`make bench-debs` as root)", file=sys.stderr)
        sys.exit(2)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        log, db = work / "asterisk-full.log", work / "vs_fail2ban.duckdb"
        # Written by a child, as ingest_bench.py does: this process stays small, so nothing it grew to is counted
        # in a tool's peak RSS.
        t0 = time.perf_counter()
        made = subprocess.run([sys.executable, __file__, "--write-input", str(log), str(args.lines), str(args.seed),
                               repr(args.share)], check=True, capture_output=True, text=True, cwd=ROOT)
        kinds: dict[str, int] = json.loads(made.stdout)
        written = sum(n for k, n in kinds.items() if k.startswith("failure:"))
        lines = args.lines
        print(f"input: {lines:,} Asterisk lines ({log.stat().st_size / 1e6:,.0f} MB, seed {args.seed}, generated in "
              f"{time.perf_counter() - t0:.1f} s), {written:,} of them failures ({100 * written / lines:.1f}%)")
        print(f"machine: {os.cpu_count()} CPUs; fraudwatch: {version([*FRAUDWATCH, '--version'])} on python "
              f"{sys.version.split()[0]}; {version([f2b, '--version'])} ({args.filter})")

        fw: list[Run] = []
        fb: list[Run] = []
        fw_counts: dict[str, int] = {}
        fb_counts: dict[str, int] = {}
        for r in range(args.repeat):
            tag = f" ({r + 1}/{args.repeat})" if args.repeat > 1 else ""
            run, fw_counts = run_fraudwatch(log, db, args.timeout)
            fw.append(run)
            print(line(f"fraudwatch ingest{tag}", run, lines), flush=True)
            run, fb_counts = run_fail2ban(f2b, log, args.filter, args.timeout)
            fb.append(run)
            print(line(f"fail2ban-regex{tag}", run, lines), flush=True)
            print(f"{'':26s} fail2ban-regex / fraudwatch = {fb[-1].seconds / fw[-1].seconds:.1f}x", flush=True)

        med_fw = statistics.median(r.seconds for r in fw)
        med_fb = statistics.median(r.seconds for r in fb)
        which = f"median of {args.repeat}" if args.repeat > 1 else "one run"
        print(f"\n{which}:")
        for name, runs, med in (("fraudwatch ingest", fw, med_fw), ("fail2ban-regex", fb, med_fb)):
            print(f"{name:26s} {med:7.2f} s = {lines / med:>9,.0f} lines/s; peak RSS "
                  f"{statistics.median(r.rss for r in runs) / 2**20:5,.0f} MiB; CPU "
                  f"{statistics.median(r.cpu for r in runs):6.2f} s")
        ratio = med_fb / med_fw
        ratios = sorted(b.seconds / a.seconds for a, b in zip(fw, fb, strict=True))
        rounds = f" (of the medians; per round {', '.join(f'{x:.1f}' for x in ratios)})" if args.repeat > 1 else ""
        print(f"{'ratio':26s} fail2ban-regex / fraudwatch = {ratio:.1f}x{rounds}; issue 21's target {TARGET:.0f}x: "
              f"{'met' if ratio >= TARGET else 'NOT met'}")

        fw_found, fb_found = fw[-1].found, fb[-1].found
        print(f"\nfailure lines: written {written:,}; fail2ban-regex matched {fb_found:,} "
              f"(of {fb_counts['lines']:,} lines, {fb_counts['missed']:,} missed); fraudwatch stored {fw_found:,} = "
              f"{fw_counts['failures']:,} auth_failure/invalid_user/acl_reject + {fw_counts['unknown_extension']:,} "
              f"calls to an unknown extension (of {fw_counts['stored']:,} rows: it also keeps ChallengeSent and "
              f"SuccessfulAuth; {fw_counts['ignored']:,} lines ignored, {fw_counts['rejected']:,} rejected)")
        if fw_found == fb_found == written:
            print("both tools found as many failure lines as the writer wrote")
        else:
            print(f"the counts differ: fraudwatch {fw_found - written:+,} and fail2ban-regex {fb_found - written:+,} "
                  f"against the writer; by kind the writer wrote "
                  f"{', '.join(f'{k[8:]} {n:,}' for k, n in kinds.items() if k.startswith('failure:'))}")


def write_input(path: Path, lines: int, seed: int, share: float) -> None:
    """Write the log; print the writer's count of each kind as JSON, failures prefixed `failure:`."""
    from fraudwatch.sim.asterisk import FAILURE_KINDS, write_asterisk_log

    counts = write_asterisk_log(path, lines, seed=seed, failure_share=share)
    print(json.dumps({("failure:" if k in FAILURE_KINDS else "ordinary:") + k: n for k, n in counts.items()}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-input"]:
        write_input(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
