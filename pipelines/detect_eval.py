"""Backtest the shipped rules on simulated traffic: simulate, ingest, replay, score against labels.csv.

    python pipelines/detect_eval.py [--seed N] [--days N] [--accounts N] [--keep DIR] [--rules DIR ...]

Prints one row per labelled incident (detected, on which key, by which rule, the delay in event time and whether
it is within the bound: 10 s from the first event for SIP and kernel incidents, 60 s from the CDR's arrival for
call fraud), then the false alerts per simulated day by severity and rule, and any alert about a trusted
network. Exits 1 when an incident is missed or late, a trusted network would be banned, or normal traffic raises
more than one critical alert a day.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from fraudwatch.cli import main as fraudwatch_main
from fraudwatch.config import load_config
from fraudwatch.detect.base import Context
from fraudwatch.detect.decide import Alert
from fraudwatch.detect.evaluate import Evaluation, cdr_arrivals, evaluate, evidence_addresses, load_labels
from fraudwatch.detect.ruleset import load_rules
from fraudwatch.detect.runners.replay import credit_context, replay
from fraudwatch.rulesdir import shipped_rules_dir
from fraudwatch.sim import simulate


@dataclass
class Backtest:
    evaluation: Evaluation
    alerts: list[Alert]
    seconds: dict[str, float]  # wall time per stage


def build(folder: Path, days: int, accounts: int, seed: int) -> Path:
    """Simulate into `folder` and ingest it into the store its fraudwatch.toml names; returns that toml."""
    simulate(folder, days=days, accounts=accounts, seed=seed)
    return ingest(folder / "fraudwatch.toml")


def ingest(config: Path) -> Path:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = fraudwatch_main(["--config", str(config), "ingest", "--json"])
    if code != 0:
        raise RuntimeError(f"ingest of {config} failed: {err.getvalue().strip()}")
    return config


def backtest(config: Path, days: float, rule_dirs: list[Path] | None = None) -> Backtest:
    """Replay the rules (shipped, plus `rule_dirs`) over the store of `config` and score them against the
    labels.csv next to it."""
    cfg = load_config(config)
    rules = list(load_rules(rule_dirs or []).rules.values())
    con = duckdb.connect(str(cfg.store_path), read_only=True)
    try:
        credit, names = credit_context(con)
        t0 = time.perf_counter()
        result = replay(con, rules, Context(shipped_rules_dir() / "lists", credit, names), cfg.trusted_networks,
                        cfg.trusted_accounts)
        t1 = time.perf_counter()
        incidents = load_labels(config.parent / "labels.csv")
        sources = {r.common.id: r.common.source for r in rules}
        evaluation = evaluate(result.alerts, incidents, days, cfg.trusted_networks, cdr_arrivals(con, incidents),
                              evidence_addresses(con, result.alerts, sources))
    finally:
        con.close()
    return Backtest(evaluation, result.alerts, {"replay": t1 - t0})


def _fmt_delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if abs(seconds) < 120 else f"{seconds / 60:.1f} min"


def report(bt: Backtest, console: Console) -> None:
    ev = bt.evaluation
    table = Table(title="incidents", title_justify="left")
    for col in ("incident", "kind", "detected", "key", "rule", "severity", "delay", "bound", "ok", "also by"):
        table.add_column(col, no_wrap=col not in ("also by",))
    for r in ev.results:
        a = r.alert
        table.add_row(r.incident.id, r.incident.kind, "yes" if r.detected else "NO", a.key if a else "-",
                      a.rule if a else "-", r.severity or "-", _fmt_delay(r.delay), f"{r.incident.bound:.0f} s",
                      "ok" if r.in_time else "LATE" if r.detected else "MISSED", ", ".join(r.rules[1:]))
    console.print(table)
    console.print(f"{sum(r.in_time for r in ev.results)}/{len(ev.results)} incidents detected in time; "
                  f"{ev.alerts} alerts in {ev.days:g} simulated days")
    false = Table(title="false alerts (no incident explains them)", title_justify="left")
    for col in ("rule", "severity", "alerts", "per day"):
        false.add_column(col)
    for (rule, sev), n in sorted(ev.false_by_rule.items()):
        false.add_row(rule, sev, str(n), f"{n / ev.days:.2f}")
    false.add_row("all", "critical", str(sum(a.severity == "critical" for a in ev.false_alerts)),
                  f"{ev.false_per_day('critical'):.2f}")
    false.add_row("all", "warning", str(sum(a.severity == "warning" for a in ev.false_alerts)),
                  f"{ev.false_per_day('warning'):.2f}")
    console.print(false)
    console.print(f"alerts about trusted networks: {len(ev.trusted_alerts)}; bans proposed for them: "
                  f"{len(ev.trusted_bans)}")
    for a in ev.trusted_alerts:
        console.print(f"  trusted: {a.rule} {a.severity} {a.key} {a.detected_at:%Y-%m-%d %H:%M:%S} action={a.action}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--days", type=int, default=2)
    p.add_argument("--accounts", type=int, default=50)
    p.add_argument("--keep", type=Path, metavar="DIR", help="simulate into DIR and keep it (default: a temp dir)")
    p.add_argument("--rules", type=Path, action="append", metavar="DIR", help="extra rules folder (repeatable)")
    p.add_argument("--alerts", action="store_true", help="also list every false alert")
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 180)
    with tempfile.TemporaryDirectory(prefix="fraudwatch-eval-") as tmp:
        folder = args.keep or Path(tmp) / "sim"
        t0 = time.perf_counter()
        config = build(folder, args.days, args.accounts, args.seed)
        built = time.perf_counter() - t0
        bt = backtest(config, args.days, args.rules)
    console.print(f"seed {args.seed}, {args.days} days, {args.accounts} accounts: simulate+ingest {built:.1f} s, "
                  f"replay {bt.seconds['replay']:.1f} s")
    report(bt, console)
    if args.alerts:
        for a in bt.evaluation.false_alerts:
            console.print(f"  false: {a.rule} {a.severity} {a.key_type}={a.key} {a.first_seen:%m-%d %H:%M:%S} → "
                          f"{a.last_seen:%H:%M:%S} n={a.count} value={a.value:g}")
    return 0 if bt.evaluation.ok else 1


if __name__ == "__main__":
    sys.exit(main())
