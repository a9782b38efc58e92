"""CLI commands of the detection stage: `detect` (replay), `alerts list|show`, `lint`."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from fraudwatch.commands import _cell, _config, _out
from fraudwatch.config import Config
from fraudwatch.errors import StoreError, UsageError
from fraudwatch.jsontext import dumps
from fraudwatch.store.schema import ALERTS

if TYPE_CHECKING:
    import duckdb

    from fraudwatch.detect.runners.alongside import Alongside
    from fraudwatch.detect.runners.replay import ReplayResult
    from fraudwatch.detect.runners.scorer import Scorer

_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}
# JSON alert objects: the alerts table's columns, less the long or internal ones (evidence is added parsed)
ALERT_COLUMNS = tuple(n for n in ALERTS.names if n not in ("description", "evidence", "updates", "updated_at"))


def parse_time(text: str | None, now: dt.datetime | None = None) -> dt.datetime | None:
    """ISO date or time (UTC when no zone is given), or an age like 30m, 24h, 7d (before now)."""
    if text is None:
        return None
    now = now or dt.datetime.now(dt.UTC)
    m = _RELATIVE.match(text.strip())
    if m:
        return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"'{text}' is not a time (use 2026-11-20, 2026-11-20T03:00, or 24h / 7d ago)") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def run_detect(cfg: Config, since: dt.datetime | None, until: dt.datetime | None, extra_rules: list[Path],
               dry_run: bool) -> ReplayResult:
    """Replay the store through the rules (shipped, config [rules] dirs, then `extra_rules`); save unless dry."""
    from fraudwatch.batchgc import for_batch
    from fraudwatch.detect.base import Context
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.replay import credit_context, next_alert_id, replay, save_alerts
    from fraudwatch.rulesdir import shipped_rules_dir
    from fraudwatch.store.db import Store, open_read_only

    for_batch()
    rules = list(load_rules([*cfg.rule_dirs, *extra_rules]).rules.values())
    con = open_read_only(cfg.store_path) if dry_run else Store(cfg.store_path).con
    try:
        credit, names = credit_context(con)
        ctx = Context(shipped_rules_dir() / "lists", credit, names)
        result = replay(con, rules, ctx, cfg.trusted_networks, cfg.trusted_accounts, since, until,
                        next_id=next_alert_id(con))
        if not dry_run and result.since and result.until:
            save_alerts(con, result.alerts, "replay", (result.since, result.until))
    finally:
        con.close()
    return result


def detect_alongside(cfg: Config, con: duckdb.DuckDBPyConnection, tables: list[str | None],
                     scorer: Scorer | None = None) -> Alongside | None:
    """`ingest --detect`'s scoring alongside the ingest (fraudwatch.detect.runners.alongside), when the store holds no
    events yet, in `scorer` when one was started; None: the store is replayed after the ingest (and `scorer`
    is stopped)."""
    from fraudwatch.detect.ruleset import load_rules
    from fraudwatch.detect.runners.alongside import Alongside
    from fraudwatch.detect.runners.alongside_setup import Setup
    from fraudwatch.rulesdir import shipped_rules_dir

    rules = list(load_rules(cfg.rule_dirs).rules.values())
    if not Alongside.applies(con, rules):
        if scorer is not None:
            scorer.close()
        return None
    setup = Setup(list(cfg.rule_dirs), shipped_rules_dir() / "lists", {}, {}, list(cfg.trusted_networks),
                  list(cfg.trusted_accounts), 1)
    return Alongside(con, rules, setup, tables, scorer)


def finish_alongside(alongside: Alongside, con: duckdb.DuckDBPyConnection) -> int | None:
    """The alerts scored alongside the ingest, saved as a replay's: how many; None when the store is to be
    replayed."""
    from fraudwatch.detect.runners.replay import save_alert_rows

    result = alongside.finish()
    if result is None:
        return None
    if result.since and result.until:
        save_alert_rows(con, result.alerts, "replay", (result.since, result.until))
    return int(result.alerts.num_rows)


def cmd_detect(args: argparse.Namespace) -> int:
    cfg = _config(args)
    since, until = parse_time(args.since), parse_time(args.until)
    if since and until and since >= until:
        raise UsageError("--since must be before --until")
    result = run_detect(cfg, since, until, args.rules or [], args.dry_run)
    rules = result.rules
    if args.notify:
        from fraudwatch.commands_notify import notify_alerts, print_notify_summary, replay_done

        print_notify_summary("--dry-run: nothing was saved, so nothing was sent" if args.dry_run else
                             notify_alerts(cfg, result.alerts, replay_done(result.alerts)))
    if args.json:
        print(dumps({"since": result.since, "until": result.until, "events": result.events, "rules": len(rules),
                     "alerts": [_alert_json(a.as_row()) for a in result.alerts]}))
        return 0
    console = _out()
    span = f"{_cell(result.since)} .. {_cell(result.until)}" if result.since else "no events"
    console.print(f"replayed {sum(result.events.values()):,} events ({span}) through {len(rules)} rules: "
                  f"{len(result.alerts)} alert(s){' (dry run, not saved)' if args.dry_run else ''}")
    _print_alerts([a.as_row() for a in result.alerts])
    return 0


def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in ALERT_COLUMNS if k in row}
    evidence = row.get("evidence")
    out["evidence"] = json.loads(evidence) if isinstance(evidence, str) else evidence
    return out


def _print_alerts(rows: list[dict[str, Any]]) -> None:
    table = Table()
    for col in ("id", "severity", "rule", "key", "first seen", "detected", "count", "action"):
        table.add_column(col, overflow="fold")
    for r in rows:
        sev = "[bold red]critical[/]" if r["severity"] == "critical" else "[yellow]warning[/]"
        action = r["action"] + (" (trusted)" if r.get("trusted") else "") + (" (report-only)"
                                                                            if r.get("report_only") else "")
        table.add_row(str(r["id"]), sev, escape(r["rule"]), f"{r['key_type']} {escape(str(r['key']))}",
                      _cell(r["first_seen"]), _cell(r["detected_at"]), f"{r['count']:,}", action)
    _out().print(table)


def cmd_alerts(args: argparse.Namespace) -> int:
    from fraudwatch.store.db import open_read_only

    cfg = _config(args)
    con = open_read_only(cfg.store_path)
    try:
        if args.alerts_command == "show":
            return _show(con, args)
        where, params = ["TRUE"], []
        if args.since:
            where.append("last_seen >= ?")
            params.append(parse_time(args.since))
        if args.rule:
            where.append("rule = ?")
            params.append(args.rule)
        if args.severity:
            where.append("severity = ?")
            params.append(args.severity)
        cur = con.execute(f"SELECT * FROM alerts WHERE {' AND '.join(where)} ORDER BY detected_at, id LIMIT ?",
                          [*params, args.limit])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    if args.json:
        print(dumps([_alert_json(r) for r in rows]))
    else:
        _print_alerts(rows)
    return 0


def _show(con: Any, args: argparse.Namespace) -> int:
    cur = con.execute("SELECT * FROM alerts WHERE id = ?", [args.id])
    names = [d[0] for d in cur.description]
    found = cur.fetchall()
    if not found:
        raise StoreError(f"no alert {args.id}")
    row = dict(zip(names, found[0], strict=True))
    evidence = json.loads(row["evidence"] or "{}")
    lines = _raw_lines(evidence.get("lines") or [])
    if args.json:
        out = _alert_json(row)
        out["description"] = row["description"]
        out["raw_lines"] = lines
        print(dumps(out))
        return 0
    console = _out()
    console.print(f"[bold]alert {row['id']}[/]: {row['severity']} {escape(row['rule'])} — {escape(row['description'])}")
    for label in ("key_type", "key", "first_seen", "last_seen", "detected_at", "count", "value", "action", "trusted",
                  "report_only", "origin", "updates"):
        console.print(f"  {label:12s} {_cell(row[label])}")
    for k, v in evidence.items():
        if k != "lines":
            console.print(f"  {k:12s} {escape(json.dumps(v, ensure_ascii=False, default=str))[:400]}")
    if lines:
        console.print("  evidence lines:")
        for item in lines:
            console.print(f"    {escape(str(item['source']))}:{item['line_no']}: {escape(item['text'] or '(gone)')}")
    return 0


def _raw_lines(pointers: list[list[Any]], limit: int = 5) -> list[dict[str, Any]]:
    """The original log lines behind an alert, read back from their files (if still there) by byte offset."""
    from fraudwatch.sources.reader import open_binary

    out = []
    for source, line_no, offset, *_ in (list(p) + [None] * 3 for p in pointers[:limit]):
        text = None
        try:
            with open_binary(Path(source)) as f:
                if offset is not None:
                    f.seek(int(offset))  # a .gz file seeks forward by decompressing
                    raw = f.readline(64 << 10)
                else:
                    raw = b""
                    for i, line in enumerate(f, 1):
                        if i == line_no:
                            raw = line
                            break
                text = raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace")[:2000] or None
        except OSError:
            pass
        out.append({"source": source, "line_no": line_no, "text": text})
    return out


def cmd_lint(args: argparse.Namespace) -> int:
    from fraudwatch.detect.ruleset import load_rules

    cfg = _config(args)
    dirs = [Path(d) for d in args.dirs] if args.dirs else list(cfg.rule_dirs)
    ruleset = load_rules(dirs, collect=True, shipped=not args.dirs)
    for err in ruleset.errors:
        print(f"fraudwatch: {err}", file=sys.stderr)
    n = len(ruleset.rules)
    print(f"{n} rule(s) valid, {len(ruleset.errors)} error(s)")
    return 2 if ruleset.errors else 0
